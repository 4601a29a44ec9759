"""The error codes of the knowledge domain, each a class of the AppError family.

Search never answers with placeholder results: when a dependency is missing the answer is a
503 whose ``error_code`` names it, with ``Retry-After``.
"""

from __future__ import annotations

from codeatlas.errors import ServiceUnavailable

RETRY_AFTER_SECONDS = "5"


class VectorStoreDown(ServiceUnavailable):
    """The vector store (embedded engine or Qdrant server) cannot be used right now."""

    error_code = "VECTOR_STORE_UNAVAILABLE"
    message = "The vector store is unavailable; semantic search cannot run"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": RETRY_AFTER_SECONDS})


class EmbeddingsDown(ServiceUnavailable):
    """The embedding model or provider cannot turn the query into a vector."""

    error_code = "EMBEDDINGS_UNAVAILABLE"
    message = "The embedding service is unavailable; semantic search cannot run"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": RETRY_AFTER_SECONDS})


class ModelMismatch(ServiceUnavailable):
    """The collection holds vectors of another embedding model: refused until re-indexed."""

    error_code = "EMBEDDING_MODEL_MISMATCH"
    message = "The vector index was built with another embedding model; run `codeatlas reindex`"
