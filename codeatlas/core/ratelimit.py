"""Distributed rate limiting (1-A): Redis counters, the in-memory fallback, SlowAPI routes.

Two tools, one rule: counts live in Redis, so every worker and every host sees the same
numbers; without Redis (unreachable, not configured, or ``DISABLE_RATE_LIMITER=true``) they
live in this process's memory, with a warning in the log. Never silently unlimited.

* :func:`enforce_redis_rate_limit` / :class:`RateLimits` count arbitrary keys (failed logins
  per account and per IP) in one round trip: a MULTI pipeline of ``INCR`` + ``EXPIRE … NX``
  (+ ``TTL`` for ``Retry-After``).
* :data:`limiter` is SlowAPI's ``Limiter`` that routes decorate with ``@limiter.limit(...)``,
  keyed by :func:`client_ip`. Each app evaluates those limits with its own ``Limiter``
  (``app.state.limiter``), built from that app's settings: Redis storage under the app's key
  prefix, or memory.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from limits.aio.storage import MemoryStorage
from redis.exceptions import RedisError
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded

from codeatlas.core.redis_client import key as redis_key
from codeatlas.errors import RateLimited, error_response
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

# What a Redis that is down or unreachable raises (redis-py wraps socket errors in these).
REDIS_DOWN = (RedisError, OSError)


@dataclass(frozen=True, slots=True)
class Rule:
    """At most `limit` hits on `key` per fixed window of `window` seconds."""

    key: str
    limit: int
    window: int


def _too_many(retry_after: int) -> RateLimited:
    retry_after = max(1, retry_after)
    return RateLimited(
        "Too many attempts; try again later",
        headers={"Retry-After": str(retry_after)},
        details={"retry_after": retry_after},
    )


async def redis_hit(redis: aioredis.Redis, rules: Sequence[Rule]) -> list[tuple[int, int]]:
    """Count one hit on every rule's key; (count, seconds left) each. One round trip.

    MULTI/EXEC makes the three commands of a key atomic; ``EXPIRE … NX`` only sets the
    window when the key has none, so later hits never extend it (fixed window).
    """
    async with redis.pipeline(transaction=True) as pipe:
        for rule in rules:
            pipe.incr(rule.key)
            pipe.expire(rule.key, rule.window, nx=True)
            pipe.ttl(rule.key)
        replies = await pipe.execute()
    out = []
    for i, r in enumerate(rules):
        count, ttl = int(replies[3 * i]), int(replies[3 * i + 2])
        out.append((count, ttl if ttl > 0 else r.window))
    return out


async def enforce_redis_rate_limit(redis: aioredis.Redis, key: str, limit: int, window: int) -> int:
    """Count a hit on `key`; raise 429 RATE_LIMITED with Retry-After past `limit` per window.

    Returns the count. Redis errors propagate: :class:`RateLimits` turns them into the
    in-memory fallback.
    """
    [(count, ttl)] = await redis_hit(redis, [Rule(key, limit, window)])
    if count > limit:
        raise _too_many(ttl)
    return count


class InMemoryBucket:
    """The per-process fallback: fixed windows in `limits`' async memory storage."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()

    async def hit(self, rules: Sequence[Rule]) -> list[tuple[int, int]]:
        out = []
        for rule in rules:
            count = await self.storage.incr(rule.key, rule.window)
            left = await self.storage.get_expiry(rule.key) - time.time()
            out.append((count, math.ceil(left)))
        return out

    async def undo(self, rules: Sequence[Rule]) -> None:
        for rule in rules:
            await self.storage.decr(rule.key)


class RateLimits:
    """The app's counters: Redis when it answers, else the in-memory bucket (logged).

    After a Redis failure, Redis is left alone for `retry_seconds`, so a dead Redis does not
    add a connection timeout to every request.
    """

    def __init__(
        self, redis: aioredis.Redis | None, *, disabled: bool = False, retry_seconds: float = 5.0
    ) -> None:
        self.redis = None if disabled else redis
        self.memory = InMemoryBucket()
        self.retry_seconds = retry_seconds
        self._redis_down_until = 0.0
        self.degraded = self.redis is None

    def _redis(self) -> aioredis.Redis | None:
        if self.redis is None or time.monotonic() < self._redis_down_until:
            return None
        return self.redis

    def _mark_down(self, exc: BaseException) -> None:
        self._redis_down_until = time.monotonic() + self.retry_seconds
        if not self.degraded:
            logger.warning(
                "Redis unreachable for rate limiting (%s: %s): counting in this process's "
                "memory until it answers again",
                type(exc).__name__,
                exc,
            )
        self.degraded = True

    def _mark_up(self) -> None:
        if self.degraded and self.redis is not None:
            logger.info("Redis answers again: rate limits are shared across processes")
        self.degraded = False

    async def hit(self, *rules: Rule) -> list[tuple[int, int]]:
        client = self._redis()
        if client is not None:
            try:
                counts = await redis_hit(client, rules)
            except REDIS_DOWN as exc:
                self._mark_down(exc)
            else:
                self._mark_up()
                return counts
        return await self.memory.hit(rules)

    async def enforce(self, *rules: Rule) -> None:
        """Count a hit on each rule; 429 with the longest Retry-After if any is over."""
        counts = await self.hit(*rules)
        over = [ttl for rule, (count, ttl) in zip(rules, counts, strict=True) if count > rule.limit]
        if over:
            raise _too_many(max(over))

    async def peek(self, *rules: Rule) -> list[tuple[int, int]]:
        """(count, seconds left) of each rule without counting a hit; one round trip."""
        client = self._redis()
        if client is not None:
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for r in rules:
                        pipe.get(r.key)
                        pipe.ttl(r.key)
                    replies = await pipe.execute()
            except REDIS_DOWN as exc:
                self._mark_down(exc)
            else:
                self._mark_up()
                return [
                    (int(replies[2 * i] or 0), max(int(replies[2 * i + 1]), 0) or r.window)
                    for i, r in enumerate(rules)
                ]
        out = []
        for r in rules:
            count = await self.memory.storage.get(r.key)
            left = await self.memory.storage.get_expiry(r.key) - time.time()
            out.append((int(count), math.ceil(left) if left > 0 else r.window))
        return out

    async def undo(self, *rules: Rule) -> None:
        """Take back one hit per rule (a login that turned out not to be a failure)."""
        client = self._redis()
        if client is not None:
            try:
                async with client.pipeline(transaction=True) as pipe:
                    for rule in rules:
                        pipe.decr(rule.key)
                        # a key that expired in between must not live on without a TTL
                        pipe.expire(rule.key, rule.window, nx=True)
                    await pipe.execute()
                return
            except REDIS_DOWN as exc:
                self._mark_down(exc)
        await self.memory.undo(rules)

    async def clear(self, *rules: Rule) -> None:
        client = self._redis()
        if client is not None:
            try:
                await client.delete(*(r.key for r in rules))
                return
            except REDIS_DOWN as exc:
                self._mark_down(exc)
        for rule in rules:
            await self.memory.storage.clear(rule.key)


def rule(settings: Settings, limit: int, window: int, *parts: object) -> Rule:
    """A rule whose key is namespaced under REDIS_KEY_PREFIX (per test in the test suite)."""
    return Rule(redis_key(settings, "ratelimit", *parts), limit, window)


def get_rate_limits(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.rate_limits
    return limits


RateLimitsDep = Annotated[RateLimits, Depends(get_rate_limits)]


# -- client identity ---------------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(request: Request) -> str:
    """The client's address: the TCP peer, or X-Forwarded-For when the peer is a trusted proxy.

    X-Forwarded-For is read from the right: each trusted proxy appended the address it saw,
    so the first untrusted address from the right is the client; anything further left was
    written by the client and could be forged.
    """
    peer = request.client.host if request.client else "unknown"
    settings: Settings = request.app.state.settings
    networks = _networks(tuple(settings.trusted_proxies))
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
    for hop in reversed([h for h in hops if h]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a proxy we trust wrote garbage: fall back to what we know
        if not _trusted(hop, networks):
            return hop
    return peer


# -- SlowAPI -----------------------------------------------------------------------------------

_current_settings: contextvars.ContextVar[Settings] = contextvars.ContextVar("ratelimit_settings")


def setting_limit(field: str) -> Callable[[], str]:
    """A limit string read from the serving app's settings: ``setting_limit("rate_limit_login")``.

    Lets `@limiter.limit(...)` at import time use values each app (and each test) chooses.
    """

    def provider() -> str:
        return str(getattr(_current_settings.get(), field))

    provider.__name__ = f"setting_limit_{field}"
    return provider


class RouteLimiter(Limiter):
    """The module-level limiter routes decorate; each app's own Limiter evaluates the limits.

    SlowAPI binds one storage per Limiter at construction, but storage, key prefix and limit
    values are per app here (per test in the suite). The decorators record their limits on
    this object; checks are delegated to ``request.app.state.limiter``, which shares those
    registrations (SlowAPI keeps them in private dicts, hence the attribute copy in
    :meth:`for_app`, covered by tests/core/test_ratelimit.py).

    SlowAPI checks synchronously (sync redis-py inside the async endpoint): one local round
    trip, ~0.05 ms p95 (benchmarks/rate_limit.py), bounded by REDIS_TIMEOUT. No
    SlowAPIMiddleware: there is no global default limit, and it would add that round trip to
    every request.
    """

    def for_app(self, settings: Settings) -> Limiter:
        if settings.redis_url and not settings.disable_rate_limiter:
            uri = settings.redis_url
            options: dict[str, Any] = {
                "key_prefix": settings.redis_key_prefix + "slowapi",
                "socket_timeout": settings.redis_timeout,
                "socket_connect_timeout": settings.redis_timeout,
            }
        else:
            uri, options = "memory://", {}
        app_limiter = Limiter(
            key_func=client_ip,
            storage_uri=uri,
            storage_options=options,
            strategy="fixed-window",
            # storage errors switch to memory storage, logged by the "slowapi" logger
            in_memory_fallback_enabled=True,
        )
        app_limiter._route_limits = self._route_limits
        app_limiter._dynamic_route_limits = self._dynamic_route_limits
        app_limiter._exempt_routes = self._exempt_routes
        marked = "_Limiter__marked_for_limiting"
        setattr(app_limiter, marked, getattr(self, marked))
        return app_limiter

    def _check_request_limit(
        self,
        request: Request,
        endpoint_func: Callable[..., Any] | None,
        in_middleware: bool = True,
    ) -> None:
        state = request.app.state
        if getattr(state, "limiter", None) is None:
            state.limiter = self.for_app(state.settings)
        token = _current_settings.set(state.settings)
        try:
            state.limiter._check_request_limit(request, endpoint_func, in_middleware)
        finally:
            _current_settings.reset(token)


limiter = RouteLimiter(key_func=client_ip, storage_uri="memory://")


async def _rate_limit_exceeded(request: Request, exc: Exception) -> JSONResponse:
    """SlowAPI's 429 in the error envelope, with Retry-After."""
    assert isinstance(exc, RateLimitExceeded)
    retry_after = 60
    if exc.limit is not None:
        retry_after = int(exc.limit.limit.get_expiry())
        current = getattr(request.state, "view_rate_limit", None)
        app_limiter = getattr(request.app.state, "limiter", None)
        if current is not None and app_limiter is not None:
            try:
                stats = app_limiter.limiter.get_window_stats(current[0], *current[1])
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            except REDIS_DOWN:
                pass  # the window length is a safe upper bound
    return error_response(
        429,
        "RATE_LIMITED",
        "Too many requests; try again later",
        details={"retry_after": retry_after, "limit": str(exc.detail)},
        headers={"Retry-After": str(retry_after)},
    )


def install_rate_limiting(app: FastAPI) -> None:
    """Called by create_app: SlowAPI's 429 goes through the error envelope."""
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded)


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    settings: Settings = app.state.settings
    redis: aioredis.Redis | None = getattr(app.state, "redis", None)
    app.state.rate_limits = RateLimits(
        redis,
        disabled=settings.disable_rate_limiter,
        retry_seconds=settings.rate_limit_redis_retry_seconds,
    )
    app_limiter = limiter.for_app(settings)
    app.state.limiter = app_limiter
    if settings.disable_rate_limiter:
        logger.warning("DISABLE_RATE_LIMITER=true: rate limits are counted per process (in memory)")
    elif redis is None:
        logger.warning("No Redis: rate limits are counted per process (in memory)")

    async def close_storage() -> None:
        # the sync redis-py client of SlowAPI's storage: close its pooled sockets
        storage = getattr(app_limiter, "_storage", None)
        client = getattr(storage, "storage", None)
        if client is not None and hasattr(client, "close"):
            await asyncio.to_thread(client.close)

    stack.push_async_callback(close_storage)
