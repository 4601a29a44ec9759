"""One authenticated socket: its bounded send queue, its tasks, heartbeat and replay switch.

Everything a connection starts (the writer, the heartbeat, handler tasks, sends) is a task in
``Connection.tasks``; :meth:`Connection.shutdown` cancels and awaits them all, so a closed
socket leaves nothing running (2-C). With ``WS_TASK_TRACKING=false`` (the roll-back) sends
and handler tasks are fire-and-forget instead, as before: not tracked, not cancelled.

Delivery order and replay: the hub hands every live event to :meth:`deliver`. While a
reconnecting client's missed events are read from the stream, live ones wait in ``pending``;
afterwards only events newer than the last replayed id are sent, so nothing is lost or sent
twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from codeatlas.metrics.registry import WS_TASKS

logger = logging.getLogger(__name__)

EventId = tuple[int, int]

# Close codes (docs/WEBSOCKET.md).
CLOSE_AUTH = 4401
CLOSE_HEARTBEAT = 4408
CLOSE_TOO_MANY = 4429
CLOSE_SLOW = 1013
CLOSE_UNAVAILABLE = 1011

# WS_TASK_TRACKING=false: the tasks nobody tracks, held only so they are not collected
# mid-flight (asyncio keeps weak references to tasks).
_untracked: set[asyncio.Task[Any]] = set()


def fire_and_forget(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    task = asyncio.create_task(coro)
    _untracked.add(task)
    task.add_done_callback(_untracked.discard)
    return task


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        user_id: int,
        connection_id: str,
        queue_size: int,
        tracking: bool,
    ) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.connection_id = connection_id
        self.tracking = tracking
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.close_code: int | None = None
        self.close_reason = ""
        self._closed = asyncio.Event()
        self._shut = False
        self.replaying = True
        self.pending: list[tuple[EventId, str]] = []
        self.last_id: EventId = (0, 0)
        self.last_seen = asyncio.get_running_loop().time()
        self.high_water = 0  # the fullest the send queue got (tests and logs)

    # -- tasks (2-C) ---------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """A task of this connection: cancelled and awaited when the connection closes."""
        if not self.tracking:
            return fire_and_forget(coro)
        if self._shut:  # too late: the connection is gone
            coro.close()
            return None
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        WS_TASKS.inc()  # every task gets exactly one done callback, which decrements
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        WS_TASKS.dec()
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Unexpected: logged with its traceback (and so reaches Sentry), never re-raised
            # into the socket, which stays open.
            logger.error("task of connection %s failed", self.connection_id, exc_info=exc)

    async def shutdown(self) -> None:
        """Cancel every task of this connection and wait until each has ended."""
        self._shut = True
        current = asyncio.current_task()
        while pending := [t for t in self.tasks if t is not current]:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self.tasks.difference_update(pending)

    # -- closing -----------------------------------------------------------------------------

    def stop(self, code: int | None, reason: str = "") -> None:
        """Ask the connection to end (``code`` None: the peer already left)."""
        if not self._closed.is_set():
            self.close_code, self.close_reason = code, reason
            self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    @property
    def closing(self) -> bool:
        return self._closed.is_set()

    # -- sending -----------------------------------------------------------------------------

    def push(self, text: str) -> None:
        """Queue one message; a client too slow to take it is dropped (1013)."""
        if self.closing:
            return
        if not self.tracking:
            fire_and_forget(self.websocket.send_text(text))
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            logger.warning(
                "connection %s dropped: %d messages unread", self.connection_id, self.queue.qsize()
            )
            self.stop(CLOSE_SLOW, "send queue full")
            return
        self.high_water = max(self.high_water, self.queue.qsize())

    def send_json(self, message: dict[str, Any]) -> None:
        self.push(json.dumps(message, separators=(",", ":")))

    async def put(self, text: str, patience: float) -> None:
        """Queue with back-pressure (replay): waits for room, drops the client after
        ``patience`` seconds."""
        if not self.tracking:
            self.push(text)
            return
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the put succeeds (gh-86296), and the replay would go on.
            async with asyncio.timeout(patience):
                await self.queue.put(text)
        except TimeoutError:
            self.stop(CLOSE_SLOW, "send queue full")

    def deliver(self, event_id: EventId, text: str) -> None:
        """A live event from the hub (called on the event loop, never blocks)."""
        if self.replaying:
            self.pending.append((event_id, text))
            if len(self.pending) > self.queue.maxsize:
                self.stop(CLOSE_SLOW, "send queue full")
        elif event_id > self.last_id:
            self.last_id = event_id
            self.push(text)

    def go_live(self) -> None:
        """End of replay: send what arrived meanwhile, minus what replay already sent."""
        pending, self.pending = self.pending, []
        self.replaying = False
        for event_id, text in pending:
            self.deliver(event_id, text)

    async def writer(self) -> None:
        while True:
            text = await self.queue.get()
            try:
                await self.websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.stop(None)
                return

    # -- receiving and heartbeat ---------------------------------------------------------------

    async def reader(self, on_message: Callable[[str], None]) -> None:
        while True:
            try:
                message = await self.websocket.receive()
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.stop(None)
                return
            if message["type"] == "websocket.disconnect":
                self.stop(None)
                return
            self.last_seen = asyncio.get_running_loop().time()
            text = message.get("text")
            if text is None:
                self.send_json(
                    {
                        "type": "error",
                        "error_code": "BAD_MESSAGE",
                        "message": "send JSON text frames",
                    }
                )
                continue
            on_message(text)

    async def heartbeat(
        self, interval: float, pong_timeout: float, renew: Callable[[], Awaitable[None]]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            if loop.time() - self.last_seen > interval + pong_timeout:
                logger.info("connection %s: no pong, dropped", self.connection_id)
                self.stop(CLOSE_HEARTBEAT, "heartbeat timeout")
                return
            self.send_json({"type": "ping"})
            await renew()

    async def close(self, grace: float = 2.0) -> None:
        """Send the close frame if the socket is still open; a peer that does not read
        cannot hold us: after ``grace`` seconds we return and uvicorn drops the socket."""
        if self.close_code is None or self.websocket.client_state != WebSocketState.CONNECTED:
            return
        with contextlib.suppress(TimeoutError, RuntimeError, OSError, WebSocketDisconnect):
            await asyncio.wait_for(self.websocket.close(self.close_code, self.close_reason), grace)
