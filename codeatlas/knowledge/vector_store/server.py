"""The scaled backend: a Qdrant server through qdrant-client (or the client's local mode)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from codeatlas.knowledge.vector_store.base import (
    FULL_SCAN_THRESHOLD_KB,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    INDEXED_PAYLOAD_FIELDS,
    SPARSE_VECTOR,
    CollectionMeta,
    CollectionNotFound,
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


def _KEYWORD_CONFIG() -> dict[str, Any]:
    from qdrant_client import models

    return {SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}


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
        check_collection_name(collection)
        with self._errors(collection):
            exists = await self._client.collection_exists(collection)
            if not exists:
                raise CollectionNotFound(f"collection {collection!r} does not exist")
            info = await self._client.get_collection(collection)
        vectors = info.config.params.vectors
        size = getattr(vectors, "size", None)
        if not vectors and SPARSE_VECTOR in (info.config.params.sparse_vectors or {}):
            size = 0  # a keyword collection
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

        if dimension < 0:
            raise ValueError("dimension must be >= 0")
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
            check_meta(collection, existing, dimension, model_name)
            await self._ensure_payload_indexes(collection)
            return
        from qdrant_client.http.exceptions import UnexpectedResponse

        with self._errors(collection):
            try:
                await self._client.create_collection(
                    collection,
                    vectors_config=(
                        models.VectorParams(size=dimension, distance=models.Distance.COSINE)
                        if dimension
                        else {}
                    ),
                    sparse_vectors_config=None if dimension else _KEYWORD_CONFIG(),
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
            check_meta(collection, existing, dimension, model_name)
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
        ids = check_ids([p.id for p in points])
        vectors: list[Any] = []
        for p in points:
            if meta.dimension == 0:
                indices, values = check_sparse(meta, collection, p.sparse)
                vectors.append({SPARSE_VECTOR: models.SparseVector(indices=indices, values=values)})
            else:
                check_vector(meta, collection, p.vector)
                vectors.append(list(p.vector))
        structs = [
            models.PointStruct(id=pid, vector=vector, payload=dict(p.payload))
            for pid, vector, p in zip(ids, vectors, points, strict=True)
        ]
        with self._errors(collection):
            await self._client.upsert(collection, points=structs, wait=True)

    async def delete(self, collection: str, ids: Sequence[int | str]) -> None:
        if not ids:
            return
        from qdrant_client import models

        checked = check_ids(ids)
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
        check_vector(meta, collection, vector)
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
            VectorHit(normalise_id(p.id), float(p.score), dict(p.payload or {}))
            for p in response.points
        ]

    async def sparse_search(
        self,
        collection: str,
        sparse: tuple[list[int], list[float]],
        top_k: int,
        filter: SearchFilter | None = None,
    ) -> list[VectorHit]:
        from qdrant_client import models

        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        meta = await self._get_meta(collection)
        indices, values = check_sparse(meta, collection, sparse)
        if not indices or (filter is not None and filter.matches_nothing):
            return []
        with self._errors(collection):
            response = await self._client.query_points(
                collection,
                query=models.SparseVector(indices=indices, values=values),
                using=SPARSE_VECTOR,
                query_filter=self._filter(filter),
                limit=top_k,
                with_payload=True,
            )
        return [
            VectorHit(normalise_id(p.id), float(p.score), dict(p.payload or {}))
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
                out[normalise_id(record.id)] = dict(record.payload or {})
            if offset is None or not records:
                break
        return out

    async def drop_collection(self, collection: str) -> None:
        if self._closed:
            raise VectorStoreUnavailable("QdrantServerStore is closed")
        check_collection_name(collection)
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
