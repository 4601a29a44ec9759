"""Uploaded code is embedded by `knowledge.embed_chunks` (enqueued by `code.process_file`)
and found by meaning through `/knowledge/search` and the hybrid `/search`; deleting a file or
a project deletes its points. Real uploads, real parser, real model, real Qdrant engine."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from codeatlas.db.session import Database
from codeatlas.knowledge.runtime import CODE_COLLECTION
from codeatlas.knowledge.vector_store import SearchFilter
from codeatlas.models import CodeDocument, Job, SearchHistory
from tests.code.helpers import upload
from tests.knowledge.conftest import Kit, Team

PASSWORDS = b'''"""Credential helpers."""
from argon2 import PasswordHasher

_hasher = PasswordHasher()


def hash_password(plain: str) -> str:
    """Turn a plain password into an argon2 hash for storage."""
    return _hasher.hash(plain)


def verify_password(stored_hash: str, plain: str) -> bool:
    """True when the plain password matches the stored hash."""
    try:
        return _hasher.verify(stored_hash, plain)
    except Exception:
        return False
'''
INVOICE = b'''"""Invoices."""
from decimal import Decimal


class Invoice:
    def __init__(self, lines: list[tuple[str, Decimal, int]], vat_rate: Decimal) -> None:
        self.lines = lines
        self.vat_rate = vat_rate

    def subtotal(self) -> Decimal:
        return sum((price * qty for _, price, qty in self.lines), Decimal(0))

    def total(self) -> Decimal:
        """Subtotal plus value-added tax."""
        return self.subtotal() * (1 + self.vat_rate)
'''
RETRY = b'''"""Retrying flaky calls."""
import random
import time


def retry(fn, attempts: int = 5, base_delay: float = 0.1):
    """Call fn until it succeeds, sleeping twice as long after each failure (with jitter)."""
    for attempt in range(attempts):
        try:
            return fn()
        except ConnectionError:
            if attempt == attempts - 1:
                raise
            time.sleep(base_delay * (2 ** attempt) * random.uniform(0.5, 1.5))
'''
SLUGIFY = b"""// Turn an article title into a URL fragment.
export function slugify(title) {
  return title
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}
"""
FILES = [
    ("app/auth/passwords.py", PASSWORDS),
    ("app/billing/invoice.py", INVOICE),
    ("app/net/retry.py", RETRY),
    ("web/slugify.js", SLUGIFY),
]
MEANING = {
    "check whether the login secret someone typed matches what we saved": "app/auth/passwords.py",
    "amount the customer owes including sales tax": "app/billing/invoice.py",
    "call again after a network failure waiting longer each time": "app/net/retry.py",
    "make a web address piece from a blog post heading": "web/slugify.js",
}


async def _upload_all(kit: Kit, team: Team, files: list[tuple[str, bytes]] = FILES) -> None:
    r = await upload(kit.client, team.project_id, team.headers(team.editor), files)
    assert r.status_code in (200, 201), r.text
    await kit.drain()


async def _documents(db: Database) -> dict[str, int]:
    async with db.session() as s:
        return {d.file_path: d.id for d in await s.scalars(select(CodeDocument))}


async def _post(kit: Kit, team: Team, url: str, **body: Any) -> list[dict[str, Any]]:
    r = await kit.client.post(url, json=body, headers=team.headers(team.viewer))
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


async def test_uploaded_code_is_embedded_and_found_by_meaning(
    kit: Kit, team: Team, db: Database
) -> None:
    await _upload_all(kit, team)
    docs = await _documents(db)
    async with db.session() as s:
        jobs = list(await s.scalars(select(Job)))
    embed_jobs = [j for j in jobs if j.actor == "knowledge.embed_chunks"]
    assert {j.document_id for j in embed_jobs} == set(docs.values())
    assert {j.status for j in embed_jobs} == {"succeeded"}

    for query, path in MEANING.items():
        results = await _post(
            kit, team, "/api/v1/knowledge/search", query=query, top_k=3, kinds=["code"]
        )
        assert results[0]["path"] == path, (query, [r["path"] for r in results])
        top = results[0]
        assert top["kind"] == "code" and top["document_id"] == docs[path]
        assert top["project_id"] == team.project_id
        assert 1 <= top["start_line"] <= top["end_line"]
        assert top["snippet"]

        hybrid = await _post(kit, team, "/api/v1/search", query=query, top_k=3)
        assert hybrid[0]["path"] == path, (query, hybrid)

    # The stranger is no member: nothing of the project, and 404 when naming it.
    r = await kit.client.post(
        "/api/v1/knowledge/search",
        json={"query": "password hashing", "kinds": ["code"]},
        headers=team.headers(team.stranger),
    )
    assert r.status_code == 200 and r.json()["results"] == []
    r = await kit.client.post(
        "/api/v1/search",
        json={"query": "password hashing", "project_id": team.project_id},
        headers=team.headers(team.stranger),
    )
    assert r.status_code == 404


async def test_hybrid_filters_ranks_and_history(kit: Kit, team: Team, db: Database) -> None:
    await _upload_all(kit, team)
    url = "/api/v1/search"
    js = await _post(kit, team, url, query="convert text to lowercase", language="javascript")
    assert js and {r["language"] for r in js} == {"javascript"}
    app_only = await _post(kit, team, url, query="password", path_prefix="app/net/")
    assert app_only and {r["path"] for r in app_only} == {"app/net/retry.py"}

    # The keyword ranking finds identifiers; both ranks are reported.
    hits = await _post(kit, team, url, query="verify_password", top_k=5)
    assert hits[0]["path"] == "app/auth/passwords.py"
    assert hits[0]["keyword_rank"] == 1 and hits[0]["semantic_rank"] is not None
    keyword = await _post(kit, team, url, query="VAT rate", mode="keyword")
    assert keyword[0]["path"] == "app/billing/invoice.py"
    assert keyword[0]["semantic_rank"] is None and keyword[0]["keyword_rank"] == 1

    async with db.session() as s:
        history = list(await s.scalars(select(SearchHistory).order_by(SearchHistory.id)))
    assert [(h.query, h.kind, h.user_id) for h in history] == [
        ("convert text to lowercase", "hybrid", team.viewer.id),
        ("password", "hybrid", team.viewer.id),
        ("verify_password", "hybrid", team.viewer.id),
        ("VAT rate", "keyword", team.viewer.id),
    ]
    assert history[0].result_count == len(js)


async def test_changed_file_keeps_unchanged_chunks_and_drops_stale_ones(
    kit: Kit, team: Team, db: Database
) -> None:
    await _upload_all(kit, team, [("app/billing/invoice.py", INVOICE)])
    doc_id = (await _documents(db))["app/billing/invoice.py"]
    store = kit.runtime.store()
    only = SearchFilter(document_ids=[doc_id])
    before = await store.list_points(CODE_COLLECTION, only)
    assert before

    changed = INVOICE.replace(b"Subtotal plus value-added tax.", b"Gross amount with VAT.")
    await _upload_all(kit, team, [("app/billing/invoice.py", changed)])
    after = await store.list_points(CODE_COLLECTION, only)
    assert len(after) == len(before)
    kept = set(after) & set(before)
    assert kept and kept != set(before)  # unchanged chunks kept their points, the edited one not
    async with db.session() as s:
        jobs = list(
            await s.scalars(
                select(Job).where(Job.actor == "knowledge.embed_chunks").order_by(Job.id)
            )
        )
    assert [j.status for j in jobs] == ["succeeded", "succeeded"]


async def test_deleting_a_file_or_the_project_deletes_its_points(
    kit: Kit, team: Team, db: Database
) -> None:
    await _upload_all(kit, team)
    docs = await _documents(db)
    store = kit.runtime.store()
    project_points = SearchFilter(project_ids=[team.project_id])
    total = len(await store.list_points(CODE_COLLECTION, project_points))
    retry_points = SearchFilter(document_ids=[docs["app/net/retry.py"]])
    n_retry = len(await store.list_points(CODE_COLLECTION, retry_points))
    assert n_retry > 0

    r = await kit.client.delete(
        f"/api/v1/projects/{team.project_id}/files/{docs['app/net/retry.py']}",
        headers=team.headers(team.editor),
    )
    assert r.status_code == 204, r.text
    await kit.drain()
    assert await store.list_points(CODE_COLLECTION, retry_points) == {}
    left = await store.list_points(CODE_COLLECTION, project_points)
    assert len(left) == total - n_retry
    results = await _post(
        kit, team, "/api/v1/knowledge/search", query="retry with backoff", kinds=["code"]
    )
    assert "app/net/retry.py" not in {r["path"] for r in results}

    r = await kit.client.delete(
        f"/api/v1/projects/{team.project_id}", headers=team.headers(team.owner)
    )
    assert r.status_code == 204, r.text
    await kit.drain()
    assert await store.list_points(CODE_COLLECTION, project_points) == {}


async def test_results_are_files_unless_chunks_are_asked_for(kit: Kit, team: Team) -> None:
    await _upload_all(kit, team)
    url = "/api/v1/search"
    files = await _post(kit, team, url, query="hash and verify passwords", top_k=10)
    paths = [r["path"] for r in files]
    assert paths[0] == "app/auth/passwords.py" and len(paths) == len(set(paths)) == len(FILES)
    chunks = await _post(
        kit, team, url, query="hash and verify passwords", top_k=10, group_by_file=False
    )
    chunk_paths = [r["path"] for r in chunks]
    assert chunk_paths.count("app/auth/passwords.py") == 3  # every chunk of the file
    assert len({r["id"] for r in chunks}) == len(chunks)


def test_sqlite_reads_hits_back_by_document_and_index_not_by_project(tmp_path: Any) -> None:
    """The embedded default's read-back of search hits: one (document_id, index) lookup per
    hit. Without statistics SQLite's planner preferred the project_id index and read every
    chunk of the project (70 ms per search at 100 k chunks in one project)."""
    import sqlite3

    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from codeatlas.db import migrate
    from codeatlas.knowledge.search import Scope, code_rows_query
    from codeatlas.settings import Settings

    path = tmp_path / "plan.db"
    migrate.upgrade(Settings(database_url=f"sqlite+aiosqlite:///{path}", env="test"))
    statement = code_rows_query("sqlite", [(1, 0), (2, 3), (7, 1)], Scope([1]))
    compiled = statement.compile(
        dialect=sqlite_dialect.dialect(), compile_kwargs={"render_postcompile": True}
    )
    params = [compiled.params[name] for name in compiled.positiontup or []]
    with sqlite3.connect(path) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {compiled}", params)]
    chunk_steps = [step for step in plan if "code_chunks" in step]
    assert chunk_steps and all(
        "ix_code_chunks_document_id_index" in step for step in chunk_steps
    ), plan
