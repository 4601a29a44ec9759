"""The embedded default end to end in a real `codeatlas serve` process: its own Valkey, its
worker child parses an upload and embeds it into the embedded Qdrant engine it owns, and the
API finds the code by meaning (through the child's vector store socket) and by keyword."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codeatlas.db.session import Database
from codeatlas.models import ProjectRole
from codeatlas.settings import Settings
from tests.auth.serving import serving
from tests.code.helpers import make_project, make_user, multipart
from tests.factories import auth_headers
from tests.knowledge.test_code_search import FILES, MEANING


@pytest.fixture
def served(db: Database, tmp_path: Path) -> Iterator[tuple[str, Settings, Path]]:
    settings = db.settings
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "QDRANT_", "EMBEDDING_", "JOBS_"))
    }
    data_dir = tmp_path / "served"
    env.update(
        DATABASE_URL=settings.resolved_database_url,
        DATA_DIR=str(data_dir),
        SECRET_KEY=settings.secret_key,
        ENV="test",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "serve.log"
    # serve + worker child on a busy machine: 300 s to become ready
    with serving(env, log, ready_timeout=300) as (port, _):
        yield f"http://127.0.0.1:{port}", settings.model_copy(update={"data_dir": data_dir}), log


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_serve_embeds_uploads_in_its_worker_child(
    served: tuple[str, Settings, Path], db: Database
) -> None:
    base, settings, log = served
    owner = await make_user(db)
    project_id = await make_project(db, {owner: ProjectRole.OWNER})
    headers = auth_headers(owner, settings)
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        r = await c.get("/health/ready")
        assert r.json()["checks"]["vector_store"]["detail"]["backend"] == "qdrant-edge"
        body, content_type = multipart([("files", name, data) for name, data in FILES])
        r = await c.post(
            f"/api/v1/projects/{project_id}/files",
            content=body,
            headers={**headers, "Content-Type": content_type},
        )
        assert r.status_code == 201, r.text

        query, path = next(iter(MEANING.items()))
        deadline = time.monotonic() + 120
        while True:
            r = await c.post(
                "/api/v1/knowledge/search",
                json={"query": query, "kinds": ["code"], "top_k": 3},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            if results and results[0]["path"] == path:
                break
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.5)
        for query, path in MEANING.items():
            try:
                r = await c.post("/api/v1/search", json={"query": query}, headers=headers)
            except httpx.TransportError as exc:
                raise AssertionError(log.read_text()) from exc
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["path"] == path, (query, r.json())
    assert "vectors of document" in log.read_text()
