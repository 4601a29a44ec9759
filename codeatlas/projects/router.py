"""The projects API: projects and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from codeatlas.auth.deps import CurrentUser
from codeatlas.db.session import SessionDep
from codeatlas.errors import Forbidden, responses
from codeatlas.models import Project, ProjectMembership, ProjectRole, User
from codeatlas.projects import service
from codeatlas.projects.deps import ProjectEditor, ProjectMember, ProjectOwner
from codeatlas.projects.events import ProjectDeleted, project_deleted_hooks
from codeatlas.projects.schemas import (
    InvitationOut,
    MemberAdd,
    MemberAdded,
    MemberOut,
    MemberUpdate,
    ProjectCreate,
    ProjectOut,
    ProjectUpdate,
)
from codeatlas.security.types import InvitationIdPath, UserIdPath

router = APIRouter(prefix="/projects", tags=["projects"])


def _project_out(project: Project, role: ProjectRole) -> ProjectOut:
    return ProjectOut(
        id=project.id,
        name=project.name,
        description=project.description,
        role=role,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


def _member_out(member: ProjectMembership, user: User) -> MemberOut:
    return MemberOut(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=ProjectRole(member.role),
        created_at=member.created_at,
    )


@router.post(
    "", status_code=status.HTTP_201_CREATED, responses=responses(401), summary="Create a project"
)
async def create_project(data: ProjectCreate, user: CurrentUser, session: SessionDep) -> ProjectOut:
    project = await service.create_project(session, user, data)
    return _project_out(project, ProjectRole.OWNER)


@router.get("", responses=responses(401), summary="Projects I am a member of")
async def list_projects(user: CurrentUser, session: SessionDep) -> list[ProjectOut]:
    return [_project_out(p, role) for p, role in await service.list_projects(session, user)]


@router.get("/{project_id}", responses=responses(401, 404), summary="One project")
async def get_project(member: ProjectMember) -> ProjectOut:
    return _project_out(member.project, member.role)


@router.patch("/{project_id}", responses=responses(401, 403, 404), summary="Rename or describe")
async def update_project(
    data: ProjectUpdate, member: ProjectEditor, session: SessionDep
) -> ProjectOut:
    project = await service.update_project(session, member.project, data)
    return _project_out(project, member.role)


@router.delete(
    "/{project_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
    summary="Delete a project, its documents and files (owner only)",
)
async def delete_project(
    member: ProjectOwner,
    session: SessionDep,
    hooks: Annotated[list[ProjectDeleted], Depends(project_deleted_hooks)],
) -> None:
    await service.delete_project(session, member.project, hooks)


@router.get("/{project_id}/members", responses=responses(401, 404), summary="Members")
async def list_members(member: ProjectMember, session: SessionDep) -> list[MemberOut]:
    return [_member_out(m, u) for m, u in await service.list_members(session, member.project_id)]


@router.post(
    "/{project_id}/members",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(401, 403, 404, 409),
    summary="Add a member by e-mail (owner only)",
)
async def add_member(data: MemberAdd, member: ProjectOwner, session: SessionDep) -> MemberAdded:
    """An account with this address becomes a member at once; any other address is invited
    and becomes a member with this role when an account with it is registered and verified.
    The answer (202) is the same in both cases, so it does not tell whether the address has
    an account. 409 ALREADY_MEMBER: the address is in the member list already."""
    email = await service.add_member(
        session, member.project_id, data.email, data.role, invited_by_id=member.user.id
    )
    return MemberAdded(email=email, role=data.role)


@router.get(
    "/{project_id}/invitations",
    responses=responses(401, 403, 404),
    summary="Pending invitations (owner only)",
)
async def list_invitations(member: ProjectOwner, session: SessionDep) -> list[InvitationOut]:
    """Addresses added as members that have no verified account yet."""
    invitations = await service.list_invitations(session, member.project_id)
    return [
        InvitationOut(id=i.id, email=i.email, role=ProjectRole(i.role), created_at=i.created_at)
        for i in invitations
    ]


@router.delete(
    "/{project_id}/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
    summary="Cancel an invitation (owner only)",
)
async def cancel_invitation(
    invitation_id: InvitationIdPath, member: ProjectOwner, session: SessionDep
) -> None:
    await service.cancel_invitation(session, member.project_id, invitation_id)


@router.patch(
    "/{project_id}/members/{user_id}",
    responses=responses(401, 403, 404, 409),
    summary="Change a member's role (owner only)",
)
async def change_role(
    user_id: UserIdPath, data: MemberUpdate, member: ProjectOwner, session: SessionDep
) -> MemberOut:
    changed, user = await service.change_role(session, member.project_id, user_id, data.role)
    return _member_out(changed, user)


@router.delete(
    "/{project_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 409),
    summary="Remove a member (owner), or leave the project (anyone)",
)
async def remove_member(user_id: UserIdPath, member: ProjectMember, session: SessionDep) -> None:
    if user_id != member.user.id and member.role != ProjectRole.OWNER:
        raise Forbidden("Only owners remove other members", details={"role": member.role.value})
    await service.remove_member(session, member.project_id, user_id)
