"""Text embeddings for the knowledge base (checklist 4-B): one module per provider.

* :mod:`.base` — the :class:`Embedder` protocol, :class:`EmbeddingUnavailable`, the local
  model's name and dimension;
* :mod:`.local` — :class:`LocalEmbedder` (int8 MiniLM on onnxruntime, offline);
* :mod:`.openai` — :class:`OpenAIEmbedder` (any OpenAI-compatible embeddings API);
* :mod:`.cached` — :class:`CachedEmbedder` (an LRU in front of either);
* :mod:`.factory` — :func:`build_embedder`.

Everything is re-exported here: import from ``codeatlas.knowledge.embeddings``.
"""

from codeatlas.knowledge.embeddings.base import (
    LOCAL_MODEL_DIMENSION,
    LOCAL_MODEL_NAME,
    Embedder,
    EmbeddingUnavailable,
)
from codeatlas.knowledge.embeddings.cached import CachedEmbedder
from codeatlas.knowledge.embeddings.factory import build_embedder
from codeatlas.knowledge.embeddings.local import (
    LocalEmbedder,
    default_model_path,
    default_tokenizer_path,
)
from codeatlas.knowledge.embeddings.openai import OpenAIEmbedder

__all__ = [
    "LOCAL_MODEL_DIMENSION",
    "LOCAL_MODEL_NAME",
    "CachedEmbedder",
    "Embedder",
    "EmbeddingUnavailable",
    "LocalEmbedder",
    "OpenAIEmbedder",
    "build_embedder",
    "default_model_path",
    "default_tokenizer_path",
]
