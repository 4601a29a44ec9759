"""Render cache keys and the :class:`RenderCache` protocol with an in-process LRU
(:class:`MemoryRenderCache`); split out of :mod:`codeatlas.rendering.core`."""

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from typing import Protocol, runtime_checkable

from codeatlas.rendering.core import (
    _DEFAULT_LIMITS,
    _DEFAULT_OPTIONS,
    RENDERER_VERSION,
    RenderLimits,
    RenderOptions,
)

# --------------------------------------------------------------------------- caching


def cache_key(
    text: str, options: RenderOptions | None = None, limits: RenderLimits = _DEFAULT_LIMITS
) -> str:
    """Stable key for a render: sha256 over renderer version, options, limits and text."""
    opts = options or _DEFAULT_OPTIONS
    digest = hashlib.sha256()
    # NUL separators keep the (version, options, limits, text) split unambiguous.
    digest.update(RENDERER_VERSION.encode())
    digest.update(b"\0")
    digest.update(json.dumps(opts.model_dump(), sort_keys=True).encode())
    digest.update(b"\0")
    if limits != _DEFAULT_LIMITS:  # the output depends on them (keys stay as they were)
        digest.update(json.dumps(asdict(limits), sort_keys=True).encode())
        digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return "render:" + digest.hexdigest()


@runtime_checkable
class RenderCache(Protocol):
    """Async store of rendered HTML by :func:`cache_key`."""

    async def get(self, key: str) -> str | None:
        """The cached HTML, or None if absent or expired."""
        ...

    async def set(self, key: str, html: str, ttl: float | None = None) -> None:
        """Store HTML for ``ttl`` seconds (None: until evicted)."""
        ...


class MemoryRenderCache:
    """In-process LRU :class:`RenderCache` with optional per-entry TTL.

    Safe for use from one event loop: no method awaits between reading and
    updating the dict, so coroutine interleaving cannot corrupt it.
    """

    def __init__(self, maxsize: int = 1024, *, clock: Callable[[], float] = time.monotonic):
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._clock = clock
        # key -> (html, expires_at or None)
        self._entries: OrderedDict[str, tuple[str, float | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, html: str, ttl: float | None = None) -> None:
        expires_at = None if ttl is None else self._clock() + ttl
        self._entries[key] = (html, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    async def clear(self) -> None:
        self._entries.clear()
