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
    """Send a job again (any state but `succeeded`), with a fresh retry budget, through the
    outbox. A running attempt of it is aborted at its worker's next lease renewal."""
    job = await get_job(session, job_id, for_update=True)
    if job.status not in RETRYABLE:
        raise Conflict(
            f"A succeeded job cannot be retried; this one is {job.status}",
            error_code="JOB_NOT_RETRYABLE",
        )
    requeue(session, job)
    await session.flush()
    logger.info("job %s (%s) re-queued by an admin", job.message_id, job.actor)
    return job


async def cancel_job(session: AsyncSession, job_id: int) -> Job:
    """Cancel a job in any state but `succeeded`/`cancelled`: a message still to come is
    skipped; a running attempt is aborted at its worker's next lease renewal."""
    job = await get_job(session, job_id, for_update=True)
    if job.status not in CANCELLABLE:
        raise Conflict(
            f"Only unfinished jobs can be cancelled; this one is {job.status}",
            error_code="JOB_NOT_CANCELLABLE",
        )
    job.status = JobStatus.CANCELLED.value
    job.finished_at = utcnow()
    job.updated_at = utcnow()
    job.send_at = None  # nothing left to send
    await session.flush()
    logger.info("job %s (%s) cancelled by an admin", job.message_id, job.actor)
    return job


async def requeue_stuck_jobs(settings: Settings, older_than: float, *, dry_run: bool) -> list[str]:
    """Run-book "re-queue stuck jobs": jobs left `queued`/`retrying` for ``older_than`` s, and
    `running` ones whose lease expired, go back to the outbox.

    Only the database is needed (any backend, the embedded default too): the relay of any
    running `codeatlas serve`/`codeatlas worker` sends them. Re-sending a job whose message
    does exist only runs it twice, which actors tolerate (they are idempotent), and a second
    copy of a running job is skipped by its lease.
    """
    from sqlalchemy import or_

    db = Database(settings)
    try:
        async with db.session() as session, atomic(session):
            now = utcnow()
            cutoff = now - timedelta(seconds=older_than)
            jobs = (
                await session.scalars(
                    select(Job)
                    .where(
                        or_(
                            Job.status.in_([JobStatus.QUEUED.value, JobStatus.RETRYING.value])
                            & (Job.updated_at < cutoff),
                            (Job.status == JobStatus.RUNNING.value)
                            & (Job.lease_until.is_(None) | (Job.lease_until < now))
                            & (Job.updated_at < cutoff),
                        )
                    )
                    .order_by(Job.id)
                )
            ).all()
            if not dry_run:
                for job in jobs:
                    requeue(session, job)
            return [job.message_id for job in jobs]
    finally:
        await db.dispose()
