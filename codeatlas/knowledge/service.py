"""Knowledge-base entries: who may read and write them, and writing them with their pieces.

Reading: a global entry (no project) is readable by every user; a project's entry by the
project's members. Strangers get 404, as for projects. Writing: a project's entry by its
editors and owners; a global entry is created by any user and changed or deleted by its
author or an admin.

Every write replaces the entry's pieces (:mod:`codeatlas.knowledge.chunking`) in the same
transaction and enqueues ``knowledge.embed_entry``; a deletion enqueues
``knowledge.delete_points``. Both jobs are sent only after the transaction commits.
"""

from __future__ import annotations

import base64
import binascii
import json

from sqlalchemy import ColumnElement, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.db.base import utcnow
from codeatlas.errors import AppError, BadRequest, Forbidden, NotFound
from codeatlas.jobs.enqueue import enqueue
from codeatlas.knowledge.chunking import entry_embed_text, sha256_text, split_entry
from codeatlas.knowledge.schemas import EntryCreate, EntryUpdate
from codeatlas.knowledge.search import member_project_ids
from codeatlas.models import KbEntry, KbEntryChunk, ProjectMembership, ProjectRole, User
from codeatlas.settings import Settings

WRITER_ROLES = (ProjectRole.OWNER.value, ProjectRole.EDITOR.value)


class EntryTooLarge(AppError):
    status_code = 413
    error_code = "ENTRY_TOO_LARGE"
    message = "The entry's content is longer than KB_ENTRY_MAX_CHARS"


async def _role(session: AsyncSession, user_id: int, project_id: int) -> str | None:
    return await session.scalar(
        select(ProjectMembership.role).where(
            ProjectMembership.project_id == project_id, ProjectMembership.user_id == user_id
        )
    )


async def _require_writer(session: AsyncSession, user: User, project_id: int) -> None:
    role = await _role(session, user.id, project_id)
    if role is None:
        raise NotFound("Project not found")
    if role not in WRITER_ROLES:
        raise Forbidden(
            "Writing this project's entries needs the owner or editor role",
            details={"role": role, "required": list(WRITER_ROLES)},
        )


def _check_size(settings: Settings, content: str) -> None:
    if len(content) > settings.kb_entry_max_chars:
        raise EntryTooLarge(details={"max_chars": settings.kb_entry_max_chars})


async def _write_pieces(session: AsyncSession, settings: Settings, entry: KbEntry) -> None:
    await session.execute(delete(KbEntryChunk).where(KbEntryChunk.entry_id == entry.id))
    rows = [
        {
            "entry_id": entry.id,
            "index": p.index,
            "start_line": p.start_line,
            "end_line": p.end_line,
            "text": p.text,
            "content_hash": sha256_text(entry_embed_text(entry.title, p.text)),
        }
        for p in split_entry(entry.content, settings.kb_chunk_chars)
    ]
    if rows:
        await session.execute(insert(KbEntryChunk), rows)


def _enqueue_embedding(
    session: AsyncSession, settings: Settings, entry: KbEntry, user: User
) -> None:
    enqueue(
        session,
        "knowledge.embed_entry",
        entry.id,
        settings=settings,
        project_id=entry.project_id,
        user_id=user.id,
    )


async def create_entry(
    session: AsyncSession, settings: Settings, user: User, data: EntryCreate
) -> KbEntry:
    _check_size(settings, data.content)
    if data.project_id is not None:
        await _require_writer(session, user, data.project_id)
    entry = KbEntry(
        project_id=data.project_id,
        title=data.title,
        content=data.content,
        tags=data.tags,
        author_id=user.id,
        version=1,
    )
    session.add(entry)
    await session.flush()
    await _write_pieces(session, settings, entry)
    _enqueue_embedding(session, settings, entry, user)
    return entry


async def get_visible_entry(session: AsyncSession, user: User, entry_id: int) -> KbEntry:
    entry = await session.get(KbEntry, entry_id)
    if entry is None:
        raise NotFound("Entry not found")
    if entry.project_id is not None and await _role(session, user.id, entry.project_id) is None:
        raise NotFound("Entry not found")
    return entry


async def _get_writable_entry(session: AsyncSession, user: User, entry_id: int) -> KbEntry:
    entry = await get_visible_entry(session, user, entry_id)
    if entry.project_id is not None:
        await _require_writer(session, user, entry.project_id)
    elif entry.author_id != user.id and not user.is_admin:
        raise Forbidden("Only its author or an admin may change a global entry")
    return entry


async def update_entry(
    session: AsyncSession, settings: Settings, user: User, entry_id: int, data: EntryUpdate
) -> KbEntry:
    entry = await _get_writable_entry(session, user, entry_id)
    if data.content is not None:
        _check_size(settings, data.content)
        entry.content = data.content
    if data.title is not None:
        entry.title = data.title
    if data.tags is not None:
        entry.tags = data.tags
    entry.version += 1
    entry.updated_at = utcnow()
    await session.flush()
    await _write_pieces(session, settings, entry)
    _enqueue_embedding(session, settings, entry, user)
    return entry


async def delete_entry(
    session: AsyncSession, settings: Settings, user: User, entry_id: int
) -> None:
    entry = await _get_writable_entry(session, user, entry_id)
    project_id = entry.project_id
    await session.delete(entry)
    await session.flush()
    enqueue(
        session,
        "knowledge.delete_points",
        "entry",
        entry_id,
        settings=settings,
        project_id=project_id,
        user_id=user.id,
    )


# -- listing -------------------------------------------------------------------------------


def _encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": entry_id}).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))["id"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadRequest("Invalid cursor", error_code="INVALID_CURSOR") from None
    if not isinstance(value, int):
        raise BadRequest("Invalid cursor", error_code="INVALID_CURSOR")
    return value


async def list_entries(
    session: AsyncSession,
    user: User,
    *,
    project_id: int | None,
    global_only: bool,
    tag: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[KbEntry], str | None]:
    """Visible entries, newest id first, keyset-paginated."""
    conditions: list[ColumnElement[bool]] = []
    if global_only:
        conditions.append(KbEntry.project_id.is_(None))
    elif project_id is not None:
        if await _role(session, user.id, project_id) is None:
            raise NotFound("Project not found")
        conditions.append(KbEntry.project_id == project_id)
    else:
        mine = await member_project_ids(session, user.id)
        conditions.append(or_(KbEntry.project_id.is_(None), KbEntry.project_id.in_(mine)))
    if cursor is not None:
        conditions.append(KbEntry.id < _decode_cursor(cursor))
    rows = list(
        await session.scalars(
            select(KbEntry).where(*conditions).order_by(KbEntry.id.desc()).limit(limit + 1)
        )
    )
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1].id) if len(rows) > limit else None
    if tag is not None:
        # Tags are a small JSON list per row; filtering the page in Python keeps the query
        # portable. A filtered page may hold fewer than `limit` entries: follow next_cursor.
        wanted = tag.strip().lower()
        page = [r for r in page if wanted in (r.tags or [])]
    return page, next_cursor
