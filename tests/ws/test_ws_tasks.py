"""2-C: every task a connection starts ends with it; WS_TASK_TRACKING=false rolls back to
fire-and-forget. Counted with asyncio.all_tasks() in the loop uvicorn serves from."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from codeatlas.db.session import Database
from codeatlas.settings import Settings
from codeatlas.ws.events import publish_event
from codeatlas.ws.handlers import WSContext, register_handler, unregister_handler
from tests.ws.conftest import LiveFactory, open_ws, recv_type, user_and_token, wait_until


class Sleeper:
    """A handler that spawns a task that would run forever, and records how it ended."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0
        self.tasks: list[asyncio.Task[Any]] = []

    async def __call__(self, ctx: WSContext, message: dict[str, Any]) -> None:
        task = ctx.spawn(self._forever())
        if task is not None:
            self.tasks.append(task)
        ctx.send({"type": "test.spawned"})

    async def _forever(self) -> None:
        self.started += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


@pytest.fixture
def sleeper() -> Iterator[Sleeper]:
    handler = Sleeper()
    register_handler("test.sleep", handler)
    try:
        yield handler
    finally:
        unregister_handler("test.sleep")
        for task in handler.tasks:
            task.cancel()


async def test_spawned_tasks_are_cancelled_and_awaited_on_disconnect(
    live_server: LiveFactory, db: Database, settings: Settings, sleeper: Sleeper
) -> None:
    live = await live_server()
    _, token = await user_and_token(db, settings)
    ws, _ = await open_ws(live.url, token)
    for _ in range(3):
        await ws.send(json.dumps({"type": "test.sleep"}))
        await recv_type(ws, "test.spawned")
    (conn,) = live.hub.local_connections()
    assert len(conn.tasks) >= 3 and sleeper.started == 3
    await ws.close()
    await wait_until(lambda: not live.hub.local_connections(), what="connection gone")
    await wait_until(lambda: all(t.done() for t in sleeper.tasks), what="tasks ended")
    assert sleeper.cancelled == 3 and not conn.tasks


async def test_ws_task_tracking_false_is_the_old_fire_and_forget(
    live_server: LiveFactory, db: Database, settings: Settings, sleeper: Sleeper
) -> None:
    """The roll-back flag really rolls back: the same tasks outlive their connection."""
    live = await live_server(ws_task_tracking=False)
    user, token = await user_and_token(db, settings)
    ws, _ = await open_ws(live.url, token)
    async with ws:
        await ws.send(json.dumps({"type": "test.sleep"}))
        await recv_type(ws, "test.spawned")
        # Sends are fire-and-forget too (no queue, no writer task), events still arrive.
        await publish_event(live.app.state.redis, user.id, "x", {}, settings=live.settings)
        await recv_type(ws, "x")
        (conn,) = live.hub.local_connections()
        assert not conn.tasks and conn.queue.qsize() == 0
    await wait_until(lambda: not live.hub.local_connections(), what="connection gone")
    await asyncio.sleep(0.5)
    assert sleeper.started == 1 and sleeper.cancelled == 0
    assert not sleeper.tasks[0].done()  # leaked, as before the fix


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 1,000 real handshakes; minutes on a loaded 2-core machine
async def test_dod_1000_connect_disconnect_cycles_leave_no_task_behind(
    live_server: LiveFactory,
    db: Database,
    settings: Settings,
    sleeper: Sleeper,
    redis_client: aioredis.Redis,
) -> None:
    """2-C DoD: 1,000 cycles, a stream of events in flight in some and a spawned task in
    others; afterwards the loop has exactly the tasks it had before, and no slot is left."""
    live = await live_server(ws_max_connections_per_user=100)
    users = [await user_and_token(db, settings) for _ in range(5)]
    warm, _ = await open_ws(live.url, users[0][1])  # first-use imports and pools
    await warm.close()
    await wait_until(lambda: not live.hub.local_connections(), what="warm-up closed")
    await asyncio.sleep(0.2)
    baseline = len(asyncio.all_tasks())

    async def cycle(n: int) -> None:
        user, token = users[n % len(users)]
        # max_queue=None: the client keeps reading what it does not consume, so its own
        # close handshake is not stuck behind unread frames (websockets' flow control).
        ws, _ = await open_ws(live.url, token, max_queue=None)
        if n % 3 == 0:  # a stream of events in flight, closed mid-stream
            for i in range(20):
                await publish_event(redis_client, user.id, "stream", {"i": i})
            await recv_type(ws, "stream")
        elif n % 3 == 1:  # a handler's task in flight
            await ws.send(json.dumps({"type": "test.sleep"}))
            await recv_type(ws, "test.spawned")
        await ws.close()

    started = time.monotonic()
    batches = int(os.environ.get("WS_DOD_BATCHES", "100"))  # fewer for a quick local run
    for batch in range(batches):  # 10 at a time
        await asyncio.gather(*(cycle(batch * 10 + k) for k in range(10)))
        if batch % 10 == 9:
            print(f"{(batch + 1) * 10} cycles, {time.monotonic() - started:.0f}s")

    await wait_until(lambda: not live.hub.local_connections(), 60, "all connections gone")
    await wait_until(lambda: len(asyncio.all_tasks()) <= baseline, 60, "tasks back to baseline")
    assert len(asyncio.all_tasks()) == baseline
    spawned = sum(1 for n in range(batches * 10) if n % 3 == 1)
    assert sleeper.started == spawned and sleeper.cancelled == spawned
    slots = [k async for k in redis_client.scan_iter(match=settings.redis_key_prefix + "ws:*")]
    assert slots == []
