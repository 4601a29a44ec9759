"""JSON endpoints the browser app needs beyond the domain APIs: a file's content highlighted
line by line (server-side Pygments, so the page ships no highlighter) and the admin users list.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound
from sqlalchemy import select

from codeatlas.auth.deps import AdminUser
from codeatlas.auth.schemas import UserOut
from codeatlas.code import service as code_service
from codeatlas.code.lifecycle import StorageDep
from codeatlas.db.session import SessionDep
from codeatlas.errors import AppError, responses
from codeatlas.models import User
from codeatlas.projects.deps import ProjectMember
from codeatlas.settings import Settings

router = APIRouter()


class HighlightedFile(BaseModel):
    document_id: int
    path: str
    language: str | None
    lexer: str = Field(description="The Pygments lexer used.")
    lines: list[str] = Field(
        description="One HTML fragment per line (Pygments token spans, escaped text)."
    )


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: int | None = None


class NotViewable(AppError):
    status_code = 415
    error_code = "NOT_VIEWABLE"
    message = "This file cannot be shown as text; download it instead"


def _lexer(file_name: str, language: str | None) -> Lexer:
    for guess in (
        lambda: get_lexer_by_name(language or ""),
        lambda: get_lexer_for_filename(file_name),
    ):
        try:
            return guess()
        except ClassNotFound:
            continue
    return TextLexer()


def _highlight_lines(text: str, lexer: Lexer) -> list[str]:
    # HtmlFormatter closes and reopens token spans at every newline, so splitting its output
    # on "\n" yields self-contained lines even inside multi-line strings and comments.
    html = highlight(text, lexer, HtmlFormatter(nowrap=True))
    lines = html.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _read(fd: int, limit: int) -> bytes:
    try:
        chunks = []
        while data := os.read(fd, 64 * 1024):
            chunks.append(data)
        return b"".join(chunks)[:limit]
    finally:
        os.close(fd)


@router.get(
    "/projects/{project_id}/files/{document_id}/highlighted",
    tags=["code"],
    responses=responses(401, 404, 413, 415),
    summary="A file as highlighted HTML lines (for the code browser)",
)
async def highlighted_file(
    request: Request,
    document_id: int,
    member: ProjectMember,
    session: SessionDep,
    storage: StorageDep,
) -> HighlightedFile:
    settings: Settings = request.app.state.settings
    doc = await code_service.get_document(session, member.project_id, document_id)
    if not doc.parseable:
        raise NotViewable()
    if doc.size > settings.web_view_max_bytes:
        raise AppError(
            "The file is too large to show; download it instead",
            error_code="FILE_TOO_LARGE_TO_VIEW",
            status_code=413,
            details={"size": doc.size, "limit": settings.web_view_max_bytes},
        )
    fd = code_service.open_content(storage, doc)
    raw = await asyncio.to_thread(_read, fd, settings.web_view_max_bytes)
    lexer = _lexer(doc.file_name, doc.language)
    lines = await asyncio.to_thread(_highlight_lines, raw.decode("utf-8", "replace"), lexer)
    return HighlightedFile(
        document_id=doc.id, path=doc.file_path, language=doc.language, lexer=lexer.name, lines=lines
    )


@router.get("/admin/users", tags=["admin"], responses=responses(401, 403), summary="Users")
async def list_users(
    _: AdminUser,
    session: SessionDep,
    cursor: Annotated[int | None, Query(ge=0, description="`next_cursor` of the last page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> UserPage:
    """Every account, oldest first (admins only)."""
    query = select(User).order_by(User.id).limit(limit + 1)
    if cursor is not None:
        query = query.where(User.id > cursor)
    users = list((await session.scalars(query)).all())
    more = len(users) > limit
    users = users[:limit]
    return UserPage(
        items=[UserOut.model_validate(u) for u in users],
        next_cursor=users[-1].id if more and users else None,
    )
