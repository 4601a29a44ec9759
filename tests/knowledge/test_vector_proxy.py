"""The vector store over a Unix socket (`codeatlas.knowledge.vector_proxy`): a real embedded
Qdrant engine behind the server, the proxy client in front; every call and error crosses."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from codeatlas.knowledge.vector_proxy import ProxyVectorStore, start_vector_server
from codeatlas.knowledge.vector_store import (
    CollectionNotFound,
    EdgeVectorStore,
    EmbeddingModelMismatch,
    SearchFilter,
    VectorPoint,
    VectorStore,
    VectorStoreUnavailable,
    point_id,
)

DIM = 8


def _vector(i: int) -> list[float]:
    return [1.0 if d == i % DIM else 0.1 for d in range(DIM)]


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[ProxyVectorStore, EdgeVectorStore]]:
    edge = EdgeVectorStore(tmp_path / "vectors", optimize_threshold=None)
    # AF_UNIX paths are short (107 bytes): pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="ca-") as short:
        sock = Path(short) / "v.sock"
        server = await start_vector_server(lambda: edge, sock)
        try:
            yield ProxyVectorStore(sock, timeout=10), edge
        finally:
            server.close()
            await server.wait_closed()
            await edge.close()


async def test_every_call_reaches_the_owner(
    proxied: tuple[ProxyVectorStore, EdgeVectorStore],
) -> None:
    proxy, edge = proxied
    assert isinstance(proxy, VectorStore)
    await proxy.create_index_if_missing("code", DIM, model_name="m")
    await proxy.health()
    points = [
        VectorPoint(point_id("chunk", i), _vector(i), {"project_id": i % 2, "kind": "code"})
        for i in range(20)
    ]
    await proxy.upsert("code", points)
    assert await proxy.count("code") == 20 == await edge.count("code")

    hits = await proxy.search("code", _vector(3), 3, SearchFilter(project_ids=[1]))
    # _vector repeats every DIM points: 3, 11 and 19 (all in project 1) tie for the top.
    assert hits and hits[0].id in {point_id("chunk", i) for i in (3, 11, 19)}
    assert all(h.payload["project_id"] == 1 for h in hits)
    assert await proxy.search("code", _vector(3), 3, SearchFilter(project_ids=[])) == []

    listed = await proxy.list_points("code", SearchFilter(project_ids=[0]))
    assert set(listed) == {point_id("chunk", i) for i in range(0, 20, 2)}

    await proxy.delete("code", [point_id("chunk", 0)])
    await proxy.delete_by_filter("code", SearchFilter(project_ids=[1]))
    assert await edge.count("code") == 9

    await proxy.drop_collection("code")
    with pytest.raises(CollectionNotFound):
        await proxy.count("code")


async def test_the_owners_errors_cross_as_the_same_types(
    proxied: tuple[ProxyVectorStore, EdgeVectorStore],
) -> None:
    proxy, _ = proxied
    await proxy.create_index_if_missing("kb", DIM, model_name="m")
    with pytest.raises(EmbeddingModelMismatch):
        await proxy.create_index_if_missing("kb", DIM, model_name="another")
    with pytest.raises(EmbeddingModelMismatch):
        await proxy.search("kb", [0.0] * (DIM + 1), 3)
    with pytest.raises(ValueError, match="at least one condition"):
        await proxy.delete_by_filter("kb", SearchFilter())
    with pytest.raises(ValueError, match="invalid collection name"):
        await proxy.count("../escape")


async def test_no_owner_is_a_clear_unavailable(tmp_path: Path) -> None:
    proxy = ProxyVectorStore(tmp_path / "missing.sock", timeout=2)
    with pytest.raises(VectorStoreUnavailable, match="not reachable"):
        await proxy.health()


async def test_a_blocked_owner_times_out_instead_of_hanging(tmp_path: Path) -> None:
    # An owner that accepts but never answers (its loop busy building HNSW).
    with tempfile.TemporaryDirectory(prefix="ca-") as short:
        sock = Path(short) / "silent.sock"

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(30)

        server = await asyncio.start_unix_server(silent, str(sock))
        try:
            with pytest.raises(VectorStoreUnavailable, match="did not answer"):
                await ProxyVectorStore(sock, timeout=0.5).health()
        finally:
            server.close()
