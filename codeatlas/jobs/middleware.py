"""Dramatiq middleware: the request id of each job (2-A) and the ``jobs`` table (6-B).

``JobContext`` carries the request id from the request that sent a message to every log line
the job writes. ``JobTracking`` keeps one ``jobs`` row per message: running (attempts + 1)
before each attempt, then succeeded / retrying / failed / dead after it. Dramatiq keeps a
message's id across retries and crash redeliveries, so a SIGKILLed attempt followed by a
successful one shows as two attempts on one row.

Worker threads are synchronous; the database layer is async. The hooks run their updates on
Dramatiq's event-loop thread (the one async actors run on), which owns the worker's engine.

When the database is away (issue 10), neither write may cost the job its retries or its
history: a start that cannot be recorded puts the message back on the broker with a backoff
and skips it (no attempt is counted, Dramatiq's retry budget is untouched), and an end that
cannot be recorded goes to a small in-process buffer that this process's relay writes once the
database answers. The buffer dies with the process; then the job's lease expires and the
reaper re-queues it, so every job's outcome is still recorded, by its next attempt (actors
are idempotent). Retrying the message instead would re-run work that already succeeded.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from contextvars import ContextVar, Token
from typing import Any

from asgi_correlation_id.context import correlation_id
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.broker import Broker, MessageProxy
from dramatiq.common import q_name
from dramatiq.message import Message
from dramatiq.middleware import Middleware, SkipMessage
from dramatiq.worker import Worker
from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from codeatlas.core.context import get_request_id, is_valid_request_id, new_request_id
from codeatlas.db.base import utcnow
from codeatlas.db.session import atomic
from codeatlas.jobs import lease
from codeatlas.jobs.events import publish_job_progress
from codeatlas.jobs.runtime import JobRuntime
from codeatlas.models.job import Job, JobStatus, summarize_args

logger = logging.getLogger(__name__)

# The message id of the job running in this context (read by `report_progress`).
current_job_id: ContextVar[str | None] = ContextVar("current_job_id", default=None)

TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DEAD})
# A redelivered message whose row says this is not run again.
_SKIP = (JobStatus.SUCCEEDED.value, JobStatus.CANCELLED.value)
MAX_ERROR_LENGTH = 4000
# What "the database is away" looks like to a hook (connection refused/reset, timeouts, and
# SQLite's "database is locked"): defer, do not fail the job.
DB_UNAVAILABLE = (DBAPIError, OSError, TimeoutError)
# Attempt ends that could not be written: (message_id, attempt, status, error).
_unrecorded: deque[tuple[str, int, JobStatus, str | None]] = deque(maxlen=10_000)


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 3] + "..."


class LeaseHeld(Exception):
    """Another attempt of this job holds a live lease: this copy must wait, not run."""


# -- the jobs table ---------------------------------------------------------------------------


async def mark_running(runtime: JobRuntime, message: Message[Any] | MessageProxy) -> int | None:
    """Start an attempt (see :func:`_mark_running`) and tell the job's user."""
    attempt = await _mark_running(runtime, message)
    if attempt is not None:
        # The attempt is recorded (its lease is live): from here nothing may fail the start.
        # A failure here used to defer a job the table already called `running`, so every
        # copy then waited for the lease to expire (~60 s after a PostgreSQL outage).
        await announce(runtime, message.message_id)
    return attempt


async def _mark_running(runtime: JobRuntime, message: Message[Any] | MessageProxy) -> int | None:
    """Start an attempt: the attempt's number, or None when the job must be skipped.

    The UPDATE comes first so the transaction takes SQLite's write lock at once (a read
    followed by a write can fail with "database is locked" when another worker wrote in
    between); on PostgreSQL it locks the row.
    """
    now = utcnow()
    async with runtime.database().session() as session, atomic(session):
        attempts = await session.scalar(
            update(Job)
            .where(
                Job.message_id == message.message_id,
                Job.status.not_in(_SKIP),
                # A second copy of a message (redelivered by the broker and re-queued by the
                # reaper) must not run beside the attempt that holds a live lease.
                or_(
                    Job.status != JobStatus.RUNNING.value,
                    Job.lease_until.is_(None),
                    Job.lease_until < now,
                ),
            )
            .values(
                status=JobStatus.RUNNING.value,
                attempts=Job.attempts + 1,
                progress=0,
                started_at=now,
                finished_at=None,
                updated_at=now,
                lease_until=lease.lease_end(runtime.settings),
                worker_id=lease.worker_id(),
                send_at=None,
                send_claimed_until=None,
            )
            .returning(Job.attempts)
        )
        if attempts is not None:
            return int(attempts)
        status = await session.scalar(
            select(Job.status).where(Job.message_id == message.message_id)
        )
        if status == JobStatus.RUNNING.value:
            raise LeaseHeld(message.message_id)
        if status is not None:
            logger.info("job %s is %s: not running it again", message.message_id, status)
            return None
        # Sent without `enqueue()` (e.g. straight from `actor.send`): track it anyway.
        session.add(
            Job(
                message_id=message.message_id,
                actor=message.actor_name,
                queue=message.queue_name.removesuffix(".DQ"),
                args=list(message.args),
                kwargs=dict(message.kwargs),
                args_summary=summarize_args(message.args, message.kwargs),
                status=JobStatus.RUNNING.value,
                attempts=1,
                request_id=message.options.get("request_id"),
                progress=0,
                started_at=now,
                lease_until=lease.lease_end(runtime.settings),
                worker_id=lease.worker_id(),
            )
        )
        return 1


async def mark_finished(
    runtime: JobRuntime, message_id: str, attempt: int, status: JobStatus, error: str | None
) -> None:
    """End an attempt; ignored if a later attempt already started (a stale worker) or an
    admin cancelled the job meanwhile."""
    values: dict[str, Any] = {"status": status.value, "updated_at": utcnow(), "lease_until": None}
    if error is not None:
        values["last_error"] = error
    if status in TERMINAL:
        values["finished_at"] = utcnow()
    if status is JobStatus.SUCCEEDED:
        values["progress"] = 100
    async with runtime.database().session() as session, atomic(session):
        await session.execute(
            update(Job)
            .where(
                Job.message_id == message_id,
                Job.attempts == attempt,
                Job.status != JobStatus.CANCELLED.value,
            )
            .values(**values)
        )
    await announce(runtime, message_id)


async def set_progress(runtime: JobRuntime, message_id: str, percent: int) -> None:
    async with runtime.database().session() as session, atomic(session):
        await session.execute(
            update(Job)
            .where(Job.message_id == message_id, Job.status == JobStatus.RUNNING.value)
            .values(progress=max(0, min(100, percent)), updated_at=utcnow())
        )
    await announce(runtime, message_id)


async def announce(runtime: JobRuntime, message_id: str) -> None:
    """Publish the job's state as ``job.progress`` to its user (best effort, 2-A id)."""
    try:
        row = await _job_state(runtime, message_id)
    except (SQLAlchemyError, *DB_UNAVAILABLE) as exc:
        # Also OSError: asyncpg's refused connect (ConnectionRefusedError) is not wrapped.
        logger.warning("job.progress of %s not published: %s", message_id, describe_error(exc))
        return
    if row is None or row.user_id is None:
        return
    job = {
        "job_id": row.id,
        "message_id": message_id,
        "actor": row.actor,
        "status": row.status,
        "progress": row.progress,
        "attempts": row.attempts,
        "project_id": row.project_id,
        "document_id": row.document_id,
        "user_id": row.user_id,
        "request_id": row.request_id,
    }
    await publish_job_progress(runtime.redis(), runtime.settings, job)


async def _job_state(runtime: JobRuntime, message_id: str) -> Any:
    async with runtime.database().session() as session:
        return (
            await session.execute(
                select(
                    Job.id,
                    Job.actor,
                    Job.status,
                    Job.progress,
                    Job.attempts,
                    Job.project_id,
                    Job.document_id,
                    Job.user_id,
                    Job.request_id,
                ).where(Job.message_id == message_id)
            )
        ).first()


async def report_progress(percent: int) -> None:
    """Record the running job's progress (0-100); a no-op outside a job."""
    message_id = current_job_id.get()
    if message_id is not None:
        from codeatlas.jobs.runtime import get_runtime

        await set_progress(get_runtime(), message_id, percent)


async def give_up(runtime: JobRuntime, message: Message[Any] | MessageProxy, error: str) -> None:
    """Run the actor's ``on_give_up`` hook; its own failure is logged, never raised."""
    from codeatlas.jobs.actors import get_spec

    hook = get_spec(message.actor_name, runtime.settings).on_give_up
    if hook is None:
        return
    try:
        await hook(*message.args, **message.kwargs, error=error)
    except Exception:
        logger.exception("on_give_up of job %s (%s) failed", message.message_id, message.actor_name)


async def flush_unrecorded(runtime: JobRuntime) -> int:
    """Write the attempt ends the hooks could not (called by this process's relay)."""
    written = 0
    while _unrecorded:
        message_id, attempt, status, error = _unrecorded[0]
        await mark_finished(runtime, message_id, attempt, status, error)
        _unrecorded.popleft()
        written += 1
    if written:
        logger.info("recorded %d attempt end(s) written late (the database was away)", written)
    return written


def outcome(broker: Broker, message: MessageProxy, exception: BaseException | None) -> JobStatus:
    """The status an attempt leaves; must run after Dramatiq's Retries middleware decided."""
    if exception is None:
        return JobStatus.SUCCEEDED
    if not message.failed:
        return JobStatus.RETRYING
    throws = broker.get_actor(message.actor_name).options.get("throws")
    return JobStatus.FAILED if throws and isinstance(exception, throws) else JobStatus.DEAD


# -- middleware -------------------------------------------------------------------------------


class JobContext(Middleware):
    """Stamps the sender's request id on each message and restores it in the worker."""

    def __init__(self) -> None:
        self._local = threading.local()

    def before_enqueue(self, broker: Broker, message: Message[Any], delay: int) -> None:
        if "request_id" not in message.options:
            message.options["request_id"] = get_request_id()

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        rid = message.options.get("request_id")
        rid = rid if isinstance(rid, str) and is_valid_request_id(rid) else new_request_id()
        self._local.tokens = (correlation_id.set(rid), current_job_id.set(message.message_id))

    def _reset(self) -> None:
        tokens: tuple[Token[str | None], Token[str | None]] | None = getattr(
            self._local, "tokens", None
        )
        if tokens is not None:
            correlation_id.reset(tokens[0])
            current_job_id.reset(tokens[1])
            self._local.tokens = None

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._reset()

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self._reset()


class JobTracking(Middleware):
    """Keeps the ``jobs`` row of each message; must come before ``Retries`` in the list."""

    def __init__(self, runtime: JobRuntime) -> None:
        self.runtime = runtime
        self._local = threading.local()

    def _run(self, coro: Any) -> Any:
        loop_thread = get_event_loop_thread()
        if loop_thread is None:
            coro.close()
            raise RuntimeError("the AsyncIO middleware must come before JobTracking")
        return loop_thread.run_coroutine(coro)

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        self._local.attempt = None
        try:
            attempt = self._run(mark_running(self.runtime, message))
        except (*DB_UNAVAILABLE, LeaseHeld) as exc:
            # A copy that arrives while another attempt holds the lease waits its turn the
            # same way: dropping it would leave the job to the lease's expiry if that attempt
            # already ended without being able to record it.
            self._defer(broker, message, exc)
            raise SkipMessage(f"job {message.message_id}: deferred ({exc!r})") from exc
        if attempt is None:
            raise SkipMessage(f"job {message.message_id} is cancelled, running or done")
        self._local.attempt = attempt
        lease.started(message.message_id, attempt, threading.get_ident())

    def _defer(self, broker: Broker, message: MessageProxy, exc: BaseException) -> None:
        """Put the message back with a capped backoff without spending a retry."""
        settings = self.runtime.settings
        deferrals = int(message.options.get("db_deferrals", 0))
        delay = min(
            int(settings.jobs_relay_backoff_max * 1000),
            settings.jobs_min_backoff_ms * 2 ** min(deferrals, 16),
        )
        logger.warning(
            "job %s (%s): cannot start now (%s); sent back for %d ms",
            message.message_id,
            message.actor_name,
            describe_error(exc),
            delay,
        )
        copy = message.copy(
            queue_name=q_name(message.queue_name), options={"db_deferrals": deferrals + 1}
        )
        broker.enqueue(copy, delay=delay)

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        attempt: int | None = getattr(self._local, "attempt", None)
        if attempt is None:  # the start was not recorded: nothing to end
            return
        self._local.attempt = None
        lease.finished(message.message_id)
        if isinstance(exception, lease.JobCancelled):
            logger.info("job %s (%s) aborted: cancelled", message.message_id, message.actor_name)
            # The row already says `cancelled` (or a newer attempt owns it): nothing to record;
            # the retry Dramatiq sends for this exception is skipped or deduplicated.
            return
        status = outcome(broker, message, exception)
        error = describe_error(exception) if exception is not None else None
        if status is not JobStatus.SUCCEEDED:
            logger.warning(
                "job %s (%s) attempt %d: %s -> %s",
                message.message_id,
                message.actor_name,
                attempt,
                error,
                status.value,
            )
        try:
            self._run(mark_finished(self.runtime, message.message_id, attempt, status, error))
        except DB_UNAVAILABLE as exc:
            logger.warning(
                "job %s attempt %d ended %s but the database is away (%s): recorded later",
                message.message_id,
                attempt,
                status.value,
                describe_error(exc),
            )
            _unrecorded.append((message.message_id, attempt, status, error))
        if status in (JobStatus.FAILED, JobStatus.DEAD):
            self._run(give_up(self.runtime, message, error or ""))

    def after_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        # Runs before the AsyncIO middleware stops the loop (after-hooks run in reverse).
        if get_event_loop_thread() is not None:
            self._run(self.runtime.aclose())
