"""Request and response bodies of the projects API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from codeatlas.core.timestamps import UtcDatetime
from codeatlas.models import ProjectRole
from codeatlas.security.types import OptionalPlainText, PlainText


class ProjectCreate(BaseModel):
    name: Annotated[str, PlainText] = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=10_000)


class ProjectUpdate(BaseModel):
    name: Annotated[str | None, OptionalPlainText] = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)


class ProjectOut(BaseModel):
    id: int
    name: str
    description: str
    role: ProjectRole = Field(description="The caller's role in the project.")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class MemberAdd(BaseModel):
    email: str = Field(min_length=3, max_length=320, description="The account to add.")
    role: ProjectRole = ProjectRole.VIEWER


class MemberUpdate(BaseModel):
    role: ProjectRole


class MemberOut(BaseModel):
    user_id: int
    email: str
    full_name: str
    role: ProjectRole
    created_at: UtcDatetime
