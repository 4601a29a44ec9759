"""The first pipeline, `code.process_file`: upload → job → symbols and exactly one set of
chunks, with real uploads, real workers and crashes in the middle."""

from __future__ import annotations

import ast
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import starlette
from fastapi import FastAPI
from sqlalchemy import func, select

from codeatlas.code.parsing import detect_language, parse_source
from codeatlas.db.session import Database, atomic
from codeatlas.jobs.enqueue import enqueue
from codeatlas.jobs.events import user_channel
from codeatlas.models import CodeChunk, CodeDocument, Job, ProjectRole, User
from codeatlas.settings import Settings
from tests.code.helpers import make_project, make_user, upload
from tests.factories import auth_headers
from tests.jobs.conftest import FAST, Probes, Workers, wait_for, wait_status

# Where the test's own dependencies are installed: found from one of them, so it holds in a
# venv, in a venv that sees the system site-packages, and without a venv (`ast.__file__`
# names the base interpreter's stdlib; sysconfig's purelib names an empty venv dir there).
SITE = Path(starlette.__file__).resolve().parents[1]
TREE_PACKAGES = ("starlette", "fastapi", "pydantic", "httpx", "dramatiq", "alembic")

SOURCE = b'''"""A module."""
import os
from typing import Any


class Greeter:
    """Says hello."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def greet(self) -> str:
        return f"hello {self.name}"


def helper(x: int) -> int:
    def inner() -> int:
        return x
    return inner()
'''


def ast_symbols(text: str) -> list[tuple[str, int]]:
    return sorted(
        (node.name, node.lineno)
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    )


async def _document(db: Database, project_id: int, path: str) -> CodeDocument:
    async with db.session() as s:
        doc = await s.scalar(
            select(CodeDocument).where(
                CodeDocument.project_id == project_id, CodeDocument.file_path == path
            )
        )
    assert doc is not None, path
    return doc


async def _chunks(db: Database, document_id: int) -> list[CodeChunk]:
    async with db.session() as s:
        rows = await s.scalars(
            select(CodeChunk).where(CodeChunk.document_id == document_id).order_by(CodeChunk.index)
        )
        return list(rows)


def _assert_one_set(chunks: list[CodeChunk], text: str, language: str | None) -> None:
    """Exactly the chunks one parse produces: no duplicates, no leftovers."""
    expected = parse_source(text, language).chunks
    assert [c.index for c in chunks] == list(range(len(expected)))
    assert [(c.start_line, c.end_line, c.text) for c in chunks] == [
        (e.start_line, e.end_line, e.text) for e in expected
    ]


class Team:
    def __init__(self, settings: Settings, owner: User, viewer: User, project_id: int) -> None:
        self.settings = settings
        self.owner = owner
        self.viewer = viewer
        self.project_id = project_id

    @property
    def headers(self) -> dict[str, str]:
        return auth_headers(self.owner, self.settings)


@pytest.fixture
async def team(db: Database, jobs_settings: Settings) -> Team:
    owner, viewer = await make_user(db), await make_user(db)
    project_id = await make_project(db, {owner: ProjectRole.OWNER, viewer: ProjectRole.VIEWER})
    return Team(jobs_settings, owner, viewer, project_id)


@pytest.fixture
async def inline_client(app_factory: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app: FastAPI = app_factory(**FAST, use_sync_background=True)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        yield app, c


async def test_upload_is_parsed_into_symbols_and_chunks_and_events_are_published(
    inline_client: tuple[FastAPI, httpx.AsyncClient],
    db: Database,
    team: Team,
    redis_client: aioredis.Redis,
) -> None:
    app, client = inline_client
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(user_channel(team.settings, team.viewer.id))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation

    files = [("pkg/greet.py", SOURCE), ("notes.txt", b"line\n" * 150), ("blob.bin", b"\x00\x01")]
    r = await upload(
        client, team.project_id, team.headers | {"X-Request-ID": "req-upload-01"}, files
    )
    assert r.status_code == 201, r.text
    await app.state.jobs_dispatcher.drain()

    doc = await _document(db, team.project_id, "pkg/greet.py")
    assert (doc.status, doc.error, doc.language) == ("searchable", None, "python")
    assert doc.symbols is not None
    assert sorted((s["name"], s["start_line"]) for s in doc.symbols) == ast_symbols(SOURCE.decode())
    assert {(s["name"], s["parent"]) for s in doc.symbols} >= {
        ("greet", "Greeter"),
        ("inner", "helper"),
    }
    _assert_one_set(await _chunks(db, doc.id), SOURCE.decode(), "python")

    notes = await _document(db, team.project_id, "notes.txt")
    assert notes.status == "searchable" and notes.symbols == []
    note_chunks = await _chunks(db, notes.id)
    assert note_chunks and {c.kind for c in note_chunks} == {"window"}
    blob = await _document(db, team.project_id, "blob.bin")
    assert blob.parseable is False and await _chunks(db, blob.id) == []

    async with db.session() as s:
        jobs = list(await s.scalars(select(Job).order_by(Job.id)))
    assert sorted((j.actor, j.status, j.document_id or 0, j.attempts) for j in jobs) == sorted(
        [("code.process_file", "succeeded", d, 1) for d in (doc.id, notes.id)]
    )
    assert {j.request_id for j in jobs} == {"req-upload-01"}
    assert {j.project_id for j in jobs} == {team.project_id}

    events = []
    while (msg := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)) is not None:
        events.append(json.loads(msg["data"]))
    await pubsub.aclose()
    indexed = {e["data"]["document_id"]: e for e in events if e["type"] == "document.indexed"}
    assert set(indexed) == {doc.id, notes.id}
    assert indexed[doc.id]["request_id"] == "req-upload-01"
    assert indexed[doc.id]["data"]["project_id"] == team.project_id
    assert indexed[doc.id]["id"] and indexed[doc.id]["ts"].endswith("+00:00")

    # Unchanged content: nothing to do, no new job.
    again = await upload(client, team.project_id, team.headers, files[:1])
    assert again.status_code == 200
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Job)) == 2


async def test_running_twice_leaves_one_set_of_chunks(
    inline_client: tuple[FastAPI, httpx.AsyncClient], db: Database, team: Team
) -> None:
    app, client = inline_client
    r = await upload(client, team.project_id, team.headers, [("a.py", SOURCE)])
    assert r.status_code == 201
    await app.state.jobs_dispatcher.drain()
    doc = await _document(db, team.project_id, "a.py")
    first = [(c.index, c.text) for c in await _chunks(db, doc.id)]

    async with db.session() as s, atomic(s):
        for _ in range(3):  # three more deliveries of the same job, run concurrently
            enqueue(s, "code.process_file", doc.id)
    await app.state.jobs_dispatcher.drain()
    assert [(c.index, c.text) for c in await _chunks(db, doc.id)] == first
    assert (await _document(db, team.project_id, "a.py")).status == "searchable"


async def test_missing_file_fails_the_document_and_the_job(
    inline_client: tuple[FastAPI, httpx.AsyncClient],
    db: Database,
    team: Team,
    redis_client: aioredis.Redis,
) -> None:
    app, client = inline_client
    r = await upload(client, team.project_id, team.headers, [("gone.py", SOURCE)])
    await app.state.jobs_dispatcher.drain()
    doc = await _document(db, team.project_id, "gone.py")
    (team.settings.UPLOAD_ROOT / str(team.project_id) / "gone.py").unlink()
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(user_channel(team.settings, team.owner.id))
    await pubsub.get_message(timeout=1)
    async with db.session() as s, atomic(s):
        job = enqueue(s, "code.process_file", doc.id)
    await app.state.jobs_dispatcher.drain()
    failed = await _document(db, team.project_id, "gone.py")
    assert failed.status == "failed" and "missing" in (failed.error or "")
    finished = await wait_status(db, job.message_id, "failed", timeout=10)
    assert "DocumentUnprocessable" in (finished.last_error or "")
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    await pubsub.aclose()
    assert msg is not None and json.loads(msg["data"])["type"] == "document.failed"
    assert r.status_code == 201


# -- real workers -------------------------------------------------------------------------------


@pytest.fixture
async def worker_client(db: Database, jobs_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from codeatlas.app import create_app

    app = create_app(jobs_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        yield c


def _tree() -> list[tuple[str, bytes]]:
    files = []
    for package in TREE_PACKAGES:
        root = SITE / package
        for path in sorted(root.rglob("*.py")):
            files.append((f"{package}/{path.relative_to(root).as_posix()}", path.read_bytes()))
    return files


@pytest.mark.slow
async def test_uploaded_source_tree_is_fully_indexed_by_workers(
    worker_client: httpx.AsyncClient, db: Database, team: Team, workers: Workers
) -> None:
    """A real tree (several installed libraries): every document indexed, symbols equal to
    Python's own `ast`, one set of chunks each, every job succeeded, none lost."""
    files = _tree()
    assert len(files) > 300
    await workers.start(threads=4)
    await workers.start(threads=4)

    started = time.monotonic()
    r = await upload(worker_client, team.project_id, team.headers, files)
    assert r.status_code == 201, r.text
    uploaded = time.monotonic()

    async def all_done() -> bool:
        async with db.session() as s:
            open_jobs = await s.scalar(
                select(func.count()).select_from(Job).where(Job.status.not_in(["succeeded"]))
            )
        return open_jobs == 0

    await wait_for(all_done, timeout=600, what="every job to succeed")
    finished = time.monotonic()
    print(
        f"\n{len(files)} files: upload {uploaded - started:.1f}s, "
        f"processing {finished - uploaded:.1f}s ({len(files) / (finished - uploaded):.0f} jobs/s)"
    )

    async with db.session() as s:
        docs = {d.file_path: d for d in await s.scalars(select(CodeDocument))}
        jobs = list(await s.scalars(select(Job)))
        chunk_counts = dict(
            (
                await s.execute(
                    select(CodeChunk.document_id, func.count()).group_by(CodeChunk.document_id)
                )
            ).all()
        )
    assert len(docs) == len(files)
    assert len(jobs) == len(files)  # one job per file, every one succeeded
    assert {d.id for d in docs.values()} == {j.document_id for j in jobs}
    for path, data in files:
        doc = docs[path]
        text = data.decode("utf-8", errors="replace")
        assert doc.status == "searchable", (path, doc.error)
        assert doc.symbols is not None
        assert sorted((s["name"], s["start_line"]) for s in doc.symbols) == ast_symbols(text), path
        expected = parse_source(text, detect_language(path)).chunks
        assert chunk_counts.get(doc.id, 0) == len(expected), path
    for path in ("starlette/routing.py", "pydantic/main.py"):
        _assert_one_set(await _chunks(db, docs[path].id), dict(files)[path].decode(), "python")


@pytest.mark.slow
async def test_worker_killed_inside_the_chunk_transaction_leaves_one_set(
    worker_client: httpx.AsyncClient,
    db: Database,
    team: Team,
    workers: Workers,
    probes: Probes,
) -> None:
    """SIGKILL between writing the chunks and committing them; the next worker redoes it."""
    text = (SITE / "starlette" / "routing.py").read_text()
    first = await workers.start(threads=1)
    r = await upload(worker_client, team.project_id, team.headers, [("routing.py", text.encode())])
    assert r.status_code == 201
    doc = await _document(db, team.project_id, "routing.py")
    await wait_status(db, (await _job_of(db, doc.id)).message_id, "succeeded")
    before = [(c.index, c.text) for c in await _chunks(db, doc.id)]
    assert before

    async with db.session() as s, atomic(s):
        job = enqueue(s, "probe.process_paused", doc.id, document_id=doc.id)

    async def parked() -> bool:
        return bool(await probes.client.lrange(probes.key("parked"), 0, -1))

    await wait_for(parked, what="the job to park inside its transaction")
    first.kill()
    killed_at = time.monotonic()
    # Nothing of the killed attempt is visible: the old chunks, once.
    assert [(c.index, c.text) for c in await _chunks(db, doc.id)] == before
    await probes.set("gate", "process", doc.id)
    await workers.start(threads=1)
    done = await wait_status(db, job.message_id, "succeeded", timeout=120)
    print(f"\nre-run finished {time.monotonic() - killed_at:.1f}s after SIGKILL")
    assert done.attempts == 2
    _assert_one_set(await _chunks(db, doc.id), text, "python")
    assert (await _document(db, team.project_id, "routing.py")).status == "searchable"


async def _job_of(db: Database, document_id: int) -> Job:
    async def find() -> Job | None:
        async with db.session() as s:
            return await s.scalar(select(Job).where(Job.document_id == document_id))

    job: Job = await wait_for(find, what=f"the job of document {document_id}")
    return job
