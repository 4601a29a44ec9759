"""The plain HTML page ``/admin/jobs``: the jobs list with retry and cancel buttons.

Outside /api/v1 and the OpenAPI document; same admin rule as the API (an admin's token, or
the configured HTTP basic login, which is what a browser uses).
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from codeatlas.db.session import SessionDep
from codeatlas.errors import AppError, Forbidden
from codeatlas.jobs import service
from codeatlas.jobs.deps import AdminPrincipal, form_token
from codeatlas.models.job import CANCELLABLE, RETRYABLE, JobStatus
from codeatlas.settings import Settings

router = APIRouter(prefix="/admin/jobs", include_in_schema=False)

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


@router.get("", response_class=HTMLResponse)
async def jobs_page(
    request: Request,
    session: SessionDep,
    principal: AdminPrincipal,
    status: str = "",
    actor: str = "",
    project_id: str = "",
    cursor: int | None = None,
    notice: str = "",
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    statuses = [s.value for s in JobStatus]
    filters = service.JobFilter(
        status=JobStatus(status) if status in statuses else None,
        actor=actor or None,
        project_id=int(project_id) if project_id.isdigit() else None,
    )
    jobs, next_cursor = await service.list_jobs(session, filters, cursor=cursor, limit=50)
    next_query = None
    if next_cursor is not None:
        params = {"status": status, "actor": actor, "project_id": project_id}
        next_query = urlencode({**{k: v for k, v in params.items() if v}, "cursor": next_cursor})
    html = _templates.get_template("admin_jobs.html").render(
        jobs=jobs,
        counts=await service.status_counts(session),
        statuses=statuses,
        filters={"status": status, "actor": actor, "project_id": project_id},
        retryable={s.value for s in RETRYABLE},
        cancellable={s.value for s in CANCELLABLE},
        token=form_token(settings, principal),
        next_query=next_query,
        notice=notice,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _check_token(request: Request, principal: str, token: str) -> None:
    expected = form_token(request.app.state.settings, principal)
    if not hmac.compare_digest(token, expected):
        raise Forbidden("Invalid form token", error_code="CSRF_TOKEN_INVALID")


def _back(notice: str) -> RedirectResponse:
    return RedirectResponse("/admin/jobs?" + urlencode({"notice": notice}), status_code=303)


@router.post("/{job_id}/retry")
async def retry_from_page(
    job_id: int,
    request: Request,
    session: SessionDep,
    principal: AdminPrincipal,
    token: Annotated[str, Form()],
) -> RedirectResponse:
    _check_token(request, principal, token)
    try:
        job = await service.retry_job(session, job_id)
    except AppError as exc:
        return _back(exc.message)
    return _back(f"Job {job.id} ({job.actor}) re-queued.")


@router.post("/{job_id}/cancel")
async def cancel_from_page(
    job_id: int,
    request: Request,
    session: SessionDep,
    principal: AdminPrincipal,
    token: Annotated[str, Form()],
) -> RedirectResponse:
    _check_token(request, principal, token)
    try:
        job = await service.cancel_job(session, job_id)
    except AppError as exc:
        return _back(exc.message)
    return _back(f"Job {job.id} ({job.actor}) cancelled.")
