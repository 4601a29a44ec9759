"""A document's status says where it really is (`parsed` once its chunks are stored,
`searchable` once the indexing job wrote its keyword postings and vectors), the project's
progress is there for any member (404 for others), and re-indexing unchanged content does
no work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from codeatlas.code.tasks import process_document
from codeatlas.db.session import Database
from codeatlas.knowledge import indexing
from codeatlas.knowledge.tasks import embed_chunks
from codeatlas.models import CodeDocument, Job
from tests.code.helpers import upload
from tests.knowledge.conftest import Kit, Team, start_kit

FILES = [
    ("pkg/a.py", b"def alpha():\n    return 1\n\n\ndef beta():\n    return 2\n"),
    ("pkg/b.py", b"class Gamma:\n    def delta(self):\n        return 3\n"),
    ("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00binary"),
]


async def _statuses(db: Database) -> dict[str, str]:
    async with db.session() as s:
        return {d.file_path: d.status for d in await s.scalars(select(CodeDocument))}


async def _progress(kit: Kit, team: Team, user: Any) -> Any:
    return await kit.client.get(
        f"/api/v1/projects/{team.project_id}/indexing", headers=team.headers(user)
    )


@pytest.fixture
async def queued(app_factory: Any) -> AsyncIterator[Kit]:
    """Jobs go to the broker and no worker takes them: the test runs each job's body itself,
    as a worker would, and looks at the state in between."""
    async for k in start_kit(app_factory()):
        yield k


async def test_statuses_move_parsed_then_searchable_and_progress_follows(
    queued: Kit, team: Team, db: Database
) -> None:
    r = await upload(queued.client, team.project_id, team.headers(team.editor), FILES)
    assert r.status_code in (200, 201), r.text
    ids = {f["path"]: f["document_id"] for f in r.json()["files"]}
    assert await _statuses(db) == {
        "pkg/a.py": "pending",
        "pkg/b.py": "pending",
        "logo.png": "searchable",  # binary: never parsed, found by name only
    }
    body = (await _progress(queued, team, team.viewer)).json()
    assert body["files"] == {"total": 2, "parsed": 0, "searchable": 0, "failed": 0, "pending": 2}
    assert body["chunks"] == {"total": 0, "embedded": 0} and body["errors"] == []

    for path in ("pkg/a.py", "pkg/b.py"):
        assert await process_document(ids[path]) == "indexed"
    assert (await _statuses(db))["pkg/a.py"] == "parsed"
    body = (await _progress(queued, team, team.viewer)).json()
    assert body["files"]["parsed"] == 2 and body["files"]["pending"] == 0
    assert body["chunks"]["total"] >= 3 and body["chunks"]["embedded"] == 0

    async with db.session() as s:
        embed = select(Job).where(Job.actor == "knowledge.embed_chunks")
        queued_jobs = list(await s.scalars(embed))
    assert {j.document_id for j in queued_jobs} == {ids["pkg/a.py"], ids["pkg/b.py"]}

    await embed_chunks(ids["pkg/a.py"])  # what a worker runs for the queued job
    assert (await _statuses(db))["pkg/a.py"] == "searchable"
    await embed_chunks(ids["pkg/b.py"])
    body = (await _progress(queued, team, team.viewer)).json()
    assert body["files"] == {"total": 2, "parsed": 0, "searchable": 2, "failed": 0, "pending": 0}
    assert body["chunks"]["embedded"] == body["chunks"]["total"]
    assert body["eta_seconds"] == 0

    # Unchanged content: the upload says so and queues nothing; re-running the index job
    # embeds nothing and writes nothing.
    r = await upload(queued.client, team.project_id, team.headers(team.editor), FILES[:1])
    assert r.json()["files"][0]["result"] == "unchanged"
    async with db.session() as s:
        jobs = list(await s.scalars(select(Job)))
    assert len(jobs) == 4  # two parse jobs, two index jobs, none added
    result = await indexing.index_document(queued.runtime, queued.app.state.db, ids["pkg/a.py"])
    assert result.startswith("embedded 0, kept ")


async def test_progress_is_for_members_only(queued: Kit, team: Team) -> None:
    assert (await _progress(queued, team, team.viewer)).status_code == 200
    r = await _progress(queued, team, team.stranger)
    assert r.status_code == 404 and r.json()["error_code"] == "NOT_FOUND"
    r = await queued.client.get(f"/api/v1/projects/{team.project_id}/indexing")
    assert r.status_code == 401


async def test_failed_indexing_is_reported_per_file(app_factory: Any, team: Team) -> None:
    from tests.conftest import free_port

    app = app_factory(
        use_sync_background=True,
        embedding_provider="openai",
        embedding_base_url=f"http://127.0.0.1:{free_port()}/v1",
        embedding_model="remote-test-model",
        embedding_dimension=384,
        embedding_max_retries=0,
        embedding_timeout=2.0,
    )
    async for kit in start_kit(app):
        r = await upload(kit.client, team.project_id, team.headers(team.editor), FILES[:1])
        assert r.status_code in (200, 201)
        await kit.drain()
        body = (await _progress(kit, team, team.viewer)).json()
        assert body["files"]["failed"] == 1
        (error,) = body["errors"]
        assert error["path"] == "pkg/a.py" and error["error"].startswith("indexing failed")
