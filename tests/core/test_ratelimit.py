"""1-A building blocks against real Redis: the one-round-trip counter, the in-memory fallback,
client identity behind proxies, and SlowAPI routes in the error envelope."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import APIRouter, FastAPI, Request
from redis.asyncio.connection import Connection

from codeatlas.core.ratelimit import (
    RateLimits,
    Rule,
    client_ip,
    enforce_redis_rate_limit,
    limiter,
    setting_limit,
)
from codeatlas.errors import RateLimited
from tests.conftest import free_port


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _key(prefix: str, name: str = "k") -> str:
    return f"{prefix}rl:{name}:{uuid.uuid4().hex[:6]}"


async def test_sixth_hit_is_refused_with_retry_after(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    key = _key(redis_prefix)
    counts = [await enforce_redis_rate_limit(redis, key, 5, 60) for _ in range(5)]
    assert counts == [1, 2, 3, 4, 5]
    with pytest.raises(RateLimited) as info:
        await enforce_redis_rate_limit(redis, key, 5, 60)
    err = info.value
    assert err.status_code == 429 and err.error_code == "RATE_LIMITED"
    assert 0 < int(err.headers["Retry-After"]) <= 60
    assert 0 < await redis.ttl(key) <= 60
    # another key is counted separately
    assert await enforce_redis_rate_limit(redis, _key(redis_prefix), 5, 60) == 1


async def test_window_is_fixed_and_expires(redis: aioredis.Redis, redis_prefix: str) -> None:
    key = _key(redis_prefix)
    await enforce_redis_rate_limit(redis, key, 1, 1)
    with pytest.raises(RateLimited):
        await enforce_redis_rate_limit(redis, key, 1, 1)
    # refused hits do not extend the window (EXPIRE NX): it ends ~1 s after the first hit
    deadline = time.monotonic() + 10
    while await redis.exists(key):
        assert time.monotonic() < deadline, "window never expired"
        await asyncio.sleep(0.05)
    assert await enforce_redis_rate_limit(redis, key, 1, 1) == 1


class CountingConnection(Connection):
    """A real connection that counts how many times it writes to the socket."""

    writes = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).writes += 1
        await super().send_packed_command(command, check_health)


async def test_one_round_trip_per_check(redis_url: str, redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url, connection_class=CountingConnection)
    try:
        await client.ping()  # connect (and its handshake) first
        CountingConnection.writes = 0
        await enforce_redis_rate_limit(client, _key(redis_prefix), 5, 60)
        assert CountingConnection.writes == 1
        CountingConnection.writes = 0
        limits = RateLimits(client)
        await limits.enforce(Rule(_key(redis_prefix), 5, 60), Rule(_key(redis_prefix), 5, 60))
        assert CountingConnection.writes == 1  # two keys, still one round trip
    finally:
        await client.aclose()


async def test_disabled_or_missing_redis_counts_in_memory(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    for limits in (RateLimits(redis, disabled=True), RateLimits(None)):
        rule = Rule(_key(redis_prefix), 2, 60)
        await limits.enforce(rule)
        await limits.enforce(rule)
        with pytest.raises(RateLimited) as info:
            await limits.enforce(rule)
        assert 0 < int(info.value.headers["Retry-After"]) <= 60
        assert not await redis.exists(rule.key)  # nothing went to Redis


async def test_unreachable_redis_falls_back_to_memory_with_a_warning(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    limits = RateLimits(dead, retry_seconds=60)
    rule = Rule(_key(redis_prefix), 3, 60)
    with caplog.at_level(logging.WARNING, logger="codeatlas.core.ratelimit"):
        for _ in range(3):
            await limits.enforce(rule)
        with pytest.raises(RateLimited):
            await limits.enforce(rule)
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not per request
    assert limits.degraded
    await dead.aclose()


async def test_undo_and_clear(redis: aioredis.Redis, redis_prefix: str) -> None:
    limits = RateLimits(redis)
    rule = Rule(_key(redis_prefix), 2, 60)
    await limits.enforce(rule)
    await limits.enforce(rule)
    await limits.undo(rule)
    await limits.enforce(rule)  # the undone hit made room for this one
    with pytest.raises(RateLimited):
        await limits.enforce(rule)
    await limits.clear(rule)
    await limits.enforce(rule)
    assert 0 < await redis.ttl(rule.key) <= 60


# -- client identity -------------------------------------------------------------------------


def _request(app: FastAPI, peer: str, forwarded: list[str] | None = None) -> Request:
    headers = [(b"x-forwarded-for", v.encode()) for v in forwarded or []]
    scope = {"type": "http", "client": (peer, 5000), "headers": headers, "app": app}
    return Request(scope)


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        ([], "203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # nobody trusted: peer
        (["10.0.0.0/8"], "203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # untrusted peer
        (["10.0.0.0/8"], "10.1.2.3", ["198.51.100.1"], "198.51.100.1"),
        # a forged left part is ignored: the proxy appended the real client on the right
        (["10.0.0.0/8"], "10.1.2.3", ["1.1.1.1, 198.51.100.1"], "198.51.100.1"),
        # chained proxies are skipped, also across repeated headers
        (["10.0.0.0/8"], "10.1.2.3", ["198.51.100.1, 10.9.9.9", "10.8.8.8"], "198.51.100.1"),
        (["10.0.0.0/8"], "10.1.2.3", [], "10.1.2.3"),
        (["10.0.0.0/8"], "10.1.2.3", ["not-an-ip"], "10.1.2.3"),
        (["::1"], "::1", ["2001:db8::7"], "2001:db8::7"),
    ],
)
def test_client_ip(
    app_factory: Any, trusted: list[str], peer: str, forwarded: list[str], expected: str
) -> None:
    app = app_factory(trusted_proxies=trusted)
    assert client_ip(_request(app, peer, forwarded)) == expected


def test_trusted_proxies_setting_parses_and_validates(app_factory: Any) -> None:
    from codeatlas.settings import Settings

    assert Settings(trusted_proxies="10.0.0.1, 192.168.0.0/16").trusted_proxies == [
        "10.0.0.1",
        "192.168.0.0/16",
    ]
    with pytest.raises(ValueError, match="not-a-net"):
        Settings(trusted_proxies="not-a-net")


# -- SlowAPI ---------------------------------------------------------------------------------


# Decorated once, at import, like every real route: decorating again would add the limit twice.
limited_router = APIRouter(prefix="/api/v1/_test")


@limited_router.get("/limited")
@limiter.limit("2/minute")
async def limited(request: Request) -> dict[str, str]:
    return {"ok": "yes"}


@limited_router.get("/configured")
@limiter.limit(setting_limit("rate_limit_register"))
async def configured(request: Request) -> dict[str, str]:
    return {"ok": "yes"}


def _limited_app(app_factory: Any, **overrides: Any) -> FastAPI:
    app: FastAPI = app_factory(**overrides)
    app.include_router(limited_router)
    return app


async def _hits(app: FastAPI, path: str, n: int, **kw: Any) -> list[httpx.Response]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        return [await c.get(path, **kw) for _ in range(n)]


async def _slowapi_keys(redis: aioredis.Redis, prefix: str) -> list[bytes]:
    return [k async for k in redis.scan_iter(match=f"{prefix}slowapi*")]


async def test_slowapi_route_limit_in_the_envelope(
    app_factory: Any, redis: aioredis.Redis, settings: Any
) -> None:
    answers = await _hits(_limited_app(app_factory), "/api/v1/_test/limited", 3)
    assert [r.status_code for r in answers] == [200, 200, 429]
    r = answers[-1]
    body = r.json()
    assert body["error_code"] == "RATE_LIMITED" and r.headers["x-error-code"] == "RATE_LIMITED"
    assert body["request_id"] == r.headers["x-request-id"]
    assert 0 < int(r.headers["retry-after"]) <= 60
    # counted in Redis, under this test's key prefix
    assert await _slowapi_keys(redis, settings.redis_key_prefix)


async def test_slowapi_limits_come_from_each_apps_settings(app_factory: Any) -> None:
    app = _limited_app(app_factory, rate_limit_register="1/minute")
    assert [r.status_code for r in await _hits(app, "/api/v1/_test/configured", 2)] == [200, 429]
    app = _limited_app(app_factory, rate_limit_register="3/minute", redis_key_prefix="other:")
    answers = await _hits(app, "/api/v1/_test/configured", 4)
    assert [r.status_code for r in answers] == [200, 200, 200, 429]


async def test_slowapi_keys_by_forwarded_client_only_behind_trusted_proxy(
    app_factory: Any,
) -> None:
    # ASGITransport's peer is 127.0.0.1
    trusted = _limited_app(app_factory, trusted_proxies=["127.0.0.1"])
    async with (
        trusted.router.lifespan_context(trusted),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=trusted), base_url="http://t") as c,
    ):
        for client in ("198.51.100.1", "198.51.100.2"):
            codes = [
                (
                    await c.get("/api/v1/_test/limited", headers={"X-Forwarded-For": client})
                ).status_code
                for _ in range(3)
            ]
            assert codes == [200, 200, 429], client
    untrusted = _limited_app(app_factory, redis_key_prefix=f"x{uuid.uuid4().hex[:6]}:")
    spoofed = [
        (await _hits(untrusted, "/api/v1/_test/limited", 1, headers={"X-Forwarded-For": ip}))[0]
        for ip in ("1.1.1.1", "2.2.2.2", "3.3.3.3")
    ]
    assert [r.status_code for r in spoofed] == [200, 200, 429]


async def test_slowapi_disabled_flag_still_limits_in_memory(
    app_factory: Any, redis: aioredis.Redis, settings: Any
) -> None:
    app = _limited_app(app_factory, disable_rate_limiter=True)
    assert [r.status_code for r in await _hits(app, "/api/v1/_test/limited", 3)] == [200, 200, 429]
    assert not await _slowapi_keys(redis, settings.redis_key_prefix)


async def test_slowapi_unreachable_redis_still_limits(
    app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = _limited_app(app_factory, redis_url=dead, redis_timeout=0.5)
    with caplog.at_level(logging.WARNING):
        answers = await _hits(app, "/api/v1/_test/limited", 3)
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert any("falling back to in-memory" in r.getMessage() for r in caplog.records)
