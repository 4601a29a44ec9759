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
    CANCELLED = "cancelled"  # cancelled by an admin while queued; skipped when delivered


RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.DEAD})
CANCELLABLE = frozenset({JobStatus.QUEUED, JobStatus.RETRYING})
_STATUSES = ", ".join(f"'{s.value}'" for s in JobStatus)


class Job(TimestampMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES})", name="status"),
        # The admin list: newest first, optionally by status or project (keyset on id).
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_project_id_id", "project_id", "id"),
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


def summarize_args(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in sorted(kwargs.items())]
    text = ", ".join(parts)
    return text if len(text) <= 200 else text[:197] + "..."
