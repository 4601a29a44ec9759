"""The embedded default backend: qdrant-edge-py, the Qdrant engine in-process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from codeatlas.knowledge.vector_store.base import (
    FULL_SCAN_THRESHOLD_KB,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    INDEXED_PAYLOAD_FIELDS,
    SPARSE_VECTOR,
    CollectionMeta,
    CollectionNotFound,
    EdgeCollectionInfo,
    SearchFilter,
    VectorHit,
    VectorPoint,
    VectorStoreError,
    VectorStoreUnavailable,
    check_collection_name,
    check_ids,
    check_meta,
    check_sparse,
    check_vector,
    normalise_id,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

_META_FILE = "codeatlas_collection.json"
_META_VERSION = 1


class EdgeVectorStore:
    """Embedded Qdrant (qdrant-edge-py): one on-disk EdgeShard per collection under ``path``.

    Threading: measured with qdrant-edge-py 0.9.0, every EdgeShard call holds the GIL for
    its whole duration (a ticker thread stalls for as long as the call runs), so
    ``asyncio.to_thread`` cannot keep the event loop responsive and only adds a thread hop.
    Calls therefore run inline. They are short: an HNSW top-10 search over 100k 384-d
    vectors takes ~0.3-1.5 ms, a 256-point upsert a few ms (upserts are split into chunks
    of ``upsert_chunk`` with a loop yield in between).

    Indexing: Edge has no background optimizer; new points sit in a plain segment that is
    brute-forced (~8 ms at 100k) until ``optimize()`` builds HNSW. This store calls
    ``optimize`` itself once ``optimize_threshold`` points were written since the last run
    (``None`` disables that; call :meth:`optimize` yourself, e.g. after a bulk import).
    ``optimize`` blocks the whole process (GIL) while it builds: 100k 384-d vectors took
    70-220 s on 2 shared cores — run indexing from the worker, not from the API process.
    Opening a 100k shard takes ~1 s, on first use of a collection (or in
    ``create_index_if_missing`` at start-up). A shard can be opened by only one
    process at a time (its WAL is locked); a second opener gets
    :class:`VectorStoreUnavailable`. Multi-process deployments use :class:`QdrantServerStore`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        optimize_threshold: int | None = 20_000,
        upsert_chunk: int = 256,
        hnsw_ef: int | None = None,
        max_search_threads: int | None = None,
        indexing_threshold_kb: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.optimize_threshold = optimize_threshold
        # Segments above this size get an HNSW graph when optimized (Qdrant's default,
        # 10 MB ≈ 6.5k 384-d vectors, when None). Smaller segments are brute-forced, which
        # is faster than a graph at that size.
        self.indexing_threshold_kb = indexing_threshold_kb
        self.upsert_chunk = max(1, upsert_chunk)
        self.hnsw_ef = hnsw_ef
        self.max_search_threads = max_search_threads
        self._shards: dict[str, Any] = {}
        self._meta: dict[str, CollectionMeta] = {}
        self._pending: dict[str, int] = {}  # points written since the last optimize
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    # -- helpers -----------------------------------------------------------------------

    def _lock(self, collection: str) -> asyncio.Lock:
        lock = self._locks.get(collection)
        if lock is None:
            lock = self._locks[collection] = asyncio.Lock()
        return lock

    def _dir(self, collection: str) -> Path:
        check_collection_name(collection)
        return self.path / collection

    @staticmethod
    def _edge_call(what: str, fn: Callable[[], T], *, unavailable: bool = False) -> T:
        """Run one qdrant_edge call, translating its errors.

        qdrant-edge-py 0.9.0 raises plain ``Exception`` for every failure (I/O, WAL lock,
        dimension, closed shard); there is no narrower type to catch, hence the broad
        clause, confined to the engine call itself.
        """
        try:
            return fn()
        except Exception as exc:  # the binding raises bare Exception only (see above)
            cls = VectorStoreUnavailable if unavailable else VectorStoreError
            raise cls(f"qdrant-edge {what} failed: {exc}") from exc

    def _edge_config(self, dimension: int) -> Any:
        import qdrant_edge as qe

        if dimension == 0:  # a keyword collection: the sparse vector only
            return qe.EdgeConfig(
                sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
                max_search_threads=self.max_search_threads,
            )
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(
                m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_THRESHOLD_KB
            ),
            max_search_threads=self.max_search_threads,
            optimizers=(
                qe.EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb)
                if self.indexing_threshold_kb is not None
                else None
            ),
        )

    def _read_meta(self, directory: Path) -> CollectionMeta | None:
        meta_path = directory / _META_FILE
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise VectorStoreUnavailable(f"cannot read {meta_path}: {exc}") from exc
        try:
            return CollectionMeta(
                model_name=str(raw["model_name"]), dimension=int(raw["dimension"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VectorStoreError(f"corrupt collection metadata {meta_path}: {exc}") from exc

    @staticmethod
    def _write_meta(directory: Path, meta: CollectionMeta) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{_META_FILE}.tmp"
        body = {
            "version": _META_VERSION,
            "model_name": meta.model_name,
            "dimension": meta.dimension,
            "distance": "cosine",
        }
        tmp.write_text(json.dumps(body, indent=2), encoding="utf-8")
        os.replace(tmp, directory / _META_FILE)  # atomic: never a half-written sidecar

    def _ensure_payload_indexes(self, shard: Any) -> None:
        import qdrant_edge as qe

        existing = self._edge_call("info", shard.info).payload_schema
        for name, kind in INDEXED_PAYLOAD_FIELDS.items():
            if name in existing:
                continue
            schema = (
                qe.PayloadSchemaType.Integer if kind == "integer" else qe.PayloadSchemaType.Keyword
            )
            operation = qe.UpdateOperation.create_field_index(name, schema)
            self._edge_call(f"create index {name}", partial(shard.update, operation))

    def _open(self, collection: str) -> tuple[Any, CollectionMeta]:
        """The open shard of ``collection``, loading it from disk on first use."""
        if self._closed:
            raise VectorStoreUnavailable("EdgeVectorStore is closed")
        shard = self._shards.get(collection)
        if shard is not None:
            return shard, self._meta[collection]
        import qdrant_edge as qe

        directory = self._dir(collection)
        meta = self._read_meta(directory)
        if meta is None or not (directory / "edge_config.json").exists():
            raise CollectionNotFound(f"collection {collection!r} does not exist under {self.path}")
        shard = self._edge_call(
            f"load {directory}",
            lambda: qe.EdgeShard.load(str(directory), self._edge_config(meta.dimension)),
            unavailable=True,
        )
        self._ensure_payload_indexes(shard)
        info = self._edge_call("info", shard.info)
        self._shards[collection] = shard
        self._meta[collection] = meta
        self._pending[collection] = max(0, info.points_count - info.indexed_vectors_count)
        return shard, meta

    def _filter(self, flt: SearchFilter | None) -> Any:
        if flt is None or flt.is_empty:
            return None
        import qdrant_edge as qe

        return qe.Filter(
            must=[
                qe.FieldCondition(key=key, match=qe.MatchAny(values))
                for key, values in flt.conditions()
            ]
        )

    # -- VectorStore ---------------------------------------------------------------------

    async def create_index_if_missing(
        self, collection: str, dimension: int, *, model_name: str
    ) -> None:
        if dimension < 0:
            raise ValueError("dimension must be >= 0")
        async with self._lock(collection):
            try:
                _, existing = self._open(collection)
            except CollectionNotFound:
                pass
            else:
                check_meta(collection, existing, dimension, model_name)
                return
            import qdrant_edge as qe

            directory = self._dir(collection)
            stale = self._read_meta(directory)
            if stale is not None:
                # Sidecar written but the shard never created (crash in between): the
                # sidecar is the intent, so it must agree too.
                check_meta(collection, stale, dimension, model_name)
            meta = CollectionMeta(model_name=model_name, dimension=dimension)
            try:
                self._write_meta(directory, meta)
            except OSError as exc:
                raise VectorStoreUnavailable(f"cannot write under {directory}: {exc}") from exc
            shard = self._edge_call(
                f"create {directory}",
                lambda: qe.EdgeShard.create(str(directory), self._edge_config(dimension)),
                unavailable=True,
            )
            self._ensure_payload_indexes(shard)
            self._shards[collection] = shard
            self._meta[collection] = meta
            self._pending[collection] = 0
            logger.info("created edge collection %s (%s, %d-d)", collection, model_name, dimension)

    async def upsert(self, collection: str, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        import qdrant_edge as qe

        shard, meta = self._open(collection)
        ids = check_ids([p.id for p in points])
        vectors: list[Any] = []
        for p in points:
            if meta.dimension == 0:
                indices, values = check_sparse(meta, collection, p.sparse)
                vectors.append({SPARSE_VECTOR: qe.SparseVector(indices, values)})
            else:
                check_vector(meta, collection, p.vector)
                vectors.append(list(p.vector))
        for start in range(0, len(points), self.upsert_chunk):
            chunk = [
                qe.Point(pid, vector, dict(p.payload))
                for pid, vector, p in zip(
                    ids[start : start + self.upsert_chunk],
                    vectors[start : start + self.upsert_chunk],
                    points[start : start + self.upsert_chunk],
                    strict=True,
                )
            ]
            operation = qe.UpdateOperation.upsert_points(chunk)
            self._edge_call("upsert", partial(shard.update, operation))
            if start + self.upsert_chunk < len(points):
                await asyncio.sleep(0)  # let other coroutines run between chunks
        if meta.dimension == 0:
            return  # the sparse index is updated in place; there is no graph to build
        self._pending[collection] = self._pending.get(collection, 0) + len(points)
        threshold = self.optimize_threshold
        if threshold is not None and self._pending[collection] >= threshold:
            await self.optimize(collection)

    async def optimize(self, collection: str) -> bool:
        """Build HNSW / merge / vacuum segments now. Blocks the process (see class doc)."""
        async with self._lock(collection):
            shard, _ = self._open(collection)
            changed = self._edge_call("optimize", shard.optimize)
            self._edge_call("flush", shard.flush)
            self._pending[collection] = 0
            return bool(changed)

    async def info(self, collection: str) -> EdgeCollectionInfo:
        """Point, HNSW-indexed vector and segment counts (to check that HNSW was built)."""
        shard, meta = self._open(collection)
        info = self._edge_call("info", shard.info)
        return EdgeCollectionInfo(
            model_name=meta.model_name,
            dimension=meta.dimension,
            points_count=int(info.points_count),
            indexed_vectors_count=int(info.indexed_vectors_count),
            segments_count=int(info.segments_count),
        )

    async def delete(self, collection: str, ids: Sequence[int | str]) -> None:
        if not ids:
            return
        import qdrant_edge as qe

        checked = check_ids(ids)
        shard, _ = self._open(collection)
        operation = qe.UpdateOperation.delete_points(list[int | uuid.UUID | str](checked))
        self._edge_call("delete", partial(shard.update, operation))

    async def delete_by_filter(self, collection: str, filter: SearchFilter) -> None:
        if filter.is_empty:
            raise ValueError("delete_by_filter needs at least one condition")
        if filter.matches_nothing:
            return
        import qdrant_edge as qe

        shard, _ = self._open(collection)
        edge_filter = self._filter(filter)
        self._edge_call(
            "delete by filter",
            lambda: shard.update(qe.UpdateOperation.delete_points_by_filter(edge_filter)),
        )

    async def search(
        self,
        collection: str,
        vector: Sequence[float],
        top_k: int,
        filter: SearchFilter | None = None,
    ) -> list[VectorHit]:
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        shard, meta = self._open(collection)
        check_vector(meta, collection, vector)
        if filter is not None and filter.matches_nothing:
            return []
        import qdrant_edge as qe

        request = qe.QueryRequest(
            limit=top_k,
            query=qe.Query.Nearest(list(vector)),
            filter=self._filter(filter),
            with_payload=True,
            params=qe.SearchParams(hnsw_ef=self.hnsw_ef) if self.hnsw_ef else None,
        )
        scored = self._edge_call("query", lambda: shard.query(request))
        return [
            VectorHit(normalise_id(p.id), float(p.score), dict(p.payload or {})) for p in scored
        ]

    async def sparse_search(
        self,
        collection: str,
        sparse: tuple[list[int], list[float]],
        top_k: int,
        filter: SearchFilter | None = None,
    ) -> list[VectorHit]:
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        shard, meta = self._open(collection)
        indices, values = check_sparse(meta, collection, sparse)
        if not indices or (filter is not None and filter.matches_nothing):
            return []
        import qdrant_edge as qe

        request = qe.QueryRequest(
            limit=top_k,
            query=qe.Query.Nearest(qe.SparseVector(indices, values), using=SPARSE_VECTOR),
            filter=self._filter(filter),
            with_payload=True,
        )
        scored = self._edge_call("sparse query", lambda: shard.query(request))
        return [
            VectorHit(normalise_id(p.id), float(p.score), dict(p.payload or {})) for p in scored
        ]

    async def count(self, collection: str) -> int:
        import qdrant_edge as qe

        shard, _ = self._open(collection)
        return int(self._edge_call("count", lambda: shard.count(qe.CountRequest(exact=True))))

    async def list_points(
        self, collection: str, filter: SearchFilter, *, limit: int = 100_000
    ) -> dict[int | str, dict[str, Any]]:
        import qdrant_edge as qe

        shard, _ = self._open(collection)
        if filter.matches_nothing:
            return {}
        edge_filter = self._filter(filter)
        out: dict[int | str, dict[str, Any]] = {}
        offset: Any = None
        while len(out) < limit:
            request = qe.ScrollRequest(
                offset=offset,
                limit=min(1000, limit - len(out)),
                filter=edge_filter,
                with_payload=True,
                with_vector=False,
            )
            records, offset = self._edge_call("scroll", partial(shard.scroll, request))
            for record in records:
                out[normalise_id(record.id)] = dict(record.payload or {})
            if offset is None or not records:
                break
        return out

    async def drop_collection(self, collection: str) -> None:
        import shutil

        async with self._lock(collection):
            if self._closed:
                raise VectorStoreUnavailable("EdgeVectorStore is closed")
            directory = self._dir(collection)
            shard = self._shards.pop(collection, None)
            self._meta.pop(collection, None)
            self._pending.pop(collection, None)
            if shard is not None:
                self._edge_call(f"close {collection}", shard.close)
            try:
                shutil.rmtree(directory)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise VectorStoreUnavailable(f"cannot remove {directory}: {exc}") from exc
            logger.info("dropped edge collection %s", collection)

    async def health(self) -> None:
        if self._closed:
            raise VectorStoreUnavailable("EdgeVectorStore is closed")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VectorStoreUnavailable(f"vector directory {self.path} unusable: {exc}") from exc
        if not os.access(self.path, os.W_OK):
            raise VectorStoreUnavailable(f"vector directory {self.path} is not writable")
        for name, shard in list(self._shards.items()):
            self._edge_call(f"info {name}", shard.info, unavailable=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        shards, self._shards = self._shards, {}
        first_error: VectorStoreError | None = None
        for name, shard in shards.items():
            # Flush and close every shard even if one fails; report the first failure.
            for step, call in (("flush", shard.flush), ("close", shard.close)):
                try:
                    self._edge_call(f"{step} {name}", call)
                except VectorStoreError as exc:
                    logger.error("edge collection %s: %s", name, exc)
                    first_error = first_error or exc
        if first_error is not None:
            raise first_error
