"""Vector stores, parametrised over both adapters: qdrant-edge-py on disk and qdrant-client's
local mode (on disk too, so reopening is tested for both). No mocks: real engines."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from codeatlas.knowledge.vector_store import (
    CollectionNotFound,
    EdgeVectorStore,
    EmbeddingModelMismatch,
    QdrantServerStore,
    SearchFilter,
    VectorHit,
    VectorPoint,
    VectorStore,
    VectorStoreUnavailable,
    point_id,
)

DIM = 8
MODEL = "test-model-v1"
COLL = "kb"
StoreFactory = Callable[[], VectorStore]


def at_cosine(c: float) -> list[float]:
    """A unit vector whose cosine with e0 is exactly ``c``."""
    v = [0.0] * DIM
    v[0], v[1] = c, math.sqrt(max(0.0, 1.0 - c * c))
    return v


E0 = at_cosine(1.0)

# (row id, cosine with E0, project, document, kind, language)
ROWS = [
    (1, 1.0, 1, 10, "code", "python"),
    (2, 0.9, 1, 10, "doc", "markdown"),
    (3, 0.5, 1, 11, "code", "go"),
    (4, 0.0, 2, 20, "code", "python"),
    (5, -0.5, 2, 21, "doc", "markdown"),
]


def points() -> list[VectorPoint]:
    return [
        VectorPoint(
            id=point_id("chunk", row),
            vector=at_cosine(cos),
            payload={
                "project_id": project,
                "document_id": doc,
                "kind": kind,
                "language": lang,
                "row": row,
            },
        )
        for row, cos, project, doc, kind, lang in ROWS
    ]


@pytest.fixture(params=["edge", "qdrant-local"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Opens a store on this test's directory; call again after close() to reopen it."""
    if request.param == "edge":
        return lambda: EdgeVectorStore(tmp_path / "edge")
    return lambda: QdrantServerStore(path=tmp_path / "qdrant")


@pytest.fixture
async def store(factory: StoreFactory) -> AsyncIterator[VectorStore]:
    s = factory()
    yield s
    await s.close()


@pytest.fixture
async def filled(store: VectorStore) -> VectorStore:
    await store.create_index_if_missing(COLL, DIM, model_name=MODEL)
    await store.upsert(COLL, points())
    return store


def rows(hits: list[VectorHit]) -> list[int]:
    return [h.payload["row"] for h in hits]


# --------------------------------------------------------------------------------------------


def test_point_id_is_deterministic_uuid() -> None:
    assert point_id("chunk", 7) == point_id("chunk", 7)
    assert point_id("chunk", 7) != point_id("chunk", 8)
    assert point_id("chunk", 7) != point_id("document", 7)
    assert len(point_id("chunk", 7)) == 36


async def test_protocol_conformance(store: VectorStore) -> None:
    assert isinstance(store, VectorStore)
    await store.health()


async def test_create_index_is_idempotent(store: VectorStore) -> None:
    await store.create_index_if_missing(COLL, DIM, model_name=MODEL)
    await store.create_index_if_missing(COLL, DIM, model_name=MODEL)
    assert await store.count(COLL) == 0
    await store.upsert(COLL, points())
    await store.create_index_if_missing(COLL, DIM, model_name=MODEL)
    assert await store.count(COLL) == len(ROWS)


async def test_model_or_dimension_mismatch_is_detected(
    factory: StoreFactory, store: VectorStore
) -> None:
    await store.create_index_if_missing(COLL, DIM, model_name=MODEL)
    with pytest.raises(EmbeddingModelMismatch):
        await store.create_index_if_missing(COLL, DIM, model_name="another-model")
    with pytest.raises(EmbeddingModelMismatch):
        await store.create_index_if_missing(COLL, DIM * 2, model_name=MODEL)
    with pytest.raises(EmbeddingModelMismatch):
        await store.upsert(COLL, [VectorPoint(1, [1.0] * (DIM + 1), {})])
    with pytest.raises(EmbeddingModelMismatch):
        await store.search(COLL, [1.0] * (DIM - 1), 3)
    await store.close()
    reopened = factory()  # the metadata is persisted, not just remembered
    try:
        with pytest.raises(EmbeddingModelMismatch):
            await reopened.create_index_if_missing(COLL, DIM, model_name="another-model")
        await reopened.create_index_if_missing(COLL, DIM, model_name=MODEL)
    finally:
        await reopened.close()


async def test_search_orders_by_cosine(filled: VectorStore) -> None:
    hits = await filled.search(COLL, E0, top_k=10)
    assert rows(hits) == [1, 2, 3, 4, 5]
    expected = [cos for _, cos, *_ in ROWS]
    assert [round(h.score, 4) for h in hits] == pytest.approx(expected, abs=1e-4)
    assert hits[0].id == point_id("chunk", 1)
    assert hits[0].payload["kind"] == "code" and hits[0].payload["document_id"] == 10

    top2 = await filled.search(COLL, E0, top_k=2)
    assert rows(top2) == [1, 2]
    # Another query direction reorders: nearest to the cos=0 point first.
    assert rows(await filled.search(COLL, at_cosine(0.0), top_k=1)) == [4]


async def test_filters(filled: VectorStore) -> None:
    async def search(flt: SearchFilter) -> list[int]:
        return rows(await filled.search(COLL, E0, 10, flt))

    assert await search(SearchFilter(project_ids=[2])) == [4, 5]
    assert await search(SearchFilter(project_ids=[1, 2])) == [1, 2, 3, 4, 5]
    assert await search(SearchFilter(kinds=["doc"])) == [2, 5]
    assert await search(SearchFilter(languages=["python", "go"])) == [1, 3, 4]
    assert await search(SearchFilter(document_ids=[10])) == [1, 2]
    assert await search(SearchFilter(project_ids=[1], kinds=["code"], languages=["go"])) == [3]
    assert await search(SearchFilter(project_ids=[3])) == []
    assert await search(SearchFilter(kinds=[])) == []  # empty list: matches nothing
    assert await search(SearchFilter()) == [1, 2, 3, 4, 5]  # no constraints


async def test_delete_by_id(filled: VectorStore) -> None:
    await filled.delete(COLL, [point_id("chunk", 1), point_id("chunk", 999)])  # 999: unknown
    assert await filled.count(COLL) == len(ROWS) - 1
    assert rows(await filled.search(COLL, E0, 1)) == [2]
    await filled.delete(COLL, [])
    assert await filled.count(COLL) == len(ROWS) - 1


async def test_delete_by_filter(filled: VectorStore) -> None:
    await filled.delete_by_filter(COLL, SearchFilter(document_ids=[10]))
    assert rows(await filled.search(COLL, E0, 10)) == [3, 4, 5]
    await filled.delete_by_filter(COLL, SearchFilter(project_ids=[2]))
    assert rows(await filled.search(COLL, E0, 10)) == [3]
    await filled.delete_by_filter(COLL, SearchFilter(project_ids=[]))  # matches nothing
    assert await filled.count(COLL) == 1
    with pytest.raises(ValueError):
        await filled.delete_by_filter(COLL, SearchFilter())  # would wipe the collection


async def test_reupsert_same_ids_replaces(filled: VectorStore) -> None:
    again = points()
    for p in again:
        p.payload["kind"] = "updated"
    again[4].vector = at_cosine(0.99)  # row 5 moves next to the query
    await filled.upsert(COLL, again)
    assert await filled.count(COLL) == len(ROWS)
    hits = await filled.search(COLL, E0, 10)
    assert rows(hits) == [1, 5, 2, 3, 4]
    assert {h.payload["kind"] for h in hits} == {"updated"}


async def test_integer_ids_and_invalid_ids(store: VectorStore) -> None:
    await store.create_index_if_missing(COLL, DIM, model_name=MODEL)
    await store.upsert(COLL, [VectorPoint(42, E0, {"row": 42})])
    hits = await store.search(COLL, E0, 1)
    assert hits[0].id == 42
    with pytest.raises(ValueError):
        await store.upsert(COLL, [VectorPoint("not-a-uuid", E0, {})])
    with pytest.raises(ValueError):
        await store.upsert(COLL, [VectorPoint(-1, E0, {})])


async def test_missing_collection(store: VectorStore) -> None:
    with pytest.raises(CollectionNotFound):
        await store.search("nothing_here", E0, 3)
    with pytest.raises(CollectionNotFound):
        await store.count("nothing_here")
    with pytest.raises(ValueError):
        await store.search("../escape", E0, 3)


async def test_persistence_across_reopen(factory: StoreFactory, filled: VectorStore) -> None:
    await filled.delete(COLL, [point_id("chunk", 5)])
    await filled.close()
    reopened = factory()
    try:
        # No create_index_if_missing: an existing collection opens from disk by itself.
        assert await reopened.count(COLL) == len(ROWS) - 1
        assert rows(await reopened.search(COLL, E0, 10, SearchFilter(project_ids=[1]))) == [
            1,
            2,
            3,
        ]
        await reopened.upsert(COLL, points()[4:])
        assert await reopened.count(COLL) == len(ROWS)
    finally:
        await reopened.close()


async def test_closed_store_is_unavailable(store: VectorStore) -> None:
    await store.create_index_if_missing(COLL, DIM, model_name=MODEL)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(VectorStoreUnavailable):
        await store.health()


# --------------------------------------------------------------------------------------------
# Edge specifics
# --------------------------------------------------------------------------------------------


async def test_edge_second_opener_of_same_path_is_unavailable(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path)
    await first.create_index_if_missing(COLL, DIM, model_name=MODEL)
    second = EdgeVectorStore(tmp_path)
    try:
        with pytest.raises(VectorStoreUnavailable, match="WAL"):
            await second.count(COLL)
    finally:
        await second.close()
        await first.close()


async def test_edge_optimize_builds_hnsw_and_search_stays_exact_enough(tmp_path: Path) -> None:
    dim, n = 32, 3000
    rng = np.random.default_rng(7)
    data = rng.standard_normal((n, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    # A tiny indexing threshold (64 KB) so a 3000x32 segment (375 KB) gets a graph, and an
    # optimize threshold the upsert crosses, so the store optimizes by itself.
    store = EdgeVectorStore(tmp_path, optimize_threshold=n, indexing_threshold_kb=64)
    try:
        await store.create_index_if_missing(COLL, dim, model_name=MODEL)
        await store.upsert(
            COLL,
            [VectorPoint(i, data[i].tolist(), {"project_id": i % 3}) for i in range(n)],
        )
        info = await store.info(COLL)
        assert info.points_count == n
        assert info.indexed_vectors_count >= n * 0.9, info  # HNSW built, not brute force
        hits = await store.search(COLL, data[123].tolist(), 5)
        assert hits[0].id == 123 and hits[0].score == pytest.approx(1.0, abs=1e-4)
        filtered = await store.search(COLL, data[124].tolist(), 5, SearchFilter(project_ids=[1]))
        assert filtered and all(h.payload["project_id"] == 1 for h in filtered)
        assert filtered[0].id == 124  # 124 % 3 == 1
    finally:
        await store.close()


async def test_edge_unusable_directory_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = EdgeVectorStore(blocker / "vectors")
    with pytest.raises(VectorStoreUnavailable):
        await store.health()
    with pytest.raises(VectorStoreUnavailable):
        await store.create_index_if_missing(COLL, DIM, model_name=MODEL)
    await store.close()


# --------------------------------------------------------------------------------------------
# Server adapter: unreachable server
# --------------------------------------------------------------------------------------------


async def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # released on exit: nothing listens there
    store = QdrantServerStore(url=f"http://127.0.0.1:{port}", timeout=1)
    started = time.perf_counter()
    try:
        with pytest.raises(VectorStoreUnavailable):
            await store.health()
        with pytest.raises(VectorStoreUnavailable):
            await store.create_index_if_missing(COLL, DIM, model_name=MODEL)
        with pytest.raises(VectorStoreUnavailable):
            await store.search(COLL, E0, 3)
    finally:
        await store.close()
    assert time.perf_counter() - started < 10
