"""Fixtures of the knowledge API tests: an app whose jobs run inline (right after commit, on
the test's loop), a team with a project, and helpers to wait for the jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from codeatlas.db.session import Database
from codeatlas.knowledge.runtime import KnowledgeRuntime
from codeatlas.models import ProjectRole, User
from codeatlas.settings import Settings
from tests.code.helpers import make_project, make_user
from tests.factories import auth_headers

INLINE: dict[str, Any] = {"use_sync_background": True}


@dataclass
class Team:
    settings: Settings
    project_id: int
    other_project_id: int
    owner: User
    editor: User
    viewer: User
    stranger: User

    def headers(self, user: User) -> dict[str, str]:
        return auth_headers(user, self.settings)


@pytest.fixture
async def team(db: Database) -> Team:
    owner, editor, viewer, stranger = [await make_user(db) for _ in range(4)]
    project_id = await make_project(
        db, {owner: ProjectRole.OWNER, editor: ProjectRole.EDITOR, viewer: ProjectRole.VIEWER}
    )
    other = await make_project(db, {stranger: ProjectRole.OWNER}, name="elsewhere")
    return Team(db.settings, project_id, other, owner, editor, viewer, stranger)


@dataclass
class Kit:
    """A running app with inline jobs, its client, and its knowledge runtime."""

    app: FastAPI
    client: httpx.AsyncClient

    @property
    def runtime(self) -> KnowledgeRuntime:
        runtime: KnowledgeRuntime = self.app.state.knowledge
        return runtime

    async def drain(self) -> None:
        """Wait until every job enqueued so far (and every job those enqueued) has run."""
        await self.app.state.jobs_dispatcher.drain()


async def start_kit(app: FastAPI) -> AsyncIterator[Kit]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        yield Kit(app, c)


@pytest.fixture
async def kit(app_factory: Any) -> AsyncIterator[Kit]:
    async for k in start_kit(app_factory(**INLINE)):
        yield k
