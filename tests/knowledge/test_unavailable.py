"""When search cannot run it says why (503 with a code), readiness names `vector_store`, and
nothing else breaks: a Qdrant server that is not there, the embedded store closed under the
running app, an embeddings endpoint that is down, and a collection of another model (then
repaired by the re-index job)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from codeatlas.db.session import Database
from codeatlas.knowledge.runtime import KB_COLLECTION
from codeatlas.knowledge.vector_store import EdgeVectorStore, VectorPoint, point_id
from tests.conftest import free_port
from tests.factories import auth_headers, create_user
from tests.knowledge.conftest import INLINE, Kit, Team, start_kit

SEARCH = {"query": "how do we deploy?", "top_k": 3}


async def _assert_503(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], code: str
) -> None:
    body: dict[str, Any] = dict(SEARCH)
    if url.endswith("/context"):
        body["max_context_length"] = 500
    r = await client.post(url, json=body, headers=headers)
    assert r.status_code == 503, r.text
    assert r.json()["error_code"] == code
    assert r.headers["X-Error-Code"] == code
    assert "results" not in r.json()  # never placeholder results


async def _assert_everything_else_works(kit: Kit, team: Team) -> None:
    h = team.headers(team.owner)
    c = kit.client
    assert (await c.get("/health/live")).status_code == 200
    r = await c.get("/health/ready")
    assert r.status_code == 503
    assert r.json()["details"]["failed"] == ["vector_store"]
    checks = r.json()["details"]["checks"]
    assert checks["vector_store"]["status"] == "error"
    assert checks["db"]["status"] == "ready"
    assert (await c.get(f"/api/v1/projects/{team.project_id}", headers=h)).status_code == 200
    r = await c.post(
        "/api/v1/knowledge/entries", json={"title": "Deploys", "content": "helm upgrade"}, headers=h
    )
    assert r.status_code == 201  # written; its embedding job fails and is retried later
    await kit.drain()
    entry = r.json()["id"]
    assert (await c.get(f"/api/v1/knowledge/entries/{entry}", headers=h)).status_code == 200
    # The keyword index lives in the vector store too: it says so, like the semantic half.
    await _assert_503(c, "/api/v1/search", h, "VECTOR_STORE_UNAVAILABLE")
    r = await c.post("/api/v1/search", json={**SEARCH, "mode": "keyword"}, headers=h)
    assert r.status_code == 503 and r.json()["error_code"] == "VECTOR_STORE_UNAVAILABLE"


@pytest.fixture
async def no_qdrant(app_factory: Any) -> AsyncIterator[Kit]:
    # Nothing listens on this port: every request is refused.
    dead = f"http://127.0.0.1:{free_port()}"
    async for k in start_kit(app_factory(**INLINE, qdrant_url=dead, qdrant_timeout=1.0)):
        yield k


async def test_unreachable_qdrant_server_answers_503(no_qdrant: Kit, team: Team) -> None:
    h = team.headers(team.viewer)
    for url in ("/api/v1/knowledge/search", "/api/v1/knowledge/context", "/api/v1/search"):
        await _assert_503(no_qdrant.client, url, h, "VECTOR_STORE_UNAVAILABLE")
    r = await no_qdrant.client.get("/health/ready")
    assert "qdrant unreachable" in r.json()["details"]["checks"]["vector_store"]["detail"]
    await _assert_everything_else_works(no_qdrant, team)


async def test_embedded_store_closed_under_the_app(kit: Kit, team: Team) -> None:
    h = team.headers(team.owner)
    r = await kit.client.post(
        "/api/v1/knowledge/entries", json={"title": "Deploys", "content": "helm upgrade"}, headers=h
    )
    assert r.status_code == 201
    await kit.drain()
    assert (await kit.client.post("/api/v1/knowledge/search", json=SEARCH, headers=h)).is_success
    assert (await kit.client.get("/health/ready")).status_code == 200

    await kit.runtime.store().close()  # the engine goes away under the running app

    await _assert_503(kit.client, "/api/v1/knowledge/search", h, "VECTOR_STORE_UNAVAILABLE")
    await _assert_503(kit.client, "/api/v1/knowledge/context", h, "VECTOR_STORE_UNAVAILABLE")
    await _assert_everything_else_works(kit, team)


@pytest.fixture
async def no_embeddings(app_factory: Any) -> AsyncIterator[Kit]:
    app = app_factory(
        **INLINE,
        embedding_provider="openai",
        embedding_base_url=f"http://127.0.0.1:{free_port()}/v1",
        embedding_model="remote-test-model",
        embedding_dimension=384,
        embedding_max_retries=0,
        embedding_timeout=2.0,
    )
    async for k in start_kit(app):
        yield k


async def test_unreachable_embeddings_endpoint_answers_503(no_embeddings: Kit, team: Team) -> None:
    h = team.headers(team.viewer)
    for url in ("/api/v1/knowledge/search", "/api/v1/knowledge/context", "/api/v1/search"):
        await _assert_503(no_embeddings.client, url, h, "EMBEDDINGS_UNAVAILABLE")
    # The store itself is fine, so readiness is too.
    r = await no_embeddings.client.get("/health/ready")
    assert r.json()["checks"]["vector_store"]["status"] == "ready"
    # The keyword half needs no model: it still answers.
    r = await no_embeddings.client.post(
        "/api/v1/search", json={**SEARCH, "mode": "keyword"}, headers=h
    )
    assert r.status_code == 200, r.text


async def _collection_of_another_model(path: Any) -> None:
    store = EdgeVectorStore(path)
    await store.create_index_if_missing(KB_COLLECTION, 384, model_name="old-model-v0")
    vector = [1.0] + [0.0] * 383
    payload = {"project_id": 0, "document_id": 999, "kind": "entry", "language": ""}
    await store.upsert(KB_COLLECTION, [VectorPoint(point_id("old", 1), vector, payload)])
    await store.close()


async def test_model_change_is_refused_until_reindexed(
    app_factory: Any, db: Database, team: Team, caplog: pytest.LogCaptureFixture
) -> None:
    await _collection_of_another_model(db.settings.resolved_vector_store_path)
    admin = await create_user(db, is_admin=True)
    with caplog.at_level(logging.ERROR, logger="codeatlas.knowledge.runtime"):
        async for kit in start_kit(app_factory(**INLINE)):
            assert "codeatlas reindex" in caplog.text and "old-model-v0" in caplog.text
            h = team.headers(team.owner)
            await _assert_503(kit.client, "/api/v1/knowledge/search", h, "EMBEDDING_MODEL_MISMATCH")
            r = await kit.client.post(
                "/api/v1/knowledge/search", json={**SEARCH, "kinds": ["code"]}, headers=h
            )
            assert r.status_code == 200  # the other collection is fine
            ready = await kit.client.get("/health/ready")
            assert ready.status_code == 503
            detail = ready.json()["details"]["checks"]["vector_store"]["detail"]
            assert "old-model-v0" in detail and "codeatlas reindex" in detail

            body = {"title": "Deploys", "content": "Roll out with helm upgrade after CI passes."}
            r = await kit.client.post("/api/v1/knowledge/entries", json=body, headers=h)
            assert r.status_code == 201
            await kit.drain()  # its embedding job is refused: never mixed into old vectors

            assert (
                await kit.client.post("/api/v1/knowledge/reindex", headers=h)
            ).status_code == 403
            r = await kit.client.post(
                "/api/v1/knowledge/reindex", headers=auth_headers(admin, db.settings)
            )
            assert r.status_code == 202, r.text
            await kit.drain()

            r = await kit.client.post("/api/v1/knowledge/search", json=SEARCH, headers=h)
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert [x["title"] for x in results] == ["Deploys"]  # the old point is gone
            assert (await kit.client.get("/health/ready")).status_code == 200
