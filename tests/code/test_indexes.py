"""6-A: the indexes exist on both databases and the queries use them (PostgreSQL plans)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, inspect, text

from codeatlas.code.search import search_filenames
from codeatlas.db.session import Database, atomic
from tests.code.helpers import make_project, make_user


async def _index_names(db: Database, table: str) -> set[str]:
    async with db.engine.connect() as conn:
        indexes = await conn.run_sync(lambda c: inspect(c).get_indexes(table))
        names = {i["name"] for i in indexes}
        if db.dialect == "sqlite":  # expression indexes are not reflected by SQLAlchemy
            rows = await conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"),
                {"t": table},
            )
            names |= {r[0] for r in rows}
        return names


async def test_indexes_exist(db: Database) -> None:
    docs = await _index_names(db, "code_documents")
    assert {"ix_code_documents_project_id_file_path", "ix_code_documents_lower_file_name"} <= docs
    assert "ix_search_history_user_id_created_at" in await _index_names(db, "search_history")
    assert ("ix_code_documents_file_path_trgm" in docs) == (db.dialect == "postgresql")


async def test_postgres_plans_use_the_indexes(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL plans only (SQLite has no trigram index)")
    user = await make_user(db)
    from codeatlas.models import ProjectRole

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
        await conn.execute(text("ANALYZE code_documents"))

    statements: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if "FROM code_documents" in statement:
            statements.append((statement, params))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with db.session() as s, s.begin():
            await search_filenames(s, user_id=user.id, query="d_98765", project_id=None, limit=5)
            await s.rollback()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    plans = []
    async with db.engine.connect() as conn:
        for statement, params in statements:
            rows = await conn.exec_driver_sql("EXPLAIN " + statement, params)  # type: ignore[arg-type]
            plans.append("\n".join(r[0] for r in rows))
    exact, prefix, substring = plans
    assert "ix_code_documents_lower_file_name" in exact
    assert "ix_code_documents_lower_file_name" in prefix
    assert "ix_code_documents_file_path_trgm" in substring
