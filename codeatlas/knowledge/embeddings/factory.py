"""Building an embedder from a provider name and its options."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily at run time: onnxruntime costs ~0.3 s to import
    pass

from codeatlas.knowledge.embeddings.base import (
    Embedder,
)
from codeatlas.knowledge.embeddings.cached import CachedEmbedder
from codeatlas.knowledge.embeddings.local import LocalEmbedder
from codeatlas.knowledge.embeddings.openai import OpenAIEmbedder

logger = logging.getLogger(__name__)


def build_embedder(provider: str, **kwargs: Any) -> Embedder:
    """Build an embedder from settings.

    ``provider``: ``"local"`` (kwargs of :class:`LocalEmbedder`) or ``"openai"`` (kwargs of
    :class:`OpenAIEmbedder`). ``cache_size=N`` (N > 0) wraps the result in a
    :class:`CachedEmbedder`.
    """
    cache_size = int(kwargs.pop("cache_size", 0) or 0)
    name = provider.strip().lower()
    embedder: Embedder
    if name == "local":
        embedder = LocalEmbedder(**kwargs)
    elif name in {"openai", "openai-compatible"}:
        embedder = OpenAIEmbedder(**kwargs)
    else:
        raise ValueError(f"unknown embedding provider {provider!r} (expected 'local' or 'openai')")
    if cache_size > 0:
        return CachedEmbedder(embedder, maxsize=cache_size)
    return embedder
