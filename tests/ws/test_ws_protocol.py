"""`/api/v1/ws` over a real uvicorn and a real Redis: auth, cap, heartbeat, slow clients,
events, replay after reconnect, request ids (2-A)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import update
from websockets.asyncio.client import connect

from codeatlas.auth.tokens import create_access_token
from codeatlas.core.context import get_request_id
from codeatlas.db.session import Database, atomic
from codeatlas.models import User
from codeatlas.settings import Settings
from codeatlas.ws.events import publish_event
from codeatlas.ws.handlers import WSContext, register_handler, unregister_handler
from tests.ws.conftest import (
    LiveFactory,
    close_code,
    open_ws,
    recv_json,
    recv_type,
    user_and_token,
    wait_until,
)


class _Capture(logging.Handler):
    """Log records with the request id current when each was written."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.getMessage(), get_request_id()))


@pytest.fixture
def ws_logs() -> Iterator[_Capture]:
    capture = _Capture()
    log = logging.getLogger("codeatlas.ws")
    old = log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(capture)
    try:
        yield capture
    finally:
        log.removeHandler(capture)
        log.setLevel(old)


async def _first_message_then_code(url: str, first: str | None) -> tuple[int | None, str]:
    async with connect(url, proxy=None, open_timeout=30) as ws:
        if first is not None:
            await ws.send(first)
        code = await close_code(ws)
        reason = ws.close_reason or ""
    return code, reason


async def test_auth_failures_close_4401_and_tokens_never_reach_the_logs(
    live_server: LiveFactory, db: Database, settings: Settings, ws_logs: _Capture
) -> None:
    live = await live_server(ws_auth_timeout=3.0)
    user, token = await user_and_token(db, settings)
    expired = create_access_token(user.id, settings, version=user.token_version, ttl=-60)
    stale_version = create_access_token(user.id, settings, version=user.token_version + 1)
    forged = create_access_token(user.id, settings.model_copy(update={"secret_key": "x" * 40}))
    cases: list[tuple[str | None, str]] = [
        (None, "AUTH_TIMEOUT"),  # says nothing
        ("not json", "AUTH_REQUIRED"),
        (json.dumps({"type": "hello"}), "AUTH_REQUIRED"),
        (json.dumps({"type": "auth"}), "AUTH_REQUIRED"),
        (json.dumps({"type": "auth", "token": 12}), "AUTH_REQUIRED"),
        (json.dumps({"type": "auth", "token": "abc.def.ghi"}), "TOKEN_INVALID"),
        (json.dumps({"type": "auth", "token": forged}), "TOKEN_INVALID"),
        (json.dumps({"type": "auth", "token": expired}), "TOKEN_EXPIRED"),
        (json.dumps({"type": "auth", "token": stale_version}), "TOKEN_INVALID"),
    ]
    for first, reason in cases:
        assert await _first_message_then_code(live.url, first) == (4401, reason), first

    # A deactivated account's still-valid token is refused too.
    async with db.session() as s, atomic(s):
        await s.execute(update(User).where(User.id == user.id).values(is_active=False))
    assert await _first_message_then_code(
        live.url, json.dumps({"type": "auth", "token": token})
    ) == (4401, "TOKEN_INVALID")

    logged = "\n".join(message for message, _ in ws_logs.records)
    assert "websocket refused" in logged
    for secret in (token, expired, stale_version, forged):
        assert secret not in logged


async def test_ready_then_events_published_by_another_client_with_their_request_id(
    live_server: LiveFactory, db: Database, settings: Settings, redis_client: aioredis.Redis
) -> None:
    live = await live_server()
    user, token = await user_and_token(db, settings)
    other, _ = await user_and_token(db, settings)
    ws, ready = await open_ws(live.url, token)
    assert ready["user_id"] == user.id and len(ready["connection_id"]) == 32
    async with ws:
        await publish_event(
            redis_client, other.id, "job.progress", {"n": 0}, request_id="req-other-01"
        )
        event_id = await publish_event(
            redis_client, user.id, "job.progress", {"n": 1}, request_id="req-events-01"
        )
        event = await recv_type(ws, "job.progress")
        assert event["id"] == event_id and event["data"] == {"n": 1}  # not the other user's
        assert event["request_id"] == "req-events-01" and event["ts"].endswith("+00:00")


async def test_connection_and_its_handlers_carry_request_ids(
    live_server: LiveFactory, db: Database, settings: Settings, ws_logs: _Capture
) -> None:
    """2-A: the socket's log lines carry its handshake's id; a message's handler runs under
    the message's id, and the events it publishes carry it."""

    async def echo(ctx: WSContext, message: dict[str, Any]) -> None:
        logging.getLogger("codeatlas.ws.test").info("echo handler for %s", ctx.user_id)
        await publish_event(ctx.app.state.redis, ctx.user_id, "test.echoed", {"got": message})
        ctx.send({"type": "test.reply", "request_id": get_request_id()})

    register_handler("test.echo", echo)
    try:
        live = await live_server()
        user, token = await user_and_token(db, settings)
        ws, ready = await open_ws(live.url, token, headers={"X-Request-ID": "ws-conn-req-0001"})
        async with ws:
            assert ready["request_id"] == "ws-conn-req-0001"
            await ws.send(json.dumps({"type": "test.echo", "request_id": "msg-req-00000002"}))
            reply = await recv_type(ws, "test.reply")
            echoed = await recv_type(ws, "test.echoed")
            assert reply["request_id"] == echoed["request_id"] == "msg-req-00000002"
            # A message without an id gets a fresh one, never the connection's.
            await ws.send(json.dumps({"type": "test.echo"}))
            fresh = await recv_type(ws, "test.echoed")
            assert fresh["request_id"] not in (None, "ws-conn-req-0001", "msg-req-00000002")
        await wait_until(lambda: not live.hub.local_connections(), what="socket closed")
    finally:
        unregister_handler("test.echo")
    ids = {rid for message, rid in ws_logs.records if "websocket" in message}
    assert ids == {"ws-conn-req-0001"}, ws_logs.records
    assert (f"echo handler for {user.id}", "msg-req-00000002") in ws_logs.records


async def test_bad_and_unknown_messages_get_an_error_and_the_socket_stays(
    live_server: LiveFactory, db: Database, settings: Settings
) -> None:
    live = await live_server()
    _, token = await user_and_token(db, settings)
    ws, _ = await open_ws(live.url, token)
    async with ws:
        await ws.send("{nope")
        assert (await recv_type(ws, "error"))["error_code"] == "BAD_MESSAGE"
        await ws.send(json.dumps({"type": "no.such.thing"}))
        assert (await recv_type(ws, "error"))["error_code"] == "UNKNOWN_MESSAGE_TYPE"
        await ws.send(b"\x00binary")
        assert (await recv_type(ws, "error"))["error_code"] == "BAD_MESSAGE"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_type(ws, "pong"))["type"] == "pong"


async def test_connection_cap_per_user_closes_4429_and_frees_slots_on_close(
    live_server: LiveFactory, db: Database, settings: Settings
) -> None:
    live = await live_server(ws_max_connections_per_user=2)
    _, token = await user_and_token(db, settings)
    _, other_token = await user_and_token(db, settings)
    first, _ = await open_ws(live.url, token)
    second, _ = await open_ws(live.url, token)
    async with connect(live.url, proxy=None) as third:
        await third.send(json.dumps({"type": "auth", "token": token}))
        assert await close_code(third) == 4429
        assert third.close_reason == "TOO_MANY_CONNECTIONS"
    other, _ = await open_ws(live.url, other_token)  # the cap is per user
    await other.close()
    await first.close()

    async def fourth_gets_in() -> bool:
        async with connect(live.url, proxy=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            return json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "ready"

    # The slot is released when the server has finished closing the first socket.
    for _ in range(100):
        try:
            if await fourth_gets_in():
                break
        except Exception:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("the closed socket's slot was not released")
    await second.close()


async def test_heartbeat_keeps_a_ponging_client_and_drops_a_silent_one(
    live_server: LiveFactory, db: Database, settings: Settings
) -> None:
    live = await live_server(ws_ping_interval=0.2, ws_pong_timeout=0.4)
    _, token = await user_and_token(db, settings)
    alive, _ = await open_ws(live.url, token)
    silent, _ = await open_ws(live.url, token)

    async def answer_pings() -> None:
        while True:
            if (await recv_json(alive))["type"] == "ping":
                await alive.send(json.dumps({"type": "pong"}))

    answering = asyncio.create_task(answer_pings())
    try:
        # The silent one reads the pings but never answers: dropped as dead with 4408.
        assert await close_code(silent) == 4408
        assert silent.close_reason == "heartbeat timeout"
        await asyncio.sleep(1.5)  # many intervals: the answering one is still there
        assert not answering.done()
        assert len(live.hub.local_connections()) == 1
    finally:
        answering.cancel()
        await asyncio.gather(answering, return_exceptions=True)
        await alive.close()


async def test_slow_client_is_dropped_with_1013_and_its_queue_stays_bounded(
    live_server: LiveFactory, db: Database, settings: Settings, redis_client: aioredis.Redis
) -> None:
    live = await live_server(ws_send_queue_size=8)
    user, token = await user_and_token(db, settings)
    # max_queue=1: the client library stops reading the socket after one unread frame.
    slow, _ = await open_ws(live.url, token, max_queue=1, ping_interval=None)
    fast, _ = await open_ws(live.url, token, max_size=None)
    await wait_until(lambda: len(live.hub.local_connections(user.id)) == 2)
    conns = live.hub.local_connections(user.id)
    received = 0
    total = 3000
    payload = os.urandom(4096).hex()  # 8 KiB per event; 24 MiB in all, more than socket buffers

    async def read_fast() -> None:
        nonlocal received
        while received < total:
            message = await recv_json(fast)
            if message["type"] == "bulk":
                received += 1

    reader = asyncio.create_task(read_fast())
    for i in range(total):
        await publish_event(redis_client, user.id, "bulk", {"i": i, "pad": payload})
    await asyncio.wait_for(reader, 120)  # the reading client got every event
    await wait_until(lambda: len(live.hub.local_connections(user.id)) == 1, 60, "slow dropped")
    dropped = [c for c in conns if c.close_code is not None]
    assert len(dropped) == 1
    slow_conn = dropped[0]
    assert (slow_conn.close_code, slow_conn.close_reason) == (1013, "send queue full")
    assert slow_conn.high_water <= 8  # never more than the bound waited in memory
    assert all(c.high_water <= 8 for c in conns)
    await fast.close()
    await slow.close()


async def test_reconnect_with_last_event_id_gets_everything_missed_once_in_order(
    live_server: LiveFactory, db: Database, settings: Settings, redis_client: aioredis.Redis
) -> None:
    live = await live_server()
    user, token = await user_and_token(db, settings)
    ws, _ = await open_ws(live.url, token)
    last = None
    async with ws:
        for i in range(5):
            await publish_event(redis_client, user.id, "seq", {"i": i})
        for _ in range(5):
            last = (await recv_type(ws, "seq"))["id"]
    for i in range(5, 10):  # while away
        await publish_event(redis_client, user.id, "seq", {"i": i})

    async def keep_publishing() -> None:  # and during the reconnect, racing the replay
        for i in range(10, 60):
            await publish_event(redis_client, user.id, "seq", {"i": i})
            await asyncio.sleep(0.002)

    publisher = asyncio.create_task(keep_publishing())
    ws, _ = await open_ws(live.url, token, last_event_id=last)
    seen: list[int] = []
    ids: list[str] = []
    async with ws:
        while not seen or seen[-1] != 59:
            event = await recv_type(ws, "seq")
            seen.append(event["data"]["i"])
            ids.append(event["id"])
    await publisher
    assert seen == list(range(5, 60))
    assert len(set(ids)) == len(ids)


async def test_reconnect_too_far_behind_is_told_replay_truncated(
    live_server: LiveFactory, db: Database, settings: Settings, redis_client: aioredis.Redis
) -> None:
    live = await live_server(events_stream_maxlen=10, ws_replay_max=5)
    user, token = await user_and_token(db, settings)
    first = await publish_event(redis_client, user.id, "seq", {"i": 0}, settings=live.settings)
    for i in range(1, 300):
        await publish_event(redis_client, user.id, "seq", {"i": i}, settings=live.settings)
    ws, _ = await open_ws(live.url, token, last_event_id=first)
    async with ws:
        assert (await recv_json(ws))["type"] == "replay.truncated"
        replayed = [(await recv_type(ws, "seq"))["data"]["i"] for _ in range(5)]
        assert replayed == [295, 296, 297, 298, 299]  # the newest ones, in order
        await publish_event(redis_client, user.id, "seq", {"i": 300}, settings=live.settings)
        assert (await recv_type(ws, "seq"))["data"]["i"] == 300
