"""The outbox relay: sends the job messages committed in the ``jobs`` table to the broker.

Every API process and every worker process runs one :class:`Relay` (an asyncio task). Each
round it claims pending rows (``send_at`` due, no live claim), sends their messages to Redis
and clears ``send_at`` for the version it sent (``send_seq``). Claims are safe with many
processes: on PostgreSQL the claim's SELECT uses ``FOR UPDATE SKIP LOCKED`` so two relays
never wait on or take the same rows; on SQLite (one writer at a time) the claim is one
conditional UPDATE that sets ``send_claimed_until``, and another relay skips claimed rows
until that lease ends. A relay that dies mid-send leaves its claim to expire; the message is
then sent again, which at-least-once delivery allows (actors are idempotent, and a second copy
of a running job is skipped by its lease).

Sending never blocks the event loop: Dramatiq's ``RedisBroker.enqueue`` is synchronous, so it
runs on the relay's own single thread, under JOBS_RELAY_SEND_TIMEOUT. Pushing the message
with redis.asyncio would have meant re-implementing the broker's Lua dispatch script and its
message format; the thread keeps Dramatiq's own code (and its middleware hooks) on the wire.
While Redis or the database is away the relay backs off (0.2 s doubling up to
JOBS_RELAY_BACKOFF_MAX) and pending messages simply wait in the table.

The same loop renews this process's job leases, writes attempt ends recorded late, and runs
the reaper (:mod:`codeatlas.jobs.reaper`) every JOBS_REAPER_INTERVAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message
from sqlalchemy import or_, select, update

from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.jobs import lease, reaper
from codeatlas.jobs.enqueue import add_waker
from codeatlas.jobs.middleware import flush_unrecorded
from codeatlas.jobs.runtime import JobRuntime
from codeatlas.models.job import Job
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

CLAIM_SECONDS = 30.0
MIN_BACKOFF = 0.2


@dataclass(frozen=True, slots=True)
class Outgoing:
    id: int
    send_seq: int
    message: Message[Any]
    delay_ms: int | None = None


async def claim(db: Database, limit: int) -> list[Outgoing]:
    """Claim up to ``limit`` due messages for CLAIM_SECONDS (safe with many relays)."""
    now = utcnow()
    due = (
        select(Job.id)
        .where(
            Job.send_at.is_not(None),
            Job.send_at <= now,
            or_(Job.send_claimed_until.is_(None), Job.send_claimed_until < now),
        )
        .order_by(Job.send_at)
        .limit(limit)
    )
    if db.dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    async with db.session() as session, atomic(session):
        rows = (
            await session.execute(
                update(Job)
                .where(Job.id.in_(due.scalar_subquery()))
                .values(send_claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
                .returning(
                    Job.id,
                    Job.send_seq,
                    Job.message_id,
                    Job.actor,
                    Job.queue,
                    Job.args,
                    Job.kwargs,
                    Job.request_id,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
    return [
        Outgoing(
            id=row.id,
            send_seq=row.send_seq,
            message=Message(
                queue_name=row.queue,
                actor_name=row.actor,
                args=tuple(row.args),
                kwargs=dict(row.kwargs),
                options={"request_id": row.request_id},
                message_id=row.message_id,
            ),
        )
        for row in sorted(rows, key=lambda r: r.id)
    ]


async def settle(db: Database, sent: list[Outgoing], unsent: list[Outgoing]) -> None:
    """Clear what was sent (only the version sent); release the claims of the rest."""
    async with db.session() as session, atomic(session):
        for item in sent:
            await session.execute(
                update(Job)
                .where(Job.id == item.id, Job.send_seq == item.send_seq)
                .values(send_at=None, send_claimed_until=None)
                .execution_options(synchronize_session=False)
            )
        if unsent:
            await session.execute(
                update(Job)
                .where(Job.id.in_([i.id for i in unsent]))
                .values(send_claimed_until=None)
                .execution_options(synchronize_session=False)
            )


class BrokerSender:
    """Sends messages with the (synchronous) Dramatiq broker on one thread of its own."""

    def __init__(self, broker: RedisBroker, timeout: float) -> None:
        self.broker = broker
        self.timeout = timeout
        # Its own thread: a hung Redis must not fill the loop's default executor.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codeatlas-relay")

    def _send(self, items: list[Outgoing], sent: list[Outgoing]) -> None:
        for item in items:
            self.broker.enqueue(item.message, delay=item.delay_ms)
            sent.append(item)

    async def send(self, items: list[Outgoing]) -> tuple[list[Outgoing], BaseException | None]:
        """Send in order; returns what was sent and the error that stopped it, if any."""
        sent: list[Outgoing] = []
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, self._send, items, sent)
        try:
            await asyncio.wait_for(future, self.timeout + 0.5 * len(items) / 100)
        except Exception as exc:  # noqa: BLE001 - any failure means "Redis is away": back off
            return list(sent), exc
        return list(sent), None

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run another blocking broker-side call (the reaper's) on the relay's thread."""
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self.executor, fn, *args), 30)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class Relay:
    """One process's outbox relay, lease keeper and reaper (an asyncio task)."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        runtime: JobRuntime,
        sender: BrokerSender | None,
        *,
        name: str = "api",
    ) -> None:
        self.settings = settings
        self.db = database
        self.runtime = runtime
        self.sender = sender
        self.name = name
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._remove_waker: Callable[[], None] | None = None
        self._last_reap = 0.0
        self._last_renew = 0.0
        self.reaper_state = reaper.ReaperState()
        self.sent_total = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self._remove_waker = add_waker(wake)
        self._task = loop.create_task(self.run(), name=f"codeatlas-relay-{self.name}")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._remove_waker is not None:
            self._remove_waker()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 15)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if self.sender is not None:
            self.sender.close()

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        backoff = 0.0
        failing_since: float | None = None
        while not self._stopping:
            try:
                more = await self.round()
            except Exception as exc:  # noqa: BLE001 - the relay must outlive any outage
                backoff = min(self.settings.jobs_relay_backoff_max, max(MIN_BACKOFF, backoff * 2))
                if failing_since is None:
                    failing_since = time.monotonic()
                    logger.warning("job relay (%s): %s; retrying with backoff", self.name, exc)
                else:
                    logger.debug("job relay (%s) still failing: %s", self.name, exc)
                # A wake-up does not shorten a backoff: commits during an outage must not
                # turn the relay into a busy loop of failing connections.
                await asyncio.sleep(backoff)
                continue
            if failing_since is not None:
                logger.info(
                    "job relay (%s) recovered after %.1fs",
                    self.name,
                    time.monotonic() - failing_since,
                )
                failing_since = None
            backoff = 0.0
            if more:
                continue
            # asyncio.timeout, not wait_for, which on Python 3.11 can swallow the cancellation
            # of a shut-down that arrives together with a wake-up (gh-86296).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.jobs_relay_poll_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def round(self) -> bool:
        """One pass; True when more messages are due right away."""
        now = time.monotonic()
        await flush_unrecorded(self.runtime)
        if now - self._last_renew >= self.settings.jobs_lease_renew_interval:
            await lease.renew(self.db, self.settings)
            self._last_renew = now
        if now - self._last_reap >= self.settings.jobs_reaper_interval:
            self._last_reap = now
            await reaper.reap(self.db, self.settings, self.sender, self.reaper_state)
        if self.sender is None:
            return False
        items = await claim(self.db, self.settings.jobs_relay_batch)
        if not items:
            return False
        sent, error = await self.sender.send(items)
        unsent = items[len(sent) :]
        await settle(self.db, sent, unsent)
        self.sent_total += len(sent)
        if error is not None:
            raise RuntimeError(f"broker unavailable: {type(error).__name__}: {error}")
        return len(items) >= self.settings.jobs_relay_batch
