"""Events across real processes: two uvicorn workers of `codeatlas serve`, events published
by another process, the per-user cap counted across workers, a SIGKILLed worker's slot
expiring, and a reconnect to any worker replaying what was missed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from codeatlas.db.session import Database
from codeatlas.settings import Settings
from codeatlas.ws.events import publish_event
from tests.auth.serving import env_on, serving, worker_pids
from tests.ws.conftest import close_code, open_ws, recv_type, user_and_token

pytestmark = pytest.mark.slow


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return env_on(
        settings,
        tmp_path,
        WS_MAX_CONNECTIONS_PER_USER="2",
        # Slot TTL = 2 x interval + timeout = 10 s: a dead worker's slot goes in seconds.
        WS_PING_INTERVAL="2",
        WS_PONG_TIMEOUT="6",
    )


def _server_pid(ws: ClientConnection, port: int, candidates: list[int]) -> int:
    local_port = ws.local_address[1]
    for pid in candidates:
        for c in psutil.Process(pid).net_connections(kind="tcp"):
            if c.raddr and c.raddr.port == local_port and c.laddr.port == port:
                return pid
    raise AssertionError("no worker serves this socket")


async def _one_socket_per_worker(
    url: str, port: int, token: str, workers: list[int]
) -> dict[int, tuple[ClientConnection, dict[str, Any]]]:
    """The kernel decides which worker accepts: retry until each worker holds one."""
    found: dict[int, tuple[ClientConnection, dict[str, Any]]] = {}
    for _ in range(80):
        ws, ready = await open_ws(url, token)
        pid = _server_pid(ws, port, workers)
        if pid in found:
            await ws.close()
            await asyncio.sleep(0.2)  # let its slot go before the next try (cap is 2)
        else:
            found[pid] = (ws, ready)
        if len(found) == len(workers):
            return found
    raise AssertionError(f"sockets reached only {list(found)} of {workers}")


async def _eventually_ready(
    url: str, token: str, timeout: float = 90
) -> tuple[ClientConnection, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            ws = await connect(url, proxy=None, open_timeout=30)
        except OSError:  # the killed worker's listening socket may refuse for a moment
            await asyncio.sleep(0.3)
            continue
        await ws.send(json.dumps({"type": "auth", "token": token}))
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message["type"] == "ready":
                return ws, message
        except Exception:
            pass
        await ws.close()
        assert time.monotonic() < deadline, "no slot became free"
        await asyncio.sleep(0.3)


async def _keepalive(ws: ClientConnection) -> None:
    """Answer the server's heartbeat the cheap way: any message counts as a pong."""
    try:
        while True:
            await ws.send(json.dumps({"type": "pong"}))
            await asyncio.sleep(1)
    except ConnectionClosed:
        pass


async def test_two_workers_share_events_cap_and_replay(
    settings: Settings, db: Database, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    user, token = await user_and_token(db, settings)
    with serving(_env(settings, tmp_path), tmp_path / "serve.log", workers=2) as (port, proc):
        url = f"ws://127.0.0.1:{port}/api/v1/ws"
        workers = worker_pids(proc, port, 2)
        sockets = await _one_socket_per_worker(url, port, token, workers)
        (pid_a, (ws_a, _)), (pid_b, (ws_b, ready_b)) = sockets.items()
        assert pid_a != pid_b
        keepalives = [asyncio.create_task(_keepalive(ws)) for ws in (ws_a, ws_b)]

        # Published by this process (neither worker): both sockets get the same event.
        first = await publish_event(redis_client, user.id, "t", {"n": 1}, request_id="req-mp-001")
        got_a, got_b = await recv_type(ws_a, "t"), await recv_type(ws_b, "t")
        assert got_a == got_b and got_a["id"] == first and got_a["request_id"] == "req-mp-001"

        # The cap counts both workers' sockets: a third is refused wherever it lands.
        for _ in range(3):
            async with connect(url, proxy=None) as third:
                await third.send(json.dumps({"type": "auth", "token": token}))
                assert await close_code(third) == 4429

        # Worker A's socket leaves; events go on; a reconnect (to any worker) replays them.
        await ws_a.close()
        missed = [await publish_event(redis_client, user.id, "t", {"n": n}) for n in (2, 3, 4)]
        assert [(await recv_type(ws_b, "t"))["id"] for _ in range(3)] == missed
        again, _ = await open_ws(url, token, last_event_id=first)
        assert [(await recv_type(again, "t"))["id"] for _ in range(3)] == missed
        await again.close()

        # A worker killed with its socket open: the slot it held expires by itself.
        ws_x, ready_x = await open_ws(url, token)  # the user's 2nd socket, on either worker
        keepalives.append(asyncio.create_task(_keepalive(ws_x)))
        victim = _server_pid(ws_x, port, workers)
        os.kill(victim, signal.SIGKILL)
        # Two slots are taken (ws_b and the dead one, or two dead ones if B was the victim):
        # a new socket only gets in once the dead slot expired, since nobody released it.
        replacement, ready = await _eventually_ready(url, token)
        slots = await redis_client.zrange(
            f"{settings.redis_key_prefix}ws:conns:user:{user.id}", 0, -1
        )
        members = {m.decode() for m in slots}
        dead = {ready_x["connection_id"]} | (
            {ready_b["connection_id"]} if victim == pid_b else set()
        )
        assert dead - members  # a dead slot nobody released has expired
        assert ready["connection_id"] in members and len(members) <= 2
        if victim != pid_b:
            assert ready_b["connection_id"] in members  # the live one is kept (renewed)
        await replacement.close()
        if victim != pid_b:
            await ws_b.close()
        for task in keepalives:
            task.cancel()
        await asyncio.gather(*keepalives, return_exceptions=True)
