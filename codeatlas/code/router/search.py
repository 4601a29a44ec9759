"""GET /search/files (filename search) and GET /search/history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request

from codeatlas.auth.deps import CurrentUser
from codeatlas.code import search
from codeatlas.code.schemas import FilenameSearchResponse, SearchHistoryItem, SearchHistoryPage
from codeatlas.db.session import SessionDep
from codeatlas.errors import responses
from codeatlas.settings import Settings

router = APIRouter(prefix="/search", tags=["search"])


@router.get("/files", responses=responses(400, 401, 404), summary="Find files by name")
async def search_files(
    request: Request,
    background: BackgroundTasks,
    user: CurrentUser,
    session: SessionDep,
    q: Annotated[str, Query(min_length=1, max_length=256, description="Part of a path.")],
    project_id: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Only this project (else all mine).")
    ] = None,
    limit: Annotated[int, Query(ge=1)] = 20,
) -> FilenameSearchResponse:
    """Case-insensitive match on paths, ranked exact basename > basename prefix > substring,
    in one project or every project the caller belongs to. Recorded in the search history."""
    settings: Settings = request.app.state.settings
    hits, truncated = await search.search_filenames(
        session,
        user_id=user.id,
        query=q,
        project_id=project_id,
        limit=min(limit, settings.filename_search_max_results),
        defer_history=lambda row: background.add_task(
            search.record_history, request.app.state.db, row
        ),
    )
    return FilenameSearchResponse(query=q, project_id=project_id, results=hits, truncated=truncated)


@router.get("/history", responses=responses(400, 401), summary="My recent searches")
async def search_history(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> SearchHistoryPage:
    rows, next_cursor = await search.list_history(session, user.id, limit=limit, cursor=cursor)
    return SearchHistoryPage(
        items=[SearchHistoryItem.model_validate(r) for r in rows], next_cursor=next_cursor
    )
