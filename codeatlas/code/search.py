"""Filename search over code documents, and the search history.

Case-insensitive (ASCII letters: what ``lower()`` does on PostgreSQL's "C" collation and on
SQLite, so the query is folded the same way in Python) substring search over paths, ranked:

0. ``exact``: the basename equals the query;
1. ``prefix``: the basename starts with the query;
2. ``substring``: the query appears anywhere in the path (queries of 3+ characters).

One search is one statement (6-A): the ranks are the branches of a ``UNION ALL`` under a
``LIMIT``, and PostgreSQL's Append runs its branches in order and the LIMIT stops pulling,
so a later rank only runs while results are missing. On PostgreSQL the history row is
written by a data-modifying CTE of the same statement (same transaction, no extra round
trip; such a statement is never run in parallel, so the order of the branches holds);
SQLite gets a second statement. Each rank looks at no more than :data:`CANDIDATES` rows
(:data:`SUBSTRING_CANDIDATES` for substrings) before ordering them, so a fragment that
matches half a million files costs about the same as one that matches fifty.

Indexes (migration 0006): ranks 0 and 1 are range scans of ``(lower(file_name),
project_id)``, which on PostgreSQL includes every column read (index-only); rank 2 over all
the caller's projects on PostgreSQL is pre-filtered by the ``pg_trgm`` GIN index on the
path without separators (:func:`codeatlas.models.code.squashed_path`) and rechecked with
the exact ``LIKE``. Which trigrams to ask for, and whether a fragment is so common that a
plain scan finds its candidates sooner than the index, PostgreSQL's statistics cannot say;
a sample of the paths (:class:`PathSample`) does.

Each statement text has one good plan whatever its parameters (an index range, a trigram
bitmap or a scan, each under a literal cap), so PostgreSQL may keep a generic plan for the
prepared statement: the earlier per-search ``SET LOCAL plan_cache_mode =
force_custom_plan`` (one more round trip and ~0.5 ms of planning each time) is gone. The
statements are built once per shape (:func:`_statement`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy import text as sql_text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.code.schemas import FilenameHit, MatchKind
from codeatlas.code.service import prefix_upper_bound
from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.errors import BadRequest, NotFound
from codeatlas.models import CodeDocument, ProjectMembership, SearchHistory
from codeatlas.models.code import PATH_SEPARATORS, squashed_path

logger = logging.getLogger(__name__)

CANDIDATES = 500
# The substring rank reads its candidates from the heap (a trigram match is only a
# candidate until the path is rechecked, and common fragments cost a read per candidate),
# so it looks at fewer; never fewer than asked for.
SUBSTRING_CANDIDATES = 64
# Substrings shorter than a trigram cannot use the trigram index and would scan every row
# in scope; one- and two-character queries match basenames (exact, prefix) only. A longer
# query without three letters or digits in a row (`a.b`, `e_c`) has no trigram either: its
# substring rank is a scan that stops at the cap (slow only when it matches almost nothing).
MIN_SUBSTRING = 3
# A GIN scan walks the posting list of every trigram it is asked for, so its cost grows
# with the query's length even when one trigram alone is rare (a 27-character path: 6 ms
# for its 20 trigrams, 0.2 ms for 3 of them). Longer queries ask the index for this many,
# the rarest in the path sample; the exact LIKE rechecks the rest.
INDEX_TRIGRAMS = 3
# A fragment in at least this share of the sampled paths skips the trigram index: a
# sequential scan finds SUBSTRING_CANDIDATES matches in a few thousand rows, while the
# bitmap of a common fragment's trigrams costs 5-10 ms to build on 1 M rows.
DENSE_SHARE = 0.01
SAMPLE_ROWS = 5000
SAMPLE_SECONDS = 600.0
KIND_FILENAME = "filename"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SQUASH = str.maketrans("", "", PATH_SEPARATORS)
# Runs of letters and digits: pg_trgm's words, the only places trigrams come from.
_WORD = re.compile(r"[^\W_]{3,}")


def fold(text: str) -> str:
    """Lower-case ASCII letters only, exactly like SQL ``lower()`` on our path columns."""
    return text.translate(_ASCII_LOWER)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def trigram_pattern(folded: str, frequency: Callable[[str], int]) -> str | None:
    """The ``LIKE`` pattern the trigram index is asked for, or None when it has no trigram.

    It matches the squashed path (separators deleted) of every path that contains
    ``folded``: deleting the same characters from both keeps a substring a substring, and
    ``%abc%xyz%`` with pieces taken in query order is implied by the whole. A query with
    more than INDEX_TRIGRAMS trigrams is asked for its rarest ones (``frequency``) that do
    not overlap (``%abc%bcd%`` would miss ``abcd``).
    """
    squashed = folded.translate(_SQUASH)
    starts = [m.start() + i for m in _WORD.finditer(squashed) for i in range(len(m[0]) - 2)]
    if not starts:
        return None
    if len(starts) <= INDEX_TRIGRAMS:
        return f"%{like_escape(squashed)}%"
    picked: list[int] = []
    for start in sorted(starts, key=lambda p: (frequency(squashed[p : p + 3]), p)):
        if all(abs(start - other) >= 3 for other in picked):
            picked.append(start)
            if len(picked) == INDEX_TRIGRAMS:
                break
    return "%" + "%".join(like_escape(squashed[p : p + 3]) for p in sorted(picked)) + "%"


@dataclass
class PathSample:
    """About SAMPLE_ROWS lower-cased paths from the whole table: how common a fragment or a
    trigram is, which PostgreSQL's statistics do not say. It only chooses how to search
    (trigram index or not, which trigrams); the answer is the same either way, so a sample
    that is minutes old is fine."""

    taken: float
    size: int
    paths: str  # "\n".join(lower(file_path))
    trigrams: dict[str, int]  # sampled paths (without separators) that contain each

    def share(self, fragment: str) -> float:
        return self.paths.count(fragment) / self.size if self.size else 0.0

    def trigram_count(self, trigram: str) -> int:
        return self.trigrams.get(trigram, 0)


# Per database URL; the first search of a process, and one every SAMPLE_SECONDS, reads a
# sample: TABLESAMPLE SYSTEM reads a few random pages, and PostgreSQL counts the trigrams
# (show_trgm, the index's own split): ~45 ms of the database's time on 1 M rows.
_SAMPLES: dict[str, PathSample] = {}
_SAMPLE_SQL = sql_text(
    "WITH sample AS ("
    " SELECT lower(file_path) AS path FROM code_documents TABLESAMPLE SYSTEM ("
    "  (SELECT least(100, 100.0 * :rows / greatest(reltuples, 1)) FROM pg_class"
    "   WHERE oid = 'code_documents'::regclass)) LIMIT :limit)"
    " SELECT NULL AS trigram, string_agg(path, E'\\n') AS paths, count(*) AS n FROM sample"
    " UNION ALL"
    " SELECT t, NULL, count(*) FROM sample,"
    f" unnest(show_trgm(translate(path, '{PATH_SEPARATORS}', ''))) AS t GROUP BY t"
)


async def path_sample(session: AsyncSession) -> PathSample:
    """The sample of this database (PostgreSQL), read again when older than SAMPLE_SECONDS."""
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    sample = _SAMPLES.get(key)
    if sample is None or time.monotonic() - sample.taken > SAMPLE_SECONDS:
        params = {"rows": SAMPLE_ROWS, "limit": 4 * SAMPLE_ROWS}
        rows = (await session.execute(_SAMPLE_SQL, params)).all()
        total = rows[0]
        sample = PathSample(
            time.monotonic(), total.n, total.paths or "", {r.trigram: r.n for r in rows[1:]}
        )
        _SAMPLES[key] = sample
    return sample


def _by_length(c: Any) -> list[Any]:
    """Shorter paths first: `src/app.py` before `tests/fixtures/old/app.py`."""
    return [func.length(c.file_path), c.file_path]


def _by_name(c: Any) -> list[Any]:
    """Closest basename first: `test` finds `tests.py` before `test_storage_long.py`."""
    return [func.length(c.file_name), func.lower(c.file_name), c.file_path]


@dataclass(frozen=True)
class _Shape:
    """What decides the text of the statement; its values are bind parameters."""

    basename: bool  # no '/' in the query: the exact and prefix ranks run
    substring: bool  # 3+ characters: the substring rank runs
    trigrams: bool  # the trigram index pre-filters the substring rank
    bounded: bool  # the basename range has an upper bound (see prefix_upper_bound)
    one_project: bool
    postgresql: bool
    substring_cap: int  # candidates the substring rank reads (a literal in the SQL)

    @property
    def matches(self) -> list[MatchKind]:
        ranks: list[MatchKind] = ["exact", "prefix"] if self.basename else []
        return ranks + (["substring"] if self.substring else [])


_DOCS = cast(Table, CodeDocument.__table__)
_HISTORY = cast(Table, SearchHistory.__table__)
# Columns of the table rather than of the mapped class: the statement stays a Core select
# and skips the ORM's per-execution compile step (about 0.3 ms here).
_COLUMNS = [_DOCS.c[n] for n in ("id", "project_id", "file_path", "file_name", "language")]
_HISTORY_COLUMNS = ["user_id", "query", "kind", "project_id", "result_count", "created_at"]


def _param(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


def _conditions(shape: _Shape) -> list[tuple[ColumnElement[bool], Callable[[Any], list[Any]]]]:
    c = _DOCS.c
    name = func.lower(c.file_name)
    q = _param("q", c.file_name)
    name_prefix = (
        and_(name >= q, name < _param("upper", c.file_name)) if shape.bounded else name >= q
    )
    out: list[tuple[ColumnElement[bool], Callable[[Any], list[Any]]]] = []
    if shape.basename:
        out.append((name == q, _by_length))
        out.append((and_(name_prefix, name != q), _by_name))
    if shape.substring:
        substring: ColumnElement[bool] = func.lower(c.file_path).like(
            _param("like", c.file_path), escape="\\"
        )
        if shape.trigrams:
            substring = and_(
                squashed_path(c.file_path).like(_param("trigrams", c.file_path)), substring
            )
        if shape.basename:
            substring = and_(substring, not_(name_prefix))
        out.append((substring, _by_length))
    return out


def _scope(shape: _Shape) -> tuple[ColumnElement[bool], Any]:
    """(the documents the search may see, whether the caller may search there).

    All of the caller's projects: membership is tested on ``project_id + 0``, which no
    index serves, so the planner drives the search from the name and trigram indexes and
    filters by membership, instead of AND-ing them with a bitmap of nearly every row or
    looping over the projects and re-scanning the trigram index once per project (both
    measured 10-100x slower on 1 M rows). One project: its rows, and only for a member (an
    uncorrelated EXISTS: one check, and no rank runs for a stranger).
    """
    members = ProjectMembership.__table__.c
    user_id = _param("user_id", members.user_id)
    if not shape.one_project:
        mine = select(members.project_id).where(members.user_id == user_id)
        return (_DOCS.c.project_id + literal_column("0")).in_(mine.scalar_subquery()), true()
    project_id = _param("project_id", members.project_id)
    member = exists().where(members.project_id == project_id, members.user_id == user_id)
    return and_(_DOCS.c.project_id == project_id, member), member


@lru_cache(maxsize=64)
def _statement(shape: _Shape) -> Select[Any]:
    """SELECT member, rank, id, project_id, file_path, file_name, language: one row per hit
    (at most ``room``, best first), or one row of NULLs after ``member`` when there is none.
    On PostgreSQL its CTE ``recorded`` also writes the history row (not for a stranger).

    Built once per shape (building it took ~0.8 ms, more than running it).
    """
    scope, member = _scope(shape)
    room = bindparam("room", type_=Integer)
    # Literal caps (not parameters): a generic plan costs a LIMIT $n as 10 % of the rows.
    branches = []
    for rank, (condition, order) in enumerate(_conditions(shape)):
        size = shape.substring_cap if shape.matches[rank] == "substring" else CANDIDATES
        cap = literal_column(str(size), Integer)
        candidates = select(*_COLUMNS).where(scope, condition).limit(cap).subquery()
        best = (
            select(literal_column(str(rank), Integer).label("rank"), candidates)
            .order_by(*order(candidates.c))
            .limit(room)
            .subquery()
        )
        branches.append(select(best))
    ranked = (union_all(*branches) if len(branches) > 1 else branches[0]).subquery("ranked")
    hits = select(ranked).limit(room).cte("hits")
    answer = select(member.label("member")).subquery("answer")
    # No ORDER BY here: the hits come out of the CTE in rank order (an ORDER BY rank would
    # re-sort them, unstably); the caller re-sorts by rank, stably, to be sure.
    stmt = select(answer.c.member, hits).select_from(answer.outerjoin(hits, true()))
    if not shape.postgresql:
        return stmt
    history = _HISTORY.c
    found = select(func.least(func.count(), bindparam("limit", type_=Integer))).select_from(hits)
    values = select(
        *(
            found.scalar_subquery()
            if name == "result_count"
            else _param(f"h_{name}", history[name])
            for name in _HISTORY_COLUMNS
        )
    ).where(member)
    record = insert(_HISTORY).from_select(_HISTORY_COLUMNS, values)
    return stmt.add_cte(record.cte("recorded"))


async def search_filenames(
    session: AsyncSession,
    *,
    user_id: int,
    query: str,
    project_id: int | None,
    limit: int,
    defer_history: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[FilenameHit], bool]:
    """Ranked matches and whether there were more; records the search in the history.

    On PostgreSQL the history row is written by the search statement itself. Elsewhere
    (SQLite) it is a separate write, which must take the database's one write lock: with
    ``defer_history`` the caller gets the row to record after answering (the API does, so
    a search never queues behind the writers of an indexing upload).
    """
    text = query.strip()
    if not text:
        raise BadRequest("Empty search query", error_code="EMPTY_QUERY")
    q = fold(text)
    postgresql = session.get_bind().dialect.name == "postgresql"
    upper = prefix_upper_bound(q)
    trigrams = None
    # In one project the project's rows (the (project_id, file_path) index) beat the
    # trigram index, whose cost is set by how common the trigrams are over all projects.
    if postgresql and project_id is None and len(q) >= MIN_SUBSTRING:
        sample = await path_sample(session)
        if sample.share(q) < DENSE_SHARE:
            trigrams = trigram_pattern(q, sample.trigram_count)
    shape = _Shape(
        basename="/" not in q,
        substring=len(q) >= MIN_SUBSTRING,
        trigrams=trigrams is not None,
        bounded=upper is not None,
        one_project=project_id is not None,
        postgresql=postgresql,
        substring_cap=max(SUBSTRING_CANDIDATES, limit + 1),
    )
    history = {
        "user_id": user_id,
        "query": text[:512],
        "kind": KIND_FILENAME,
        "project_id": project_id,
        "created_at": utcnow(),
    }
    params = {
        "user_id": user_id,
        "project_id": project_id,
        "q": q,
        "upper": upper,
        "like": f"%{like_escape(q)}%",
        "trigrams": trigrams,
        # One row more than asked: it only says whether there were more.
        "room": limit + 1,
        "limit": limit,
        **{f"h_{k}": v for k, v in history.items()},
    }
    rows = (await session.execute(_statement(shape), params)).all()
    if not rows[0].member:
        raise NotFound("Project not found")
    matches = shape.matches
    hits = [
        FilenameHit(
            document_id=r.id,
            project_id=r.project_id,
            path=r.file_path,
            name=r.file_name,
            language=r.language,
            match=matches[r.rank],
        )
        for r in sorted((r for r in rows if r.id is not None), key=lambda r: r.rank)
    ]
    results = hits[:limit]
    if not postgresql:
        history["result_count"] = len(results)
        if defer_history is not None:
            defer_history(history)
        else:
            await session.execute(insert(_HISTORY).values(**history))
    return results, len(hits) > limit


async def record_history(db: Database, history: dict[str, Any]) -> None:
    """Write a deferred history row (see :func:`search_filenames`); best effort."""
    try:
        async with db.session() as session, atomic(session):
            await session.execute(insert(_HISTORY).values(**history))
    except (SQLAlchemyError, OSError) as exc:  # the answer is sent; a lost row is logged
        logger.warning("search history not recorded: %s", exc)


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
