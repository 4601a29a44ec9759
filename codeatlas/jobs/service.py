"""Reading and acting on the ``jobs`` table: the admin list, retry, cancel, re-queue."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.errors import Conflict, NotFound
from codeatlas.jobs.enqueue import requeue
from codeatlas.models.job import CANCELLABLE, RETRYABLE, Job, JobStatus
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

MAX_PAGE = 200


@dataclass(slots=True)
class JobFilter:
    status: JobStatus | None = None
    actor: str | None = None
    project_id: int | None = None
    document_id: int | None = None


async def list_jobs(
    session: AsyncSession, filters: JobFilter, *, cursor: int | None, limit: int
) -> tuple[list[Job], int | None]:
    """Newest first; keyset pagination on id (``cursor``: the last id of the previous page)."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(Job).order_by(Job.id.desc()).limit(limit + 1)
    if filters.status is not None:
        query = query.where(Job.status == filters.status.value)
    if filters.actor:
        query = query.where(Job.actor == filters.actor)
    if filters.project_id is not None:
        query = query.where(Job.project_id == filters.project_id)
    if filters.document_id is not None:
        query = query.where(Job.document_id == filters.document_id)
    if cursor is not None:
        query = query.where(Job.id < cursor)
    rows = list((await session.scalars(query)).all())
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


async def status_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: count for status, count in rows}


async def get_job(session: AsyncSession, job_id: int, *, for_update: bool = False) -> Job:
    job = await session.get(Job, job_id, with_for_update=for_update)
    if job is None:
        raise NotFound("Job not found", error_code="JOB_NOT_FOUND")
    return job


async def retry_job(session: AsyncSession, job_id: int) -> Job:
    """Send a failed or dead job again, with a fresh retry budget, once the request commits."""
    job = await get_job(session, job_id, for_update=True)
    if job.status not in RETRYABLE:
        raise Conflict(
            f"Only failed or dead jobs can be retried; this one is {job.status}",
            error_code="JOB_NOT_RETRYABLE",
        )
    requeue(session, job)
    await session.flush()
    logger.info("job %s (%s) re-queued by an admin", job.message_id, job.actor)
    return job


async def cancel_job(session: AsyncSession, job_id: int) -> Job:
    """Cancel a job no worker has started; when its message arrives it is skipped."""
    job = await get_job(session, job_id, for_update=True)
    if job.status not in CANCELLABLE:
        raise Conflict(
            f"Only queued or retrying jobs can be cancelled; this one is {job.status}",
            error_code="JOB_NOT_CANCELLABLE",
        )
    job.status = JobStatus.CANCELLED.value
    job.finished_at = utcnow()
    await session.flush()
    logger.info("job %s (%s) cancelled by an admin", job.message_id, job.actor)
    return job


async def requeue_stuck_jobs(settings: Settings, older_than: float, *, dry_run: bool) -> list[str]:
    """Run-book "re-queue stuck jobs": send again jobs left `queued` for ``older_than`` s.

    A job stays queued without a message when Redis failed right after its transaction
    committed. Re-sending one whose message does exist only runs it twice, which actors
    tolerate (they are idempotent).
    """
    from codeatlas.jobs.broker import build_broker, close_broker
    from codeatlas.jobs.enqueue import BrokerDispatcher, set_dispatcher
    from codeatlas.jobs.runtime import JobRuntime

    db = Database(settings)
    broker = None if dry_run else build_broker(settings, JobRuntime(settings))
    previous = set_dispatcher(BrokerDispatcher(broker)) if broker is not None else None
    try:
        async with db.session() as session, atomic(session):
            cutoff = utcnow() - timedelta(seconds=older_than)
            jobs = (
                await session.scalars(
                    select(Job)
                    .where(Job.status == JobStatus.QUEUED.value, Job.updated_at < cutoff)
                    .order_by(Job.id)
                )
            ).all()
            if not dry_run:
                for job in jobs:
                    requeue(session, job)
            return [job.message_id for job in jobs]
    finally:
        if broker is not None:
            set_dispatcher(previous)
            close_broker(broker)
        await db.dispose()
