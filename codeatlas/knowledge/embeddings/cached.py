"""An in-process LRU cache in front of any provider."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily at run time: onnxruntime costs ~0.3 s to import
    pass

from codeatlas.knowledge.embeddings.base import (
    Embedder,
)

logger = logging.getLogger(__name__)


# Cache
# --------------------------------------------------------------------------------------------


class CachedEmbedder:
    """In-process LRU cache in front of another embedder.

    Keys are ``sha256(model_name NUL text)``, so two models never share entries and the cache
    holds digests rather than the (possibly large, possibly sensitive) texts. Only misses are
    sent to the inner embedder, each distinct text once, and results come back in input
    order. Concurrent calls may embed the same miss twice; the result is identical, so no
    in-flight bookkeeping is kept.
    """

    def __init__(self, inner: Embedder, maxsize: int = 10_000) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.inner = inner
        self.maxsize = maxsize
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        # Tuples: callers get fresh lists and cannot mutate a cached vector.
        self._cache: OrderedDict[bytes, tuple[float, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.model_name}\0{text}".encode()).digest()

    def __len__(self) -> int:
        return len(self._cache)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        keys = [self._key(t) for t in texts]
        found: dict[bytes, tuple[float, ...]] = {}
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                found[key] = cached
                self.hits += 1
            elif key not in missing:
                missing[key] = text
                self.misses += 1
            else:
                self.hits += 1  # duplicate within this call: served by the one embedding
        if missing:
            vectors = await self.inner.embed(list(missing.values()))
            for key, vector in zip(missing, vectors, strict=True):
                found[key] = tuple(vector)
                self._cache[key] = found[key]
                self._cache.move_to_end(key)
            while len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)
        return [list(found[key]) for key in keys]

    async def aclose(self) -> None:
        await self.inner.aclose()
