"""Enqueueing jobs: the ``jobs`` row is the job AND its outgoing message (a transactional outbox).

``enqueue(session, "code.process_file", document_id)`` adds the job's row, with ``send_at``
set, to the caller's transaction: the job exists, and its message is pending, if and only if
that transaction commits. Nothing talks to Redis here or in a commit hook (a blocking Redis
call on the event loop froze requests for the whole outage, issue 10); the relay of
:mod:`codeatlas.jobs.outbox`, running in every API and worker process, sends pending messages
and is woken right after a commit that enqueued, so the happy path stays fast.

With USE_SYNC_BACKGROUND=true (development) there is no broker: the message is parked on the
session and run on the API's own event loop after the outermost commit (a rollback drops it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from dramatiq.broker import Broker
from dramatiq.message import Message
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from codeatlas.core.context import bind_request_id, get_request_id
from codeatlas.db.base import utcnow
from codeatlas.jobs.actors import ActorSpec, get_spec
from codeatlas.jobs.middleware import (
    LeaseHeld,
    current_job_id,
    describe_error,
    give_up,
    mark_finished,
    mark_running,
)
from codeatlas.jobs.runtime import JobRuntime, get_runtime
from codeatlas.models.job import Job, JobStatus, summarize_args
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

PENDING_KEY = "codeatlas.jobs.pending"
OUTBOX_KEY = "codeatlas.jobs.outbox"  # this transaction wrote pending messages

# Called (from any thread) after a commit that wrote pending messages: the relays of this
# process register here to wake up at once instead of at their next poll.
_wakers: list[Callable[[], None]] = []


def add_waker(waker: Callable[[], None]) -> Callable[[], None]:
    """Register ``waker``; returns a function that removes it."""
    _wakers.append(waker)

    def remove() -> None:
        if waker in _wakers:
            _wakers.remove(waker)

    return remove


def _wake_relays() -> None:
    for waker in list(_wakers):
        try:
            waker()
        except Exception:  # a closed loop: its relay is stopping anyway
            logger.debug("relay waker failed", exc_info=True)


class Dispatcher(Protocol):
    def dispatch(self, message: Message[Any], delay: int | None) -> None: ...


class BrokerDispatcher:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def dispatch(self, message: Message[Any], delay: int | None) -> None:
        # Kept for callers that choose a dispatcher; with the outbox, only the inline
        # dispatcher is consulted at commit, the relay sends everything else.
        self.broker.enqueue(message, delay=delay)


class InlineDispatcher:
    """USE_SYNC_BACKGROUND=true: run the actor on the running loop; no retries (dev only)."""

    def __init__(self, runtime: JobRuntime) -> None:
        self.runtime = runtime
        self.tasks: set[asyncio.Task[None]] = set()

    def dispatch(self, message: Message[Any], delay: int | None) -> None:
        spec = get_spec(message.actor_name, self.runtime.settings)
        task = asyncio.get_running_loop().create_task(run_inline(self.runtime, spec, message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        """Wait for every inline job started so far (shut-down, tests)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


async def run_inline(runtime: JobRuntime, spec: ActorSpec, message: Message[Any]) -> None:
    with bind_request_id(message.options.get("request_id")):
        token = current_job_id.set(message.message_id)
        try:
            try:
                attempt = await mark_running(runtime, message)
            except LeaseHeld:
                return  # inline (dev) jobs run once; another attempt is running it
            if attempt is None:
                return
            try:
                await spec.fn(*message.args, **message.kwargs)
            except Exception as exc:
                logger.exception("inline job %s (%s) failed", message.message_id, spec.name)
                error = describe_error(exc)
                await mark_finished(runtime, message.message_id, attempt, JobStatus.FAILED, error)
                await give_up(runtime, message, error)
            else:
                await mark_finished(runtime, message.message_id, attempt, JobStatus.SUCCEEDED, None)
        finally:
            current_job_id.reset(token)


_dispatcher: Dispatcher | None = None


def set_dispatcher(dispatcher: Dispatcher | None) -> Dispatcher | None:
    """Choose where committed jobs go; returns the previous choice (to restore it)."""
    global _dispatcher
    previous, _dispatcher = _dispatcher, dispatcher
    return previous


def get_dispatcher() -> Dispatcher | None:
    return _dispatcher


@dataclass(slots=True)
class _Pending:
    message: Message[Any]
    delay: int | None
    transaction: SessionTransaction


def _sync(session: AsyncSession | Session) -> Session:
    return session.sync_session if isinstance(session, AsyncSession) else session


def _inline() -> bool:
    return isinstance(_dispatcher, InlineDispatcher)


def _park(session: Session, message: Message[Any], delay: int | None) -> None:
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:
        raise RuntimeError("enqueue() needs a session inside a transaction (use atomic())")
    session.info.setdefault(PENDING_KEY, []).append(_Pending(message, delay, transaction))


def enqueue(
    session: AsyncSession | Session,
    actor: str,
    *args: int | str,
    settings: Settings | None = None,
    project_id: int | None = None,
    document_id: int | None = None,
    user_id: int | None = None,
    delay_ms: int | None = None,
) -> Job:
    """Add a job (and its pending message) to the session's transaction.

    ``args`` are ids (actors take ids only); ``project_id``/``document_id``/``user_id`` only
    label the ``jobs`` row for the admin list and events.
    """
    settings = settings or get_runtime().settings
    spec = get_spec(actor, settings)
    request_id = get_request_id()
    message: Message[Any] = Message(
        queue_name=spec.queue,
        actor_name=spec.name,
        args=tuple(args),
        kwargs={},
        options={"request_id": request_id},
    )
    job = Job(
        message_id=message.message_id,
        actor=spec.name,
        queue=spec.queue,
        args=list(args),
        kwargs={},
        args_summary=summarize_args(args, {}),
        status=JobStatus.QUEUED.value,
        attempts=0,
        max_retries=spec.dramatiq_options(settings)["max_retries"],
        request_id=request_id,
        user_id=user_id,
        project_id=project_id,
        document_id=document_id,
        progress=0,
        send_seq=1,
    )
    sync_session = _sync(session)
    if _inline():
        sync_session.add(job)
        _park(sync_session, message, delay_ms)
        return job
    if sync_session.get_transaction() is None:
        raise RuntimeError("enqueue() needs a session inside a transaction (use atomic())")
    job.send_at = utcnow() + timedelta(milliseconds=delay_ms or 0)
    sync_session.add(job)
    sync_session.info[OUTBOX_KEY] = True
    return job


def requeue(session: AsyncSession | Session, job: Job) -> None:
    """Send an existing job again (same message id, fresh retry count) after commit."""
    request_id = get_request_id()
    job.status = JobStatus.QUEUED.value
    job.request_id = request_id or job.request_id
    job.progress = 0
    job.finished_at = None
    job.updated_at = utcnow()
    job.lease_until = None
    job.worker_id = None
    if not _inline():
        job.send_at = utcnow()
        job.send_seq = (job.send_seq or 0) + 1
        job.send_claimed_until = None
        _sync(session).info[OUTBOX_KEY] = True
        return
    message: Message[Any] = Message(
        queue_name=job.queue,
        actor_name=job.actor,
        args=tuple(job.args),
        kwargs=dict(job.kwargs),
        options={"request_id": job.request_id},
        message_id=job.message_id,
    )
    _park(_sync(session), message, None)


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a SAVEPOINT was released; the outer transaction may still roll back
    if session.info.pop(OUTBOX_KEY, False):
        _wake_relays()  # non-blocking: each waker only sets an event on its relay's loop
    pending: list[_Pending] | None = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    dispatcher = _dispatcher
    for item in pending:
        if dispatcher is None:
            logger.error(
                "job %s (%s) committed but no dispatcher is configured; it was not sent",
                item.message.message_id,
                item.message.actor_name,
            )
            continue
        try:
            dispatcher.dispatch(item.message, item.delay)
        except Exception:
            # The row stays `queued`; `codeatlas jobs requeue-stuck` runs it again.
            logger.exception(
                "could not send job %s (%s)", item.message.message_id, item.message.actor_name
            )


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending: list[_Pending] | None = session.info.get(PENDING_KEY)
    if pending:
        session.info[PENDING_KEY] = [
            p for p in pending if not _within(p.transaction, previous_transaction)
        ]
