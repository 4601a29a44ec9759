"""An in-process LRU cache in front of any provider."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence

from codeatlas.knowledge.embeddings.base import Embedder

logger = logging.getLogger(__name__)


# Cache
# --------------------------------------------------------------------------------------------


class CachedEmbedder:
    """In-process LRU cache in front of another embedder.

    Keys are ``sha256(model_name NUL text)``, so two models never share entries and the cache
    holds digests rather than the (possibly large, possibly sensitive) texts. Only misses are
    sent to the inner embedder, each distinct text once, and results come back in input
    order. A text already being embedded by another call is awaited, not embedded again: a
    chat question is embedded ahead of its turn (:meth:`TurnManager.warm`) and the turn's
    searches share that one embedding.
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
        self._inflight: dict[bytes, asyncio.Future[tuple[float, ...]]] = {}
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
        waiting: dict[bytes, tuple[str, asyncio.Future[tuple[float, ...]]]] = {}
        for key, text in zip(keys, texts, strict=True):
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                found[key] = cached
                self.hits += 1
            elif key in self._inflight:
                waiting[key] = (text, self._inflight[key])
                self.hits += 1
            elif key not in missing:
                missing[key] = text
                self.misses += 1
            else:
                self.hits += 1  # duplicate within this call: served by the one embedding
        if missing:
            await self._embed_missing(missing, found)
        for key, (text, future) in waiting.items():
            try:
                found[key] = await asyncio.shield(future)  # a waiter's cancel is its own
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                # The call embedding it was cancelled, not this one: embed it here.
                await self._embed_missing({key: text}, found)
        return [list(found[key]) for key in keys]

    async def _embed_missing(
        self, missing: dict[bytes, str], found: dict[bytes, tuple[float, ...]]
    ) -> None:
        loop = asyncio.get_running_loop()
        futures = {key: loop.create_future() for key in missing}
        self._inflight.update(futures)
        try:
            vectors = await self.inner.embed(list(missing.values()))
        except BaseException as exc:
            for future in futures.values():
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                    future.exception()  # seen: a text nobody else waited for is not an error
                else:
                    future.cancel()
            raise
        finally:
            for key in futures:
                self._inflight.pop(key, None)
        for key, vector in zip(missing, vectors, strict=True):
            found[key] = tuple(vector)
            futures[key].set_result(found[key])
            self._cache[key] = found[key]
            self._cache.move_to_end(key)
        while len(self._cache) > self.maxsize:
            self._cache.popitem(last=False)

    async def aclose(self) -> None:
        await self.inner.aclose()
