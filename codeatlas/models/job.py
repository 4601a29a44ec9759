"""Background jobs: one row per Dramatiq message, kept by :mod:`codeatlas.jobs.middleware`.

The row outlives what it points at (a deleted project keeps its job history), so the
project/document/user ids are plain indexed integers, not foreign keys.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from codeatlas.db.base import Base, TimestampMixin


class JobStatus(StrEnum):
    QUEUED = "queued"  # sent (or about to be, right after its transaction commits)
    RUNNING = "running"
    RETRYING = "retrying"  # an attempt failed; the broker holds it until its backoff ends
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a permanent error the actor declared not worth retrying
    DEAD = "dead"  # retries exhausted; the message sits in the dead-letter queue
    CANCELLED = "cancelled"  # cancelled by an admin; skipped when delivered, aborted if running


# An admin may retry or cancel a job in any state but `succeeded` (and retry a cancelled one).
RETRYABLE = frozenset(
    {
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.RETRYING,
        JobStatus.FAILED,
        JobStatus.DEAD,
        JobStatus.CANCELLED,
    }
)
CANCELLABLE = frozenset(
    {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.FAILED, JobStatus.DEAD}
)
_STATUSES = ", ".join(f"'{s.value}'" for s in JobStatus)


class Job(TimestampMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES})", name="status"),
        # The admin list: newest first, optionally by status or project (keyset on id).
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_project_id_id", "project_id", "id"),
        # The outbox relay's claim: pending messages, oldest first.
        Index("ix_jobs_send_at", "send_at"),
        # The reaper: running jobs by lease.
        Index("ix_jobs_status_lease_until", "status", "lease_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Dramatiq keeps a message's id across retries and redeliveries: one row per job.
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    actor: Mapped[str] = mapped_column(String(100), index=True)
    queue: Mapped[str] = mapped_column(String(100), default="default")
    # Actors take ids only, so the arguments are small; kept to re-send on retry.
    args: Mapped[list[Any]] = mapped_column(JSON, default=list)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    args_summary: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    project_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    document_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    # -- the outbox (:mod:`codeatlas.jobs.outbox`) ---------------------------------------
    # Set (to when it may leave) while the job's message still has to be sent to the broker;
    # NULL once a relay sent it. Written in the same transaction as the data it is about.
    send_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Bumped on every (re)queue: a relay clears `send_at` only for the version it sent.
    send_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A relay's claim on the pending message (another relay skips it until then).
    send_claimed_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    # -- the running attempt's lease (:mod:`codeatlas.jobs.lease`) ------------------------
    # The worker running the job renews this; a `running` job past it is reclaimed.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


def summarize_args(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in sorted(kwargs.items())]
    text = ", ".join(parts)
    return text if len(text) <= 200 else text[:197] + "..."
