"""What the projects domain tells other domains, without importing them: hooks run inside
the transaction that deletes a project, after its rows are gone.

Hooks are per application (kept on ``app.state``), registered at start-up by the domains
that keep something per project (the code domain removes the project's stored files), so
an app built by the factory never sees another app's hooks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

#: ``hook(session, project_id)``: runs before the deleting transaction commits.
ProjectDeleted = Callable[[AsyncSession, int], Awaitable[None]]

_STATE = "project_deleted_hooks"


def on_project_deleted(app: FastAPI, hook: ProjectDeleted) -> None:
    hooks: list[ProjectDeleted] = getattr(app.state, _STATE, None) or []
    hooks.append(hook)
    setattr(app.state, _STATE, hooks)


def project_deleted_hooks(request: Request) -> list[ProjectDeleted]:
    """The request's app's hooks (a FastAPI dependency)."""
    hooks: list[ProjectDeleted] = getattr(request.app.state, _STATE, None) or []
    return hooks
