"""``GET /projects/{id}/indexing``: a project's indexing progress, for any member."""

from __future__ import annotations

from fastapi import APIRouter

from codeatlas.code.progress import project_progress
from codeatlas.code.schemas import IndexingProgress
from codeatlas.db.session import SessionDep
from codeatlas.errors import responses
from codeatlas.projects.deps import ProjectMember

router = APIRouter(prefix="/projects", tags=["code"])


@router.get("/{project_id}/indexing", responses=responses(401, 404), summary="Indexing progress")
async def indexing_progress(member: ProjectMember, session: SessionDep) -> IndexingProgress:
    """Files by status (`pending` counts files waiting or being parsed), chunks indexed of
    all chunks, an ETA from the recent rate (null while unknown), and each failed file's
    error. Binary files are not counted (they are never parsed)."""
    return IndexingProgress.of(await project_progress(session, member.project_id))
