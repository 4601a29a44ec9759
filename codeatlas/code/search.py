"""Filename search over code documents, and the search history.

Case-insensitive (ASCII letters: what ``lower()`` does on PostgreSQL's "C" collation and on
SQLite, so the query is folded the same way in Python) substring search over paths, ranked:

0. ``exact``: the basename equals the query;
1. ``prefix``: the basename starts with the query;
2. ``substring``: the query appears anywhere in the path (queries of 3+ characters).

Each rank is its own small query, answered by an index (6-A): ranks 0 and 1 by the btree
on ``(lower(file_name), project_id)`` (an equality, then a range: no LIKE, so no escaping
and no pattern-ops index needed), rank 2 on PostgreSQL by the ``pg_trgm`` GIN index on
``lower(file_path)``. Later ranks only run while results are missing. Each rank looks at
no more than :data:`CANDIDATES` rows before ordering them, so a fragment that matches half
a million files costs the same as one that matches fifty; ``truncated`` then says more
files match than were ranked.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, not_, or_, select
from sqlalchemy import text as sql_text
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.code.schemas import FilenameHit, MatchKind
from codeatlas.code.service import prefix_upper_bound
from codeatlas.db.base import utcnow
from codeatlas.errors import BadRequest, NotFound
from codeatlas.models import CodeDocument, ProjectMembership, SearchHistory

CANDIDATES = 500
# Substrings shorter than a trigram cannot use the trigram index and would scan every row
# in scope; one- and two-character queries match basenames (exact, prefix) only.
MIN_SUBSTRING = 3
KIND_FILENAME = "filename"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(text: str) -> str:
    """Lower-case ASCII letters only, exactly like SQL ``lower()`` on our path columns."""
    return text.translate(_ASCII_LOWER)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _scope(user_id: int, project_id: int | None) -> ColumnElement[bool]:
    """The documents the search may see, written so the planner picks the right index.

    One project: ``project_id = :id``. All of the caller's projects: membership is tested
    on ``project_id + 0``, which no index serves, so the planner drives the search from the
    name and trigram indexes and filters by membership, instead of AND-ing them with a
    bitmap of nearly every row or looping over the projects and re-scanning the trigram
    index once per project (both measured 10-100x slower on 1 M rows).
    """
    if project_id is not None:
        return CodeDocument.project_id == project_id
    mine = select(ProjectMembership.project_id).where(ProjectMembership.user_id == user_id)
    return (CodeDocument.project_id + 0).in_(mine.scalar_subquery())


async def _is_member(session: AsyncSession, user_id: int, project_id: int) -> bool:
    found = await session.scalar(
        select(ProjectMembership.project_id).where(
            ProjectMembership.project_id == project_id, ProjectMembership.user_id == user_id
        )
    )
    return found is not None


async def _rank(
    session: AsyncSession,
    condition: ColumnElement[bool],
    order: Callable[[Any], list[Any]],
    limit: int,
    match: MatchKind,
    scope: ColumnElement[bool],
) -> tuple[list[FilenameHit], bool]:
    """At most CANDIDATES matching rows, then ordered; True when the cap was reached."""
    candidates = (
        select(
            CodeDocument.id,
            CodeDocument.project_id,
            CodeDocument.file_path,
            CodeDocument.file_name,
            CodeDocument.language,
        )
        .where(scope, condition)
        .limit(CANDIDATES)
        .subquery()
    )
    count = func.count().over().label("n")
    stmt = (
        select(
            candidates.c.id,
            candidates.c.project_id,
            candidates.c.file_path,
            candidates.c.file_name,
            candidates.c.language,
            count,
        )
        .order_by(*order(candidates.c))
        .limit(limit)
    )
    rows = (await session.execute(stmt)).all()
    hits = [
        FilenameHit(
            document_id=r[0], project_id=r[1], path=r[2], name=r[3], language=r[4], match=match
        )
        for r in rows
    ]
    total = rows[0][5] if rows else 0
    return hits, total > limit


def _by_length(c: Any) -> list[Any]:
    """Shorter paths first: `src/app.py` before `tests/fixtures/old/app.py`."""
    return [func.length(c.file_path), c.file_path]


def _by_name(c: Any) -> list[Any]:
    """Closest basename first: `test` finds `tests.py` before `test_storage_long.py`."""
    return [func.length(c.file_name), func.lower(c.file_name), c.file_path]


async def search_filenames(
    session: AsyncSession,
    *,
    user_id: int,
    query: str,
    project_id: int | None,
    limit: int,
) -> tuple[list[FilenameHit], bool]:
    """Ranked matches and whether there were more; records the search in the history."""
    text = query.strip()
    if not text:
        raise BadRequest("Empty search query", error_code="EMPTY_QUERY")
    if project_id is not None and not await _is_member(session, user_id, project_id):
        raise NotFound("Project not found")
    q = fold(text)
    if session.get_bind().dialect.name == "postgresql":
        # asyncpg prepares statements; after five runs PostgreSQL may switch to a generic
        # plan made without the pattern, which picked 10-20x slower plans here (a common
        # name and a rare fragment need different indexes). Plan each search for its query.
        await session.execute(sql_text("SET LOCAL plan_cache_mode = force_custom_plan"))
    scope = _scope(user_id, project_id)
    name = func.lower(CodeDocument.file_name)
    path = CodeDocument.file_path
    upper = prefix_upper_bound(q)
    name_prefix = and_(name >= q, name < upper) if upper is not None else name >= q

    results: list[FilenameHit] = []
    truncated = False
    tiers: list[tuple[MatchKind, ColumnElement[bool], Callable[[Any], list[Any]]]] = []
    if "/" not in q:  # a basename never contains '/'
        tiers.append(("exact", name == q, _by_length))
        tiers.append(("prefix", and_(name_prefix, name != q), _by_name))
    if len(q) >= MIN_SUBSTRING:
        # In one project, the project's rows (the (project_id, file_path) index, rows
        # stored together) beat the trigram index, whose cost is set by how common the
        # query's trigrams are over all projects; `|| ''` keeps the planner off it there.
        haystack = path + "" if project_id is not None else path
        pattern = f"%{like_escape(q)}%"
        substring: ColumnElement[bool] = func.lower(haystack).like(pattern, escape="\\")
        if "/" not in q:
            substring = and_(substring, not_(name_prefix))
        tiers.append(("substring", substring, _by_length))

    for match, condition, order in tiers:
        room = limit - len(results)
        if room <= 0:
            truncated = True
            break
        hits, more = await _rank(session, condition, order, room, match, scope)
        results.extend(hits)
        truncated = truncated or more
    await session.execute(
        insert(SearchHistory).values(
            user_id=user_id,
            query=text[:512],
            kind=KIND_FILENAME,
            project_id=project_id,
            result_count=len(results),
            created_at=utcnow(),
        )
    )
    return results, truncated


# -- history --------------------------------------------------------------------------------


def _encode(created_at: datetime, row_id: int) -> str:
    raw = json.dumps({"t": created_at.isoformat(), "id": row_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(data["t"]), int(data["id"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadRequest("Invalid cursor", error_code="INVALID_CURSOR") from exc


async def list_history(
    session: AsyncSession, user_id: int, *, limit: int, cursor: str | None = None
) -> tuple[list[SearchHistory], str | None]:
    """The user's searches, newest first (the (user_id, created_at DESC) index)."""
    stmt = select(SearchHistory).where(SearchHistory.user_id == user_id)
    if cursor:
        at, row_id = _decode(cursor)
        stmt = stmt.where(
            or_(
                SearchHistory.created_at < at,
                and_(SearchHistory.created_at == at, SearchHistory.id < row_id),
            )
        )
    stmt = stmt.order_by(SearchHistory.created_at.desc(), SearchHistory.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(stmt))
    next_cursor = (
        _encode(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    )
    return rows[:limit], next_cursor
