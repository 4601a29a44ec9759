"""Request and response bodies of the projects API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field

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
    email: EmailStr = Field(
        max_length=320,
        description="The address to add: an account with it becomes a member at once; "
        "any other address is invited and becomes a member when an account with it is "
        "registered and verified.",
    )
    role: ProjectRole = ProjectRole.VIEWER


class MemberUpdate(BaseModel):
    role: ProjectRole


class MemberOut(BaseModel):
    user_id: int
    email: str
    full_name: str
    role: ProjectRole
    created_at: UtcDatetime


class MemberAdded(BaseModel):
    """The answer to adding a member: the same for every address, so that it does not tell
    whether the address has an account (issue 11, finding 8)."""

    email: str = Field(description="The address, normalised (trimmed, lower-cased).")
    role: ProjectRole
    status: Literal["invited"] = Field(
        "invited",
        description="Always `invited`: an account with this address is a member now, or "
        "becomes one once it is registered and verified (pending invitations: "
        "`GET .../invitations`).",
    )


class InvitationOut(BaseModel):
    id: int
    email: str
    role: ProjectRole
    created_at: UtcDatetime
