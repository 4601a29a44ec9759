"""Request and response bodies of the jobs admin API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from codeatlas.core.timestamps import UtcDatetime


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: str
    actor: str
    queue: str
    args_summary: str
    status: str = Field(
        description="queued, running, retrying, succeeded, failed, dead or cancelled."
    )
    attempts: int
    max_retries: int | None
    last_error: str | None
    request_id: str | None
    user_id: int | None
    project_id: int | None
    document_id: int | None
    progress: int = Field(description="0-100, reported by the actor.")
    created_at: UtcDatetime
    updated_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: int | None = Field(
        None, description="Pass as `cursor` for the next (older) page; null on the last page."
    )
    counts: dict[str, Any] = Field(
        default_factory=dict, description="Number of jobs per status (all jobs, unfiltered)."
    )
