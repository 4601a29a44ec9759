"""Leases of running jobs: who runs what in this process, renewing it, aborting cancelled ones.

A worker marks a job `running` with ``lease_until`` = now + JOBS_LEASE_SECONDS and its
``worker_id``; the relay of the same process renews the leases of the jobs this process is
running every JOBS_LEASE_RENEW_INTERVAL. A `running` job whose lease expired belongs to a
worker that died (SIGKILL, OOM) or lost the database: the reaper re-queues it through the
outbox. The lease is kept in the database, not in Redis, so reclaiming works on every backend
and through a Redis restart; renewing costs one UPDATE per process and interval.

The same renewal reads back which of these jobs an admin cancelled or re-queued meanwhile and
interrupts the thread running each one (Dramatiq's asynchronous ``Interrupt``, the mechanism
of its time limits): the actor's coroutine is cancelled and the attempt ends without being
recorded as a failure.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta

from dramatiq.threading import Interrupt, raise_thread_exception
from sqlalchemy import select, update

from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.models.job import Job, JobStatus
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


class JobCancelled(Interrupt):
    """Raised in a worker thread whose attempt is no longer its job's current one."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(slots=True)
class Running:
    attempt: int
    thread_id: int | None  # a Dramatiq worker thread (None: an inline job on the API loop)
    interrupted: bool = False


_lock = threading.Lock()
_running: dict[str, Running] = {}


def started(message_id: str, attempt: int, thread_id: int | None) -> None:
    with _lock:
        _running[message_id] = Running(attempt, thread_id)


def finished(message_id: str) -> None:
    with _lock:
        _running.pop(message_id, None)


def running() -> dict[str, int]:
    with _lock:
        return {message_id: entry.attempt for message_id, entry in _running.items()}


def lease_end(settings: Settings) -> object:
    return utcnow() + timedelta(seconds=settings.jobs_lease_seconds)


async def renew(db: Database, settings: Settings) -> int:
    """Renew the leases of this process's running jobs; abort the attempts that are no longer
    the job's current one (cancelled or re-queued by an admin, or reclaimed by the reaper
    while this worker was cut off from the database): the job's next attempt runs instead."""
    mine = running()
    if not mine:
        return 0
    async with db.session() as session, atomic(session):
        await session.execute(
            update(Job)
            .where(Job.message_id.in_(list(mine)), Job.status == JobStatus.RUNNING.value)
            .values(lease_until=lease_end(settings))
            .execution_options(synchronize_session=False)
        )
        rows = (
            await session.execute(
                select(Job.message_id, Job.status, Job.attempts).where(
                    Job.message_id.in_(list(mine))
                )
            )
        ).all()
    for message_id, status, attempts in rows:
        if status != JobStatus.RUNNING.value or attempts != mine[message_id]:
            abort(message_id, mine[message_id], status)
    return len(mine)


def abort(message_id: str, attempt: int, status: str) -> None:
    with _lock:
        entry = _running.get(message_id)
        if (
            entry is None
            or entry.attempt != attempt
            or entry.interrupted
            or entry.thread_id is None
        ):
            return
        entry.interrupted = True
        thread_id = entry.thread_id
    logger.info("job %s is now %s: aborting attempt %d here", message_id, status, attempt)
    raise_thread_exception(thread_id, JobCancelled)
