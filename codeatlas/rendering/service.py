"""The rendering service: cache → render-svc behind a circuit breaker → local renderer.

This module owns how one Markdown document becomes a :class:`RenderResult` in the API
process:

* :class:`LocalRenderer` runs the pure core on a small dedicated thread pool, so a dense
  200 KB document never blocks the event loop (< 250 ms of CPU within the complexity limits of
  issue 11, seconds when an operator raises them).
* :class:`RemoteRenderer` forwards to ``RENDER_ENDPOINT`` with one pooled
  ``httpx.AsyncClient`` (connect/read/pool timeouts), tenacity retries for network errors
  only (refused, reset or dropped connections), and a :class:`CircuitBreaker` around the
  whole retried call: one request is one breaker outcome however many attempts it took, so
  ``RENDER_BREAKER_THRESHOLD`` failed requests (5xx, timeout, unreachable, malformed body)
  open it.
* :class:`RedisRenderCache` stores results by :func:`cache_key` under ``REDIS_KEY_PREFIX``;
  Redis errors degrade to a miss, and its own breaker stops a dead Redis from adding its
  timeout to every request.
* :class:`RenderingService` glues them: cache, then remote (or local when no endpoint is set,
  the roll-back), then the local fallback while the remote is failing.

Breaker state is per process (per uvicorn worker); each worker learns about a failing
render-svc from its own three failures.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from codeatlas import __version__
from codeatlas.core.context import get_request_id
from codeatlas.core.redis_client import key as redis_key
from codeatlas.rendering.breaker import CircuitBreaker, CircuitOpenError
from codeatlas.rendering.cache import MemoryRenderCache, RenderCache, cache_key
from codeatlas.rendering.core import (
    RenderLimits,
    RenderOptions,
    RenderResult,
    RenderTooLarge,
    render_markdown,
    warm_up,
)
from codeatlas.rendering.schemas import Renderer, RenderRequest
from codeatlas.settings import Settings

__all__ = [
    "LocalRenderer",
    "RedisRenderCache",
    "RemoteRejected",
    "RemoteRenderError",
    "RemoteRenderer",
    "RenderOutcome",
    "RenderingService",
    "check_input_size",
    "render_limits",
]

logger = logging.getLogger(__name__)

RENDER_PATH = "/render/markdown"
# Errors worth one more attempt on a fresh connection: the connection was refused or reset,
# typically a pooled keep-alive connection the server closed just as we reused it (seen under
# load: a burst of ReadErrors opened the breaker). Rendering is idempotent, so a retry is safe
# even if the first request reached render-svc. Timeouts and 5xx are not retried: they mean
# render-svc is slow or failing, and the local fallback is cheaper than a second wait.
_RETRYABLE = (httpx.NetworkError, httpx.RemoteProtocolError)


def check_input_size(text: str, limit: int) -> None:
    """Raise :class:`RenderTooLarge` when ``text`` is over ``limit`` UTF-8 bytes.

    Checked before the cache and before forwarding, so an oversized body costs no hashing
    and no round trip.
    """
    # A str never has more characters than UTF-8 bytes: a long string is rejected without
    # paying for the encode.
    size = len(text)
    if size <= limit // 4:
        return
    if size <= limit:
        size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise RenderTooLarge(size, limit)


def render_limits(settings: Settings) -> RenderLimits:
    """The renderer's per-document bounds from settings (issue 11)."""
    return RenderLimits(
        max_bytes=settings.render_max_input_bytes,
        highlight_chars=settings.render_max_highlight_chars,
        linkify_chars=settings.render_linkify_max_chars,
        math_chars=settings.render_max_math_chars,
        max_work=settings.render_max_work,
    )


# --------------------------------------------------------------------------- local


class LocalRenderer:
    """The in-process renderer, run on its own bounded thread pool."""

    def __init__(self, threads: int, limits: RenderLimits) -> None:
        self.limits = limits
        self.max_bytes = limits.max_bytes
        # A pool of our own rather than asyncio.to_thread: renders must not queue behind (or
        # starve) other users of the default executor, and the thread count is a setting.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="render")
        # lexers load in the background now, not in the first requests that need them
        self._executor.submit(warm_up)

    async def render(self, text: str, options: RenderOptions) -> RenderResult:
        loop = asyncio.get_running_loop()
        job = functools.partial(render_markdown, text, options, limits=self.limits)
        return await loop.run_in_executor(self._executor, job)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- remote


class RemoteRenderError(Exception):
    """render-svc failed (5xx, 429, malformed answer): counts as a breaker failure."""


class RemoteRejected(Exception):
    """render-svc answered with a 4xx: it is alive, the request was refused.

    Not a breaker failure (the dependency is healthy); the caller decides what to do.
    """

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"render-svc refused the request: HTTP {status_code}: {body[:200]}")
        self.status_code = status_code


class RemoteRenderer:
    """Client of render-svc: pooled HTTP, retries for connection errors, circuit breaker."""

    def __init__(self, settings: Settings) -> None:
        if not settings.render_endpoint:
            raise ValueError("RemoteRenderer needs RENDER_ENDPOINT")
        self.endpoint = settings.render_endpoint
        self.client = httpx.AsyncClient(
            base_url=self.endpoint,
            timeout=httpx.Timeout(
                connect=settings.render_connect_timeout,
                read=settings.render_read_timeout,
                write=settings.render_read_timeout,
                pool=settings.render_pool_timeout,
            ),
            limits=httpx.Limits(
                max_connections=settings.render_max_connections,
                max_keepalive_connections=settings.render_max_keepalive,
                keepalive_expiry=settings.render_keepalive_expiry,
            ),
            headers={"User-Agent": f"codeatlas/{__version__}"},
        )
        self.breaker = CircuitBreaker(
            failure_threshold=settings.render_breaker_threshold,
            reset_timeout=settings.render_breaker_reset,
            name="render-svc",
            ignore=(RemoteRejected,),
            # Every pooled connection busy for RENDER_POOL_TIMEOUT: this process has more
            # renders in flight than it allows itself, and render-svc was never asked. Counting
            # it would open the breaker under a burst and move *all* rendering onto the API
            # (seen at 200 req/s: 85 pool timeouts, breaker open, API CPU-bound on fallbacks);
            # instead only the overflow is rendered locally.
            neutral=(httpx.PoolTimeout,),
        )
        self._retrying = AsyncRetrying(
            stop=stop_after_attempt(1 + settings.render_connect_retries),
            # 50 ms, 100 ms, ... plus up to 50 ms of jitter so workers do not retry in step.
            wait=wait_exponential(multiplier=0.05, max=0.5) + wait_random(0, 0.05),
            retry=retry_if_exception_type(_RETRYABLE),
            reraise=True,
        )
        self._probe_timeout = max(0.1, settings.health_check_timeout / 2)
        #: HTTP attempts made (including retries); for diagnostics and tests.
        self.attempts = 0

    async def render(self, text: str, options: RenderOptions) -> RenderResult:
        """One guarded call. Raises CircuitOpenError, RemoteRejected, or the failure."""
        async with self.breaker.guard():
            # copy(): tenacity keeps per-run state on the instance; concurrent requests each
            # need their own.
            async for attempt in self._retrying.copy():
                with attempt:
                    return await self._post(text, options)
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def _post(self, text: str, options: RenderOptions) -> RenderResult:
        self.attempts += 1
        headers = {}
        if request_id := get_request_id():
            headers["X-Request-ID"] = request_id
        payload = RenderRequest(markdown=text, options=options)
        response = await self.client.post(
            RENDER_PATH,
            content=payload.model_dump_json(),
            headers={"Content-Type": "application/json", **headers},
        )
        status = response.status_code
        if status >= 500 or status in (408, 429):
            raise RemoteRenderError(f"render-svc answered HTTP {status}")
        if status >= 400:
            raise RemoteRejected(status, response.text)
        try:
            return RenderResult.model_validate_json(response.content)
        except ValidationError as exc:
            raise RemoteRenderError(f"render-svc sent a malformed result: {exc}") from exc

    async def readiness(self) -> dict[str, Any]:
        """Breaker state and whether render-svc answers its readiness probe.

        Never raises: while render-svc is down the API still serves through the local
        fallback, so it stays ready; the detail says it is degraded.
        """
        detail: dict[str, Any] = {
            "breaker": self.breaker.state.value,
            "consecutive_failures": self.breaker.failure_count,
        }
        try:
            response = await self.client.get("/health/ready", timeout=self._probe_timeout)
            ok = response.status_code == 200
            detail["remote"] = "ready" if ok else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            detail["remote"] = f"unreachable ({type(exc).__name__})"
        return detail

    async def aclose(self) -> None:
        await self.client.aclose()


# --------------------------------------------------------------------------- cache


class RedisRenderCache:
    """:class:`RenderCache` on Redis; every failure is a miss, never a failed render.

    Values are whatever the caller stores: :class:`RenderingService` stores the serialised
    :class:`RenderResult` (HTML plus its metadata), UTF-8 encoded, with a PX expiry.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        *,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._redis = redis
        self._settings = settings
        # Same breaker semantics as for render-svc: a dead Redis costs REDIS_TIMEOUT on three
        # requests, then the cache is skipped until a trial call succeeds.
        self.breaker = breaker or CircuitBreaker(3, 30.0, name="render-cache")

    def _key(self, key: str) -> str:
        return redis_key(self._settings, key)

    async def get(self, key: str) -> str | None:
        try:
            async with self.breaker.guard():
                raw = await self._redis.get(self._key(key))
        except CircuitOpenError:
            return None
        except (RedisError, OSError) as exc:
            logger.warning("render cache read failed, rendering anyway: %s", exc)
            return None
        if raw is None:
            return None
        return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)

    async def set(self, key: str, html: str, ttl: float | None = None) -> None:
        expire_ms = None if ttl is None else max(1, int(ttl * 1000))
        try:
            async with self.breaker.guard():
                await self._redis.set(self._key(key), html.encode("utf-8"), px=expire_ms)
        except CircuitOpenError:
            return
        except (RedisError, OSError) as exc:
            logger.warning("render cache write failed: %s", exc)


# --------------------------------------------------------------------------- service


@dataclass(frozen=True, slots=True)
class RenderOutcome:
    result: RenderResult
    renderer: Renderer
    cache_hit: bool


class RenderingService:
    """Renders with the cache, render-svc (when configured) and the local fallback."""

    def __init__(
        self,
        *,
        local: LocalRenderer,
        remote: RemoteRenderer | None,
        cache: RenderCache | None,
        cache_ttl: float,
        max_bytes: int,
        limits: RenderLimits | None = None,
    ) -> None:
        self.local = local
        self.remote = remote
        self.cache = cache
        self.cache_ttl = cache_ttl
        self.max_bytes = max_bytes
        self.limits = limits or RenderLimits(max_bytes=max_bytes)

    @classmethod
    def from_settings(
        cls, settings: Settings, redis: aioredis.Redis | None = None
    ) -> RenderingService:
        cache: RenderCache | None = None
        if settings.render_cache_ttl > 0:
            cache = (
                RedisRenderCache(redis, settings)
                if redis is not None
                else MemoryRenderCache(settings.render_memory_cache_size)
            )
        return cls(
            local=LocalRenderer(settings.render_threads, render_limits(settings)),
            remote=RemoteRenderer(settings) if settings.render_endpoint else None,
            cache=cache,
            cache_ttl=settings.render_cache_ttl,
            max_bytes=settings.render_max_input_bytes,
            limits=render_limits(settings),
        )

    async def render(self, text: str, options: RenderOptions | None = None) -> RenderOutcome:
        """Render ``text``; raises :class:`RenderTooLarge` over the size limit."""
        opts = options or RenderOptions()
        check_input_size(text, self.max_bytes)
        key = cache_key(text, opts, self.limits)
        if self.cache is not None:
            cached = await self.cache.get(key)
            if cached is not None:
                try:
                    return RenderOutcome(
                        RenderResult.model_validate_json(cached), Renderer.CACHE, True
                    )
                except ValidationError:
                    logger.warning("ignoring an unreadable render cache entry %s", key)
        result, renderer = await self._render(text, opts)
        if self.cache is not None:
            # The whole result is cached (not just the HTML): clients need the metadata too.
            await self.cache.set(key, result.model_dump_json(), self.cache_ttl)
        return RenderOutcome(result, renderer, False)

    async def _render(self, text: str, options: RenderOptions) -> tuple[RenderResult, Renderer]:
        if self.remote is None:
            return await self.local.render(text, options), Renderer.LOCAL
        try:
            return await self.remote.render(text, options), Renderer.REMOTE
        except CircuitOpenError:
            pass  # the breaker logged the transition; every rejected call would be noise
        except httpx.PoolTimeout:
            logger.info("render-svc connection pool busy; rendering this request locally")
        except RemoteRejected as exc:
            # The input passed our own limits, so a 4xx is configuration or version skew
            # between the API and render-svc (e.g. a smaller RENDER_MAX_INPUT_BYTES there):
            # an operator's problem, not the user's. Serve locally and say so loudly.
            logger.error("%s; rendering locally", exc)
        except (httpx.HTTPError, RemoteRenderError) as exc:
            logger.warning(
                "render-svc call failed (%s: %s); rendering locally", type(exc).__name__, exc
            )
        return await self.local.render(text, options), Renderer.FALLBACK

    async def readiness(self) -> dict[str, Any]:
        if self.remote is None:
            return {"renderer": "local"}
        return await self.remote.readiness()

    async def aclose(self) -> None:
        try:
            if self.remote is not None:
                await self.remote.aclose()
        finally:
            self.local.close()
