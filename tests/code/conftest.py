"""Fixtures of the code tests: an owner, an editor, a viewer, a stranger and their project."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from codeatlas.db.session import Database
from codeatlas.models import ProjectRole, User
from codeatlas.settings import Settings
from tests.code.helpers import make_project, make_user
from tests.factories import auth_headers


@dataclass
class Team:
    settings: Settings
    project_id: int
    owner: User
    editor: User
    viewer: User
    stranger: User

    def headers(self, user: User) -> dict[str, str]:
        return auth_headers(user, self.settings)

    @property
    def upload_root(self) -> Path:
        return self.settings.UPLOAD_ROOT

    @property
    def project_dir(self) -> Path:
        return self.settings.UPLOAD_ROOT / str(self.project_id)


@pytest.fixture
async def team(db: Database) -> Team:
    owner, editor, viewer, stranger = [await make_user(db) for _ in range(4)]
    project_id = await make_project(
        db, {owner: ProjectRole.OWNER, editor: ProjectRole.EDITOR, viewer: ProjectRole.VIEWER}
    )
    return Team(db.settings, project_id, owner, editor, viewer, stranger)
