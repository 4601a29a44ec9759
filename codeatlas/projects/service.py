"""Business rules of projects and their members (flush only; the request commits)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.auth.activation import on_activation
from codeatlas.errors import Conflict, NotFound
from codeatlas.models import Project, ProjectInvitation, ProjectMembership, ProjectRole, User
from codeatlas.projects.events import ProjectDeleted
from codeatlas.projects.schemas import ProjectCreate, ProjectUpdate


async def create_project(session: AsyncSession, user: User, data: ProjectCreate) -> Project:
    """A new project with its creator as owner."""
    project = Project(name=data.name.strip(), description=data.description, created_by_id=user.id)
    session.add(project)
    await session.flush()
    session.add(
        ProjectMembership(project_id=project.id, user_id=user.id, role=ProjectRole.OWNER.value)
    )
    await session.flush()
    await session.refresh(project)
    return project


async def list_projects(session: AsyncSession, user: User) -> list[tuple[Project, ProjectRole]]:
    rows = await session.execute(
        select(Project, ProjectMembership.role)
        .join(ProjectMembership, ProjectMembership.project_id == Project.id)
        .where(ProjectMembership.user_id == user.id)
        .order_by(Project.id)
    )
    return [(project, ProjectRole(role)) for project, role in rows.tuples()]


async def update_project(session: AsyncSession, project: Project, data: ProjectUpdate) -> Project:
    if data.name is not None:
        project.name = data.name.strip()
    if data.description is not None:
        project.description = data.description
    await session.flush()
    await session.refresh(project)
    return project


async def delete_project(
    session: AsyncSession, project: Project, hooks: Sequence[ProjectDeleted] = ()
) -> None:
    """Delete the project, its members and documents (FK cascade), then run the other
    domains' hooks (the code domain removes the stored files) in the same transaction."""
    project_id = project.id
    await session.delete(project)
    await session.flush()
    for hook in hooks:
        await hook(session, project_id)


async def list_members(
    session: AsyncSession, project_id: int
) -> list[tuple[ProjectMembership, User]]:
    rows = await session.execute(
        select(ProjectMembership, User)
        .join(User, User.id == ProjectMembership.user_id)
        .where(ProjectMembership.project_id == project_id)
        .order_by(ProjectMembership.created_at, User.id)
    )
    return list(rows.tuples())


async def _membership(session: AsyncSession, project_id: int, user_id: int) -> ProjectMembership:
    member = await session.get(ProjectMembership, (project_id, user_id))
    if member is None:
        raise NotFound("Member not found")
    return member


async def _owner_count(session: AsyncSession, project_id: int) -> int:
    """Owners of the project, counted under a lock on its row so two concurrent
    demotions cannot both see "another owner is left"."""
    await session.execute(select(Project.id).where(Project.id == project_id).with_for_update())
    return int(
        await session.scalar(
            select(func.count())
            .select_from(ProjectMembership)
            .where(
                ProjectMembership.project_id == project_id,
                ProjectMembership.role == ProjectRole.OWNER.value,
            )
        )
        or 0
    )


async def add_member(
    session: AsyncSession,
    project_id: int,
    email: str,
    role: ProjectRole,
    *,
    invited_by_id: int | None = None,
) -> str:
    """Add the account with this address, or invite the address when it has none.

    The caller answers the same either way (issue 11, finding 8): an unknown address is kept
    as a :class:`ProjectInvitation` (inviting it again changes the role) that
    :func:`claim_invitations` turns into a membership once the address's account is
    verified. Returns the normalised address. 409 ALREADY_MEMBER only for an address already
    in the member list, which the owner can read anyway.
    """
    email = email.strip().lower()
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        await _invite(session, project_id, email, role, invited_by_id)
        return email
    if await session.get(ProjectMembership, (project_id, user.id)) is not None:
        raise Conflict("Already a member", error_code="ALREADY_MEMBER")
    member = ProjectMembership(project_id=project_id, user_id=user.id, role=role.value)
    session.add(member)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # added concurrently
        raise Conflict("Already a member", error_code="ALREADY_MEMBER") from exc
    return email


async def _pending(session: AsyncSession, project_id: int, email: str) -> ProjectInvitation | None:
    return await session.scalar(
        select(ProjectInvitation).where(
            ProjectInvitation.project_id == project_id, ProjectInvitation.email == email
        )
    )


async def _invite(
    session: AsyncSession,
    project_id: int,
    email: str,
    role: ProjectRole,
    invited_by_id: int | None,
) -> None:
    invitation = await _pending(session, project_id, email)
    if invitation is None:
        invitation = ProjectInvitation(
            project_id=project_id, email=email, role=role.value, invited_by_id=invited_by_id
        )
        try:
            async with session.begin_nested():
                session.add(invitation)
                await session.flush()
            return
        except IntegrityError:  # invited concurrently: the later role wins, as below
            invitation = await _pending(session, project_id, email)
            assert invitation is not None
    invitation.role = role.value
    await session.flush()


async def list_invitations(session: AsyncSession, project_id: int) -> list[ProjectInvitation]:
    rows = await session.scalars(
        select(ProjectInvitation)
        .where(ProjectInvitation.project_id == project_id)
        .order_by(ProjectInvitation.created_at, ProjectInvitation.id)
    )
    return list(rows)


async def cancel_invitation(session: AsyncSession, project_id: int, invitation_id: int) -> None:
    invitation = await session.get(ProjectInvitation, invitation_id)
    if invitation is None or invitation.project_id != project_id:
        raise NotFound("Invitation not found")
    await session.delete(invitation)
    await session.flush()


@on_activation
async def claim_invitations(session: AsyncSession, user: User) -> int:
    """Turn the invitations of the user's (verified) address into memberships with the
    invited roles; a project the user already belongs to keeps the current role. Returns
    the number of memberships created."""
    invitations = await session.scalars(
        select(ProjectInvitation).where(ProjectInvitation.email == user.email)
    )
    created = 0
    for invitation in list(invitations):
        if await session.get(ProjectMembership, (invitation.project_id, user.id)) is None:
            try:
                async with session.begin_nested():
                    session.add(
                        ProjectMembership(
                            project_id=invitation.project_id,
                            user_id=user.id,
                            role=invitation.role,
                        )
                    )
                    await session.flush()
                created += 1
            except IntegrityError:  # added directly in the meantime: that role stays
                pass
        await session.delete(invitation)
    await session.flush()
    return created


async def change_role(
    session: AsyncSession, project_id: int, user_id: int, role: ProjectRole
) -> tuple[ProjectMembership, User]:
    member = await _membership(session, project_id, user_id)
    if (
        member.role == ProjectRole.OWNER.value
        and role != ProjectRole.OWNER
        and await _owner_count(session, project_id) <= 1
    ):
        raise Conflict("A project keeps at least one owner", error_code="LAST_OWNER")
    member.role = role.value
    await session.flush()
    user = await session.get(User, user_id)
    assert user is not None
    return member, user


async def remove_member(session: AsyncSession, project_id: int, user_id: int) -> None:
    member = await _membership(session, project_id, user_id)
    if member.role == ProjectRole.OWNER.value and await _owner_count(session, project_id) <= 1:
        raise Conflict("A project keeps at least one owner", error_code="LAST_OWNER")
    await session.delete(member)
    await session.flush()
