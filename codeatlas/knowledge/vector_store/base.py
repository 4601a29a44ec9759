"""What every vector store backend shares: the protocol, data types, errors and checks.

The package owns where embedding vectors (and the keyword index's sparse vectors) live and
how they are searched; one module per backend:

* :class:`VectorStore` — the protocol the knowledge service depends on; data types
  :class:`VectorPoint`, :class:`VectorHit`, :class:`SearchFilter`; errors
  :class:`VectorStoreError`, :class:`VectorStoreUnavailable`, :class:`EmbeddingModelMismatch`,
  :class:`CollectionNotFound`; :func:`point_id` for idempotent ids.
* :class:`~codeatlas.knowledge.vector_store.edge.EdgeVectorStore` — the embedded default:
  qdrant-edge-py (the Qdrant engine in-process, HNSW + payload indexes), one EdgeShard per
  collection under ``path``.
* :class:`~codeatlas.knowledge.vector_store.server.QdrantServerStore` — a Qdrant server
  through ``AsyncQdrantClient`` (or the client's local mode, used by the tests).

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

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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
#: Name of the sparse vector of a keyword collection (one created with ``dimension=0``).
SPARSE_VECTOR = "terms"


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
    """A vector to store. ``id`` is an unsigned int or a UUID string (see :func:`point_id`).

    A keyword collection (created with ``dimension=0``) stores ``sparse`` = ``(indices,
    values)`` instead, with an empty ``vector``.
    """

    id: int | str
    vector: list[float]
    payload: dict[str, Any] = field(default_factory=dict)
    sparse: tuple[list[int], list[float]] | None = None


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

        ``dimension=0`` makes a keyword collection: one sparse vector per point
        (:data:`SPARSE_VECTOR`) scored with Qdrant's IDF modifier; ``model_name`` then names
        the tokenizer that made the vectors.

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

    async def sparse_search(
        self,
        collection: str,
        sparse: tuple[list[int], list[float]],
        top_k: int,
        filter: SearchFilter | None = None,
    ) -> list[VectorHit]:
        """The ``top_k`` best points of a keyword collection for the sparse query, best first:
        score = sum over shared terms of idf(term) * query weight * point weight."""
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


def check_collection_name(collection: str) -> None:
    # Edge collections are directory names: refuse anything that could escape ``path``.
    if not _COLLECTION_RE.match(collection):
        raise ValueError(
            f"invalid collection name {collection!r}: use 1-63 of [A-Za-z0-9_-], "
            "starting with a letter or digit"
        )


def check_vector(meta: CollectionMeta, collection: str, vector: Sequence[float]) -> None:
    if len(vector) != meta.dimension:
        if meta.dimension == 0:
            raise EmbeddingModelMismatch(f"collection {collection!r} holds sparse vectors only")
        raise EmbeddingModelMismatch(
            f"collection {collection!r} holds {meta.dimension}-d vectors of "
            f"{meta.model_name!r}; got a {len(vector)}-d vector"
        )


def check_meta(collection: str, existing: CollectionMeta, dimension: int, model_name: str) -> None:
    if existing.model_name != model_name or existing.dimension != dimension:
        raise EmbeddingModelMismatch(
            f"collection {collection!r} was built with {existing.model_name!r} "
            f"({existing.dimension}-d), not {model_name!r} ({dimension}-d): re-index into a "
            "new collection or switch the embedding model back"
        )


def check_ids(ids: Sequence[int | str]) -> list[int | str]:
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


def check_sparse(
    meta: CollectionMeta, collection: str, sparse: tuple[list[int], list[float]] | None
) -> tuple[list[int], list[float]]:
    if meta.dimension != 0:
        raise EmbeddingModelMismatch(f"collection {collection!r} holds dense vectors only")
    if sparse is None:
        raise ValueError(f"a point of keyword collection {collection!r} needs a sparse vector")
    indices, values = sparse
    if len(indices) != len(values):
        raise ValueError("sparse vector: one value per index")
    return list(indices), list(values)


def normalise_id(raw: Any) -> int | str:
    # Both engines hand UUID ids back as uuid.UUID (edge) or str (client); callers compare
    # with point_id() strings.
    if isinstance(raw, int):
        return raw
    return str(raw)
