"""Vector storage and similarity search for the knowledge base (checklist 4-B).

One module per backend: :mod:`.edge` (qdrant-edge-py, the embedded default) and
:mod:`.server` (a Qdrant server); :mod:`.base` holds the protocol, types and checks they
share. Everything is re-exported here, so callers import from
``codeatlas.knowledge.vector_store``.
"""

from codeatlas.knowledge.vector_store.base import (
    FULL_SCAN_THRESHOLD_KB,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    INDEXED_PAYLOAD_FIELDS,
    SPARSE_VECTOR,
    CollectionMeta,
    CollectionNotFound,
    EdgeCollectionInfo,
    EmbeddingModelMismatch,
    SearchFilter,
    VectorHit,
    VectorPoint,
    VectorStore,
    VectorStoreError,
    VectorStoreUnavailable,
    point_id,
)
from codeatlas.knowledge.vector_store.edge import EdgeVectorStore
from codeatlas.knowledge.vector_store.server import QdrantServerStore

__all__ = [
    "FULL_SCAN_THRESHOLD_KB",
    "HNSW_EF_CONSTRUCT",
    "HNSW_M",
    "INDEXED_PAYLOAD_FIELDS",
    "SPARSE_VECTOR",
    "CollectionMeta",
    "CollectionNotFound",
    "EdgeCollectionInfo",
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
