"""The jobs admin API: list jobs, retry failed/dead ones, cancel queued ones (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from codeatlas.db.session import SessionDep
from codeatlas.errors import responses
from codeatlas.jobs import service
from codeatlas.jobs.deps import AdminPrincipal
from codeatlas.jobs.schemas import JobOut, JobPage
from codeatlas.models.job import JobStatus
from codeatlas.security.types import JobIdPath, OptionalIdQuery

router = APIRouter(prefix="/admin/jobs", tags=["admin"], responses=responses(401, 403))


@router.get("", response_model=JobPage)
async def list_jobs(
    session: SessionDep,
    _: AdminPrincipal,
    status: JobStatus | None = None,
    actor: str | None = None,
    project_id: OptionalIdQuery = None,
    document_id: OptionalIdQuery = None,
    cursor: Annotated[int | None, Query(description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> JobPage:
    """Background jobs, newest first, filtered by status, actor, project or document."""
    filters = service.JobFilter(status, actor, project_id, document_id)
    jobs, next_cursor = await service.list_jobs(session, filters, cursor=cursor, limit=limit)
    return JobPage(
        items=[JobOut.model_validate(j) for j in jobs],
        next_cursor=next_cursor,
        counts=await service.status_counts(session),
    )


@router.get("/{job_id}", response_model=JobOut, responses=responses(404))
async def get_job(job_id: JobIdPath, session: SessionDep, _: AdminPrincipal) -> JobOut:
    """One job, with its last error."""
    return JobOut.model_validate(await service.get_job(session, job_id))


@router.post("/{job_id}/retry", response_model=JobOut, responses=responses(404, 409))
async def retry_job(job_id: JobIdPath, session: SessionDep, _: AdminPrincipal) -> JobOut:
    """Send a `failed` or `dead` job again (same job, fresh retries); it becomes `queued`."""
    return JobOut.model_validate(await service.retry_job(session, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, responses=responses(404, 409))
async def cancel_job(job_id: JobIdPath, session: SessionDep, _: AdminPrincipal) -> JobOut:
    """Cancel a `queued` (or `retrying`) job: workers skip it when it arrives."""
    return JobOut.model_validate(await service.cancel_job(session, job_id))
