"""Vector storage and similarity search for the knowledge base (checklist 4-B).

This module owns where embedding vectors live and how they are searched:

* :class:`VectorStore` — the protocol the knowledge service depends on; data types
  :class:`VectorPoint`, :class:`VectorHit`, :class:`SearchFilter`; errors
  :class:`VectorStoreError`, :class:`VectorStoreUnavailable`, :class:`EmbeddingModelMismatch`,
  :class:`CollectionNotFound`; :func:`point_id` for idempotent ids.
* :class:`EdgeVectorStore` — the embedded default: qdrant-edge-py (the Qdrant engine
  in-process, HNSW + payload indexes), one EdgeShard per collection under ``path``.
* :class:`QdrantServerStore` — a Qdrant server through ``AsyncQdrantClient`` (or the
  client's local mode, used by the tests).

Payload conventions: every point carries ``project_id`` (int), ``document_id`` (int),
``kind`` (str) and ``language`` (str); these four are indexed and are what
:class:`SearchFilter` filters on.

Collection metadata (which embedding model and dimension filled the collection), so vectors
of another model are never mixed in or searched with:

* edge: a JSON sidecar ``<path>/<collection>/codeatlas_collection.json`` next to the shard's
  own files (written before the shard is created, atomically via rename);
* server: Qdrant's collection ``metadata`` (``{"embedding_model", "dimension"}``, Qdrant
  >= 1.16). A server that drops metadata leaves only the vector size to compare; that case
  is accepted with a warning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import httpx

logger = logging.getLogger(__name__)

__all__ = [
    "INDEXED_PAYLOAD_FIELDS",
    "CollectionNotFound",
    "EdgeVectorStore",
    "EmbeddingModelMismatch",
    "QdrantServerStore",
    "SearchFilter",
    "VectorHit",
    "VectorPoint",
    "VectorStore",
    "VectorStoreError",
    "VectorStoreUnavailable",
    "point_id",
]

T = TypeVar("T")

#: Payload fields that get an index, with their type ("integer" | "keyword").
INDEXED_PAYLOAD_FIELDS: dict[str, str] = {
    "project_id": "integer",
    "document_id": "integer",
    "kind": "keyword",
    "language": "keyword",
}
#: HNSW parameters of every collection (Qdrant's defaults, stated so they cannot drift).
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
#: Below this many KB of candidate vectors a filtered search scans them instead of walking
#: the graph (Qdrant's default; the payload index makes such scans cheap).
FULL_SCAN_THRESHOLD_KB = 10_000

_NAMESPACE = uuid.UUID("6f0cb1d5-3c5e-5f0e-9a59-6b0d6c1e4a7d")
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,62}$")
_META_FILE = "codeatlas_collection.json"
_META_VERSION = 1


# --------------------------------------------------------------------------------------------
# Types and errors
# --------------------------------------------------------------------------------------------


class VectorStoreError(Exception):
    """Base class of vector store failures."""


class VectorStoreUnavailable(VectorStoreError):
    """The store cannot be reached or opened (server down, shard locked by another process)."""


class EmbeddingModelMismatch(VectorStoreError):
    """A collection holds vectors of another embedding model or dimension."""


class CollectionNotFound(VectorStoreError):
    """The collection does not exist; call ``create_index_if_missing`` first."""


@dataclass(slots=True)
class VectorPoint:
    """A vector to store. ``id`` is an unsigned int or a UUID string (see :func:`point_id`)."""

    id: int | str
    vector: list[float]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class VectorHit:
    """A search result; ``score`` is cosine similarity (higher is closer)."""

    id: int | str
    score: float
    payload: dict[str, Any]


@dataclass(slots=True)
class SearchFilter:
    """Payload constraints, ANDed together. ``None`` = no constraint; ``[]`` matches nothing."""

    project_ids: list[int] | None = None
    kinds: list[str] | None = None
    languages: list[str] | None = None
    document_ids: list[int] | None = None

    def conditions(self) -> list[tuple[str, list[int] | list[str]]]:
        """``(payload key, allowed values)`` for every set constraint."""
        out: list[tuple[str, list[int] | list[str]]] = []
        if self.project_ids is not None:
            out.append(("project_id", list(self.project_ids)))
        if self.document_ids is not None:
            out.append(("document_id", list(self.document_ids)))
        if self.kinds is not None:
            out.append(("kind", list(self.kinds)))
        if self.languages is not None:
            out.append(("language", list(self.languages)))
        return out

    @property
    def is_empty(self) -> bool:
        return not self.conditions()

    @property
    def matches_nothing(self) -> bool:
        return any(not values for _, values in self.conditions())


def point_id(kind: str, row_id: int) -> str:
    """Deterministic UUID for a database row, so re-indexing overwrites instead of adding.

    ``kind`` names the table/granularity (``"chunk"``, ``"document"``, ``"symbol"`` …) so ids
    of different tables never collide.
    """
    if not kind:
        raise ValueError("kind must be non-empty")
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{int(row_id)}"))


@dataclass(slots=True, frozen=True)
class CollectionMeta:
    model_name: str
    dimension: int


@dataclass(slots=True, frozen=True)
class EdgeCollectionInfo:
    model_name: str
    dimension: int
    points_count: int
    indexed_vectors_count: int
    segments_count: int


@runtime_checkable
class VectorStore(Protocol):
    """Where knowledge-base vectors live. All methods are coroutines."""

    async def create_index_if_missing(
        self, collection: str, dimension: int, *, model_name: str
    ) -> None:
        """Create the collection, or check that the existing one has this model/dimension.

        Raises :class:`EmbeddingModelMismatch` when it was built with another model or size.
        """
        ...

    async def upsert(self, collection: str, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points (same id = replace)."""
        ...

    async def delete(self, collection: str, ids: Sequence[int | str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        ...

    async def delete_by_filter(self, collection: str, filter: SearchFilter) -> None:
        """Delete every point matching ``filter`` (e.g. one document, one project).

        An empty filter raises ``ValueError`` rather than wiping the collection.
        """
        ...

    async def search(
        self,
        collection: str,
        vector: Sequence[float],
        top_k: int,
        filter: SearchFilter | None = None,
    ) -> list[VectorHit]:
        """The ``top_k`` most similar points matching ``filter``, best first."""
        ...

    async def count(self, collection: str) -> int:
        """Exact number of points in the collection."""
        ...

    async def list_points(
        self, collection: str, filter: SearchFilter, *, limit: int = 100_000
    ) -> dict[int | str, dict[str, Any]]:
        """Ids and payloads of the points matching ``filter`` (at most ``limit``), no vectors.

        What an indexing job reads to find the points of one document it must replace.
        """
        ...

    async def drop_collection(self, collection: str) -> None:
        """Delete the collection with its points and metadata (re-indexing with a new model)."""
        ...

    async def health(self) -> None:
        """Return when usable; raise :class:`VectorStoreUnavailable` otherwise."""
        ...

    async def close(self) -> None:
        """Flush and release resources. Safe to call twice."""
        ...


def _check_collection_name(collection: str) -> None:
    # Edge collections are directory names: refuse anything that could escape ``path``.
    if not _COLLECTION_RE.match(collection):
        raise ValueError(
            f"invalid collection name {collection!r}: use 1-63 of [A-Za-z0-9_-], "
            "starting with a letter or digit"
        )


def _check_vector(meta: CollectionMeta, collection: str, vector: Sequence[float]) -> None:
    if len(vector) != meta.dimension:
        raise EmbeddingModelMismatch(
            f"collection {collection!r} holds {meta.dimension}-d vectors of "
            f"{meta.model_name!r}; got a {len(vector)}-d vector"
        )


def _check_meta(collection: str, existing: CollectionMeta, dimension: int, model_name: str) -> None:
    if existing.model_name != model_name or existing.dimension != dimension:
        raise EmbeddingModelMismatch(
            f"collection {collection!r} was built with {existing.model_name!r} "
            f"({existing.dimension}-d), not {model_name!r} ({dimension}-d): re-index into a "
            "new collection or switch the embedding model back"
        )


def _check_ids(ids: Sequence[int | str]) -> list[int | str]:
    """Qdrant accepts unsigned ints and UUIDs only; fail early and clearly on anything else."""
    out: list[int | str] = []
    for raw in ids:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError(f"point id must be an unsigned int or a UUID string, got {raw!r}")
        if isinstance(raw, int):
            if raw < 0:
                raise ValueError(f"point id must be unsigned, got {raw}")
            out.append(raw)
            continue
        try:
            out.append(str(uuid.UUID(raw)))
        except ValueError as exc:
            raise ValueError(f"point id {raw!r} is not a UUID; use point_id()") from exc
    return out


def _normalise_id(raw: Any) -> int | str:
    # Both engines hand UUID ids back as uuid.UUID (edge) or str (client); callers compare
    # with point_id() strings.
    if isinstance(raw, int):
        return raw
    return str(raw)


# --------------------------------------------------------------------------------------------
# qdrant-edge-py
# --------------------------------------------------------------------------------------------


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
        _check_collection_name(collection)
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
        if dimension < 1:
            raise ValueError("dimension must be >= 1")
        async with self._lock(collection):
            try:
                _, existing = self._open(collection)
            except CollectionNotFound:
                pass
            else:
                _check_meta(collection, existing, dimension, model_name)
                return
            import qdrant_edge as qe

            directory = self._dir(collection)
            stale = self._read_meta(directory)
            if stale is not None:
                # Sidecar written but the shard never created (crash in between): the
                # sidecar is the intent, so it must agree too.
                _check_meta(collection, stale, dimension, model_name)
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
        ids = _check_ids([p.id for p in points])
        for p in points:
            _check_vector(meta, collection, p.vector)
        for start in range(0, len(points), self.upsert_chunk):
            chunk = [
                qe.Point(pid, list(p.vector), dict(p.payload))
                for pid, p in zip(
                    ids[start : start + self.upsert_chunk],
                    points[start : start + self.upsert_chunk],
                    strict=True,
                )
            ]
            operation = qe.UpdateOperation.upsert_points(chunk)
            self._edge_call("upsert", partial(shard.update, operation))
            if start + self.upsert_chunk < len(points):
                await asyncio.sleep(0)  # let other coroutines run between chunks
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

        checked = _check_ids(ids)
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
        _check_vector(meta, collection, vector)
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
            VectorHit(_normalise_id(p.id), float(p.score), dict(p.payload or {})) for p in scored
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
                out[_normalise_id(record.id)] = dict(record.payload or {})
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


# --------------------------------------------------------------------------------------------
# Qdrant server (qdrant-client)
# --------------------------------------------------------------------------------------------


class QdrantServerStore:
    """Qdrant through ``AsyncQdrantClient``: a server when ``url`` is given, else local mode.

    ``location=":memory:"`` / ``path=…`` select qdrant-client's in-process local mode (brute
    force, no payload indexes; for tests and tiny installs). Errors of the transport
    (connection refused, timeouts, 5xx) become :class:`VectorStoreUnavailable`; 404s become
    :class:`CollectionNotFound`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        location: str | None = None,
        path: str | Path | None = None,
        timeout: float = 10.0,
        *,
        hnsw_ef: int | None = None,
    ) -> None:
        from qdrant_client import AsyncQdrantClient

        if sum(x is not None for x in (url, location, path)) != 1:
            raise ValueError("give exactly one of url, location or path")
        self.local = url is None
        self.hnsw_ef = hnsw_ef
        self._meta: dict[str, CollectionMeta] = {}
        self._closed = False
        # check_compatibility=False: the version probe is a blocking request at construction
        # time; health() is where reachability is checked.
        try:
            self._client = AsyncQdrantClient(
                url=url,
                api_key=api_key,
                location=location,
                path=str(path) if path is not None else None,
                timeout=max(1, round(timeout)),
                check_compatibility=False,
            )
        except RuntimeError as exc:  # local mode: folder locked by another client instance
            raise VectorStoreUnavailable(str(exc)) from exc

    @contextmanager
    def _errors(self, collection: str | None = None) -> Iterator[None]:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            yield
        except UnexpectedResponse as exc:
            status = exc.status_code or 0
            if status == 404 and collection is not None:
                raise CollectionNotFound(f"collection {collection!r} does not exist") from exc
            if status == 429 or status >= 500:
                raise VectorStoreUnavailable(f"qdrant answered HTTP {status}") from exc
            raise VectorStoreError(f"qdrant rejected the request: {exc}") from exc
        except ResponseHandlingException as exc:  # wraps connect errors and timeouts
            raise VectorStoreUnavailable(f"qdrant unreachable: {exc}") from exc
        except (httpx.TransportError, ConnectionError, TimeoutError) as exc:
            raise VectorStoreUnavailable(f"qdrant unreachable: {exc!r}") from exc

    async def _get_meta(self, collection: str) -> CollectionMeta:
        if self._closed:
            raise VectorStoreUnavailable("QdrantServerStore is closed")
        cached = self._meta.get(collection)
        if cached is not None:
            return cached
        _check_collection_name(collection)
        with self._errors(collection):
            exists = await self._client.collection_exists(collection)
            if not exists:
                raise CollectionNotFound(f"collection {collection!r} does not exist")
            info = await self._client.get_collection(collection)
        vectors = info.config.params.vectors
        size = getattr(vectors, "size", None)
        if not isinstance(size, int):
            raise VectorStoreError(f"collection {collection!r} has no single unnamed vector")
        metadata = info.config.metadata or {}
        model = metadata.get("embedding_model")
        meta = CollectionMeta(model_name=str(model) if model else "", dimension=size)
        self._meta[collection] = meta
        return meta

    def _filter(self, flt: SearchFilter | None) -> Any:
        if flt is None or flt.is_empty:
            return None
        from qdrant_client import models

        return models.Filter(
            must=[
                models.FieldCondition(key=key, match=models.MatchAny(any=values))
                for key, values in flt.conditions()
            ]
        )

    async def create_index_if_missing(
        self, collection: str, dimension: int, *, model_name: str
    ) -> None:
        from qdrant_client import models

        if dimension < 1:
            raise ValueError("dimension must be >= 1")
        self._meta.pop(collection, None)  # re-read: another process may have created it
        try:
            existing = await self._get_meta(collection)
        except CollectionNotFound:
            pass
        else:
            if not existing.model_name:
                # A server that predates collection metadata: only the size is checkable.
                logger.warning(
                    "collection %s has no embedding model metadata; checking dimension only",
                    collection,
                )
                existing = CollectionMeta(model_name=model_name, dimension=existing.dimension)
                self._meta[collection] = existing
            _check_meta(collection, existing, dimension, model_name)
            await self._ensure_payload_indexes(collection)
            return
        from qdrant_client.http.exceptions import UnexpectedResponse

        with self._errors(collection):
            try:
                await self._client.create_collection(
                    collection,
                    vectors_config=models.VectorParams(
                        size=dimension, distance=models.Distance.COSINE
                    ),
                    hnsw_config=models.HnswConfigDiff(
                        m=HNSW_M,
                        ef_construct=HNSW_EF_CONSTRUCT,
                        full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
                    ),
                    metadata={"embedding_model": model_name, "dimension": dimension},
                )
            except UnexpectedResponse as exc:
                if exc.status_code != 409:  # 409: created concurrently; checked below
                    raise
        # Created concurrently by someone else? Then theirs must match too.
        self._meta.pop(collection, None)
        existing = await self._get_meta(collection)
        if existing.model_name:
            _check_meta(collection, existing, dimension, model_name)
        await self._ensure_payload_indexes(collection)

    async def _ensure_payload_indexes(self, collection: str) -> None:
        """Create the missing payload indexes (also on collections made by older code)."""
        if self.local:
            return  # local mode ignores payload indexes and warns about each one
        from qdrant_client import models

        with self._errors(collection):
            info = await self._client.get_collection(collection)
            for name, kind in INDEXED_PAYLOAD_FIELDS.items():
                if name in (info.payload_schema or {}):
                    continue
                schema = (
                    models.PayloadSchemaType.INTEGER
                    if kind == "integer"
                    else models.PayloadSchemaType.KEYWORD
                )
                await self._client.create_payload_index(collection, name, schema, wait=True)

    async def upsert(self, collection: str, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        from qdrant_client import models

        meta = await self._get_meta(collection)
        ids = _check_ids([p.id for p in points])
        for p in points:
            _check_vector(meta, collection, p.vector)
        structs = [
            models.PointStruct(id=pid, vector=list(p.vector), payload=dict(p.payload))
            for pid, p in zip(ids, points, strict=True)
        ]
        with self._errors(collection):
            await self._client.upsert(collection, points=structs, wait=True)

    async def delete(self, collection: str, ids: Sequence[int | str]) -> None:
        if not ids:
            return
        from qdrant_client import models

        checked = _check_ids(ids)
        await self._get_meta(collection)
        with self._errors(collection):
            await self._client.delete(
                collection, points_selector=models.PointIdsList(points=checked), wait=True
            )

    async def delete_by_filter(self, collection: str, filter: SearchFilter) -> None:
        if filter.is_empty:
            raise ValueError("delete_by_filter needs at least one condition")
        if filter.matches_nothing:
            return
        from qdrant_client import models

        await self._get_meta(collection)
        with self._errors(collection):
            await self._client.delete(
                collection,
                points_selector=models.FilterSelector(filter=self._filter(filter)),
                wait=True,
            )

    async def search(
        self,
        collection: str,
        vector: Sequence[float],
        top_k: int,
        filter: SearchFilter | None = None,
    ) -> list[VectorHit]:
        from qdrant_client import models

        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        meta = await self._get_meta(collection)
        _check_vector(meta, collection, vector)
        if filter is not None and filter.matches_nothing:
            return []
        with self._errors(collection):
            response = await self._client.query_points(
                collection,
                query=list(vector),
                query_filter=self._filter(filter),
                limit=top_k,
                with_payload=True,
                search_params=models.SearchParams(hnsw_ef=self.hnsw_ef) if self.hnsw_ef else None,
            )
        return [
            VectorHit(_normalise_id(p.id), float(p.score), dict(p.payload or {}))
            for p in response.points
        ]

    async def count(self, collection: str) -> int:
        await self._get_meta(collection)
        with self._errors(collection):
            result = await self._client.count(collection, exact=True)
        return int(result.count)

    async def list_points(
        self, collection: str, filter: SearchFilter, *, limit: int = 100_000
    ) -> dict[int | str, dict[str, Any]]:
        await self._get_meta(collection)
        if filter.matches_nothing:
            return {}
        out: dict[int | str, dict[str, Any]] = {}
        offset: Any = None
        while len(out) < limit:
            with self._errors(collection):
                records, offset = await self._client.scroll(
                    collection,
                    scroll_filter=self._filter(filter),
                    limit=min(1000, limit - len(out)),
                    offset=offset,
                    with_payload=True,
                    with_vectors=False,
                )
            for record in records:
                out[_normalise_id(record.id)] = dict(record.payload or {})
            if offset is None or not records:
                break
        return out

    async def drop_collection(self, collection: str) -> None:
        if self._closed:
            raise VectorStoreUnavailable("QdrantServerStore is closed")
        _check_collection_name(collection)
        self._meta.pop(collection, None)
        with self._errors(collection):
            await self._client.delete_collection(collection)

    async def health(self) -> None:
        if self._closed:
            raise VectorStoreUnavailable("QdrantServerStore is closed")
        with self._errors():
            await self._client.get_collections()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._errors():
            await self._client.close()
