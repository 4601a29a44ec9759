"""The event bus: server → client events, one replay stream and one channel per user.

:func:`publish_event` is the one way to emit an event, from an API process or a worker. It
runs one Lua script on Redis that

1. appends the event to the user's stream ``<prefix>events:stream:user:<id>`` (``XADD`` with
   ``MAXLEN ~ EVENTS_STREAM_MAXLEN``, then ``EXPIRE EVENTS_STREAM_TTL_SECONDS``): the bounded
   replay log a reconnecting client reads from;
2. publishes the same envelope on ``<prefix>events:user:<id>``, which every API process
   receives (one pattern subscription per process, :mod:`codeatlas.ws.hub`).

Doing both in one script makes the stream order and the publish order the same for every
publisher, so a socket can switch from replay to live by comparing ids: nothing lost,
nothing twice. The event id is the stream entry id (``<ms>-<seq>``), which orders events.

Envelope: ``{"id", "type", "ts" (ISO-8601 UTC), "request_id", "data"}``.

A stream of many small events from one process (an answer's tokens) goes through the
process's :class:`EventBatcher` instead: the caller queues without waiting for Redis, and one
task sends whatever is queued as one pipeline (one round trip for all of it, in queue order),
so a token is never held up by the round trip of the one before it, and N streams cost far
fewer round trips than N x tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from codeatlas.core.context import get_request_id
from codeatlas.core.redis_client import key, settings_for
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

# KEYS: stream, channel. ARGV: body (the envelope without its id, a JSON object), maxlen,
# ttl seconds. The id is spliced in front of the body's other keys, so the published text is
# the complete envelope and the stream keeps the body once.
_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', KEYS[2], '{"id":"' .. id .. '",' .. string.sub(ARGV[1], 2))
return id
"""


def user_channel(settings: Settings, user_id: int) -> str:
    return key(settings, "events", "user", user_id)


def user_stream(settings: Settings, user_id: int) -> str:
    return key(settings, "events", "stream", "user", user_id)


def channel_pattern(settings: Settings) -> str:
    """The pattern matching every user's channel (glob characters in the prefix escaped)."""
    escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in settings.redis_key_prefix)
    return escaped + "events:user:*"


def user_of_channel(settings: Settings, channel: str) -> int | None:
    head = user_channel(settings, 0)[:-1]
    if not channel.startswith(head):
        return None
    tail = channel[len(head) :]
    return int(tail) if tail.isdigit() else None


def envelope_body(type: str, data: dict[str, Any], request_id: str | None) -> str:
    """The envelope without its id; ``data`` must be JSON-serialisable."""
    return json.dumps(
        {
            "type": type,
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "data": data,
        },
        separators=(",", ":"),
    )


def with_id(event_id: str, body: str) -> str:
    """The full envelope text for a stored body (same splice as the Lua script)."""
    return '{"id":"' + event_id + '",' + body[1:]


def parse_event_id(value: str) -> tuple[int, int] | None:
    """``<ms>-<seq>`` as a comparable pair; None for anything else."""
    ms, sep, seq = value.partition("-")
    if not (sep and ms.isdigit() and seq.isdigit()) or len(value) > 41:
        return None
    return int(ms), int(seq)


async def publish_event(
    redis: aioredis.Redis,
    user_id: int,
    type: str,
    data: dict[str, Any],
    *,
    request_id: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Append an event to the user's replay stream and push it live; returns the event id.

    ``request_id`` defaults to the current request's or job's (2-A). ``settings`` defaults to
    those the client was created with (:func:`codeatlas.core.redis_client.create_redis`).
    Raises Redis errors: a caller for whom events are best effort catches ``RedisError``.
    """
    settings = settings or settings_for(redis)
    body = envelope_body(type, data, request_id if request_id is not None else get_request_id())
    return _str(await redis.eval(*_publish_args(settings, user_id, body)))


def _publish_args(settings: Settings, user_id: int, body: str) -> tuple[Any, ...]:
    """The arguments of ``EVAL`` of the publish script for one event."""
    return (
        _PUBLISH,
        2,
        user_stream(settings, user_id),
        user_channel(settings, user_id),
        body,
        settings.events_stream_maxlen,
        settings.events_stream_ttl_seconds,
    )


@dataclass(slots=True)
class _Queued:
    user_id: int
    body: str
    future: asyncio.Future[str]


def _retrieve(future: asyncio.Future[str]) -> None:
    """Mark a failed publish's error as seen: a caller that stopped caring (a stopped turn)
    must not leave "exception was never retrieved" in the log."""
    if not future.cancelled():
        future.exception()


class EventBatcher:
    """The process's publisher for event streams: :meth:`emit` queues and returns at once.

    One task drains the queue: everything queued when it wakes (at most ``max_batch``) goes
    to Redis as one non-transactional pipeline of the publish script, so events leave in the
    order they were emitted, each still appended to its user's stream and published exactly
    as :func:`publish_event` does. Each emit's future resolves to the event id, or to the
    Redis error that lost it: a caller that must know checks it later, without waiting on
    the round trip per event.
    """

    def __init__(self, redis: aioredis.Redis, settings: Settings, max_batch: int = 256) -> None:
        self.redis = redis
        self.settings = settings
        self.max_batch = max_batch
        self._queue: deque[_Queued] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def emit(
        self, user_id: int, type: str, data: dict[str, Any], *, request_id: str | None = None
    ) -> asyncio.Future[str]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        future.add_done_callback(_retrieve)
        if self._closed:
            future.set_exception(RedisError("event publisher closed"))
            return future
        rid = request_id if request_id is not None else get_request_id()
        self._queue.append(_Queued(user_id, envelope_body(type, data, rid), future))
        self._wake.set()
        if self._task is None or self._task.done():  # first use, or a bug ended the last one
            self._task = loop.create_task(self._drain(), name="ws-event-batcher")
        return future

    async def _drain(self) -> None:
        settings = self.settings
        while not (self._closed and not self._queue):
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                size = min(self.max_batch, len(self._queue))
                await self._send([self._queue.popleft() for _ in range(size)], settings)

    async def _send(self, batch: list[_Queued], settings: Settings) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for item in batch:
            pipe.eval(*_publish_args(settings, item.user_id, item.body))
        try:
            ids = await pipe.execute()
        except BaseException as exc:
            # Every queued event learns its fate; Redis being away is the expected failure,
            # anything else (cancellation, a bug) goes on up after that.
            for item in batch:
                if item.future.done():
                    continue
                if isinstance(exc, Exception):
                    item.future.set_exception(exc)
                else:
                    item.future.cancel()
            if isinstance(exc, RedisError | OSError):
                return
            raise
        for item, event_id in zip(batch, ids, strict=True):
            if not item.future.done():
                item.future.set_result(_str(event_id))

    async def aclose(self, grace: float = 2.0) -> None:
        """Send what is queued (for up to ``grace`` seconds), then stop."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(grace):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        while self._queue:
            self._queue.popleft().future.set_exception(RedisError("event publisher closed"))


async def read_since(
    redis: aioredis.Redis, settings: Settings, user_id: int, last_event_id: str, limit: int
) -> tuple[list[tuple[str, str]], bool]:
    """Events after ``last_event_id`` (oldest first, at most ``limit``) and whether some were
    missed for good (trimmed, expired, or more than ``limit``)."""
    stream = user_stream(settings, user_id)
    last = parse_event_id(last_event_id) or (0, 0)
    try:
        info: dict[Any, Any] = await redis.xinfo_stream(stream)
    except ResponseError:  # no stream: expired (or never written), anything may be gone
        return [], last > (0, 0)
    # Redis >= 7 / Valkey keep the largest id trimmed away: past the client's, it missed some.
    max_deleted = info.get("max-deleted-entry-id") or info.get(b"max-deleted-entry-id") or "0-0"
    truncated = _id(max_deleted) > last
    rows: list[Any] = list(
        await redis.xrange(stream, min="(" + last_event_id, max="+", count=limit + 1) or []
    )
    if len(rows) > limit:
        # Too far behind: keep the newest `limit`, the client is told it missed some.
        truncated = True
        newest = await redis.xrevrange(stream, max="+", min="(" + last_event_id, count=limit)
        rows = list(newest or [])[::-1]
    # Clients made with decode_responses=True return str field names.
    events = [
        (_str(eid), with_id(_str(eid), _str(fields.get(b"e") or fields["e"])))
        for eid, fields in rows
        if eid
    ]
    return events, truncated


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id(value: bytes | str) -> tuple[int, int]:
    parsed = parse_event_id(_str(value))
    return parsed if parsed is not None else (0, 0)
