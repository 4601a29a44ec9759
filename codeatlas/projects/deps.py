"""Who may touch a project: the ``ProjectMember`` dependency and its role-checking variants.

A caller who is not a member gets the same 404 as for a project that does not exist, so
the API never tells strangers which project ids are taken. A member whose role is too low
gets 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path
from sqlalchemy import select

from codeatlas.auth.deps import CurrentUser
from codeatlas.db.session import SessionDep
from codeatlas.errors import Forbidden, NotFound
from codeatlas.models import Project, ProjectMembership, ProjectRole, User


@dataclass(frozen=True)
class Membership:
    """The project a request is about, the caller, and the caller's role in it."""

    project: Project
    user: User
    role: ProjectRole

    @property
    def project_id(self) -> int:
        return self.project.id


async def get_membership(
    project_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    user: CurrentUser,
    session: SessionDep,
) -> Membership:
    row = (
        await session.execute(
            select(Project, ProjectMembership.role)
            .join(ProjectMembership, ProjectMembership.project_id == Project.id)
            .where(Project.id == project_id, ProjectMembership.user_id == user.id)
        )
    ).first()
    if row is None:
        raise NotFound("Project not found")
    return Membership(project=row[0], user=user, role=ProjectRole(row[1]))


def _require(*roles: ProjectRole) -> Callable[..., Awaitable[Membership]]:
    async def check(member: Annotated[Membership, Depends(get_membership)]) -> Membership:
        if member.role not in roles:
            raise Forbidden(
                f"This needs the {' or '.join(r.value for r in roles)} role in the project",
                details={"role": member.role.value, "required": [r.value for r in roles]},
            )
        return member

    return check


ProjectMember = Annotated[Membership, Depends(get_membership)]
"""Any member (viewer, editor or owner)."""

ProjectEditor = Annotated[Membership, Depends(_require(ProjectRole.OWNER, ProjectRole.EDITOR))]
"""A member who may change files: editor or owner."""

ProjectOwner = Annotated[Membership, Depends(_require(ProjectRole.OWNER))]
"""A member who may manage the project and its members."""
