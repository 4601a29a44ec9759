"""6-A: the indexes exist on both databases, the search is one statement, and PostgreSQL's
plans use the indexes (or, for a very common fragment, deliberately do not)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, func, inspect, select, text

from codeatlas.code import search
from codeatlas.code.search import fold, search_filenames, trigram_pattern
from codeatlas.db.session import Database, atomic
from codeatlas.errors import NotFound
from codeatlas.models import ProjectRole, SearchHistory
from codeatlas.models.code import PATH_SEPARATORS
from tests.code.helpers import make_project, make_user

NAME_INDEX = "ix_code_documents_file_name_search"
TRGM_INDEX = "ix_code_documents_file_path_squashed_trgm"


async def _index_names(db: Database, table: str) -> set[str]:
    async with db.engine.connect() as conn:
        indexes = await conn.run_sync(lambda c: inspect(c).get_indexes(table))
        names = {i["name"] for i in indexes}
        if db.dialect == "sqlite":  # expression indexes are not reflected by SQLAlchemy
            rows = await conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"),
                {"t": table},
            )
        else:
            rows = await conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": table}
            )
        return names | {r[0] for r in rows}


async def test_indexes_exist(db: Database) -> None:
    docs = await _index_names(db, "code_documents")
    assert {"ix_code_documents_project_id_file_path", NAME_INDEX} <= docs
    assert "ix_search_history_user_id_created_at" in await _index_names(db, "search_history")
    assert (TRGM_INDEX in docs) == (db.dialect == "postgresql")
    # replaced by migration 0006
    assert not {"ix_code_documents_lower_file_name", "ix_code_documents_file_path_trgm"} & docs
    if db.dialect == "postgresql":  # Alembic's drift check does not compare INCLUDE lists
        async with db.engine.connect() as conn:
            definition = await conn.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": NAME_INDEX}
            )
        assert str(definition).endswith(
            "(lower((file_name)::text), project_id) INCLUDE (file_name, file_path, id, language)"
        )


# -- the trigram pattern is implied by the query (no false negatives) -----------------------


def _like(pattern: str, value: str) -> bool:
    """SQL LIKE with backslash escapes, for checking patterns without a database."""
    parts = re.findall(r"\\.|%|_|[^\\%_]", pattern)
    regex = "".join(".*" if p == "%" else "." if p == "_" else re.escape(p[-1]) for p in parts)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _squash(path: str) -> str:
    return path.translate(str.maketrans("", "", PATH_SEPARATORS))


PATH_CHARS = st.sampled_from(list("abcxyz019/_.-%\\ é"))


@given(
    path=st.text(PATH_CHARS, min_size=1, max_size=40),
    cut=st.tuples(st.integers(0, 40), st.integers(0, 40)),
    frequency=st.dictionaries(st.text(PATH_CHARS, min_size=3, max_size=3), st.integers(0, 9)),
)
def test_trigram_pattern_matches_every_path_that_contains_the_query(
    path: str, cut: tuple[int, int], frequency: dict[str, int]
) -> None:
    start, length = cut
    query = fold(path)[start : start + length]
    pattern = trigram_pattern(query, lambda t: frequency.get(t, 0))
    if pattern is not None:
        assert _like(pattern, _squash(fold(path))), (query, pattern)


def test_trigram_pattern_asks_for_the_rarest_trigrams_only() -> None:
    counts = {"ser": 90, "vic": 80, "esp": 5, "rof": 40, "ile": 70, "spr": 4, "ofi": 3}
    pattern = trigram_pattern("services/profile", lambda t: counts.get(t, 100))
    # ofi, spr, then not esp (overlaps spr), rof or ile (overlap ofi): vic
    assert pattern == "%vic%spr%ofi%"
    assert trigram_pattern("e_c", lambda t: 0) is None  # no trigram: no index
    assert trigram_pattern("100%_x", lambda t: 0) == "%100\\%x%"
    assert trigram_pattern("der_api", lambda t: 0) == "%der%api%"
    assert trigram_pattern("ember", lambda t: 0) == "%ember%"


def test_like_helper() -> None:
    assert _like("%a\\%b%", "xa%by") and not _like("%a\\%b%", "xaby")
    assert _like("%ab%cd%", "abxcd") and not _like("%ab%cd%", "cdab")


# -- PostgreSQL: one statement, and its plan ------------------------------------------------


@contextmanager
def _statements(db: Database) -> Iterator[list[tuple[str, object]]]:
    sent: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        sent.append((statement, params))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)


@asynccontextmanager
async def _big_project(db: Database) -> AsyncIterator[tuple[int, int]]:
    """A user and their project with 100,000 documents `dir<n>/mod_<g>.py`, vacuumed."""
    user = await make_user(db)
    pid = await make_project(db, {user: ProjectRole.OWNER})
    async with db.session() as s, atomic(s):
        await s.execute(
            text(
                "INSERT INTO code_documents (project_id, file_path, file_name, size, content_hash,"
                " parseable, status, version) SELECT :p, 'dir' || (g % 500) || '/mod_' || g"
                " || '.py', 'mod_' || g || '.py', 1, md5(g::text), true, 'pending', 1"
                " FROM generate_series(1, 100000) g"
            ),
            {"p": pid},
        )
    async with db.engine.connect() as conn:
        # as autovacuum leaves a table that is read more than written: index-only scans
        # need the visibility map
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE code_documents"))
        await conn.execute(text("ANALYZE project_members"))
    search._SAMPLES.clear()  # a sample of this data, not of an earlier test's
    yield user.id, pid


async def _plan(db: Database, statement: str, params: object) -> str:
    async with db.engine.connect() as conn, conn.begin() as tx:
        rows = await conn.exec_driver_sql("EXPLAIN ANALYZE " + statement, params)  # type: ignore[arg-type]
        plan = "\n".join(r[0] for r in rows)
        await tx.rollback()
    return plan


async def test_postgres_one_statement_using_both_indexes(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL plans only (SQLite has no trigram index)")
    async with _big_project(db) as (user_id, _):
        async with db.session() as s, s.begin():
            await search_filenames(s, user_id=user_id, query="xyz", project_id=None, limit=5)
            await s.rollback()  # the first search reads the path sample
        with _statements(db) as sent:
            async with db.session() as s, s.begin():
                hits, _ = await search_filenames(
                    s, user_id=user_id, query="d_98765", project_id=None, limit=5
                )
                await s.rollback()
    assert [h.path for h in hits] == ["dir265/mod_98765.py"]
    searches = [(sql, p) for sql, p in sent if "code_documents" in sql]
    assert len(searches) == 1  # ranks, membership and the history row: one round trip
    statement, params = searches[0]
    assert "INSERT INTO search_history" in statement
    plan = await _plan(db, statement, params)
    assert f"Index Only Scan using {NAME_INDEX}" in plan
    assert f"Bitmap Index Scan on {TRGM_INDEX}" in plan


async def test_postgres_common_fragment_scans_instead(db: Database) -> None:
    """`mod_1` is in 11 % of the paths: a scan finds the candidates in a few hundred rows."""
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL plans only")
    async with _big_project(db) as (user_id, _):
        with _statements(db) as sent:
            async with db.session() as s, s.begin():
                hits, more = await search_filenames(
                    s, user_id=user_id, query="od_1", project_id=None, limit=5
                )
                await s.rollback()
    assert more and len(hits) == 5
    assert all("od_1" in h.path and h.match == "substring" for h in hits)
    statement, params = next((sql, p) for sql, p in sent if "INSERT INTO search_history" in sql)
    assert "translate(" not in statement
    assert TRGM_INDEX not in await _plan(db, statement, params)


# -- the history row belongs to the search's transaction ------------------------------------


async def _history_count(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(SearchHistory)) or 0)


async def test_history_row_commits_and_rolls_back_with_the_search(db: Database) -> None:
    user = await make_user(db)
    stranger = await make_user(db)
    pid = await make_project(db, {user: ProjectRole.VIEWER})
    async with db.session() as s, s.begin():
        await search_filenames(s, user_id=user.id, query="abc", project_id=None, limit=5)
        await s.rollback()
    assert await _history_count(db) == 0
    async with db.session() as s, s.begin():
        await search_filenames(s, user_id=user.id, query="abc", project_id=pid, limit=5)
    assert await _history_count(db) == 1
    async with db.session() as s, s.begin():  # a stranger's search is refused, and not kept
        with pytest.raises(NotFound):
            await search_filenames(s, user_id=stranger.id, query="abc", project_id=pid, limit=5)
    assert await _history_count(db) == 1
