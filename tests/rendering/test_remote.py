"""The API with RENDER_ENDPOINT set: real render-svc, circuit breaker, fallback, readiness.

Every remote here is a real HTTP server on loopback: the `codeatlas render-svc` command as a
subprocess, a switchable uvicorn server in a thread, or a TCP server that hangs up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from codeatlas.rendering.breaker import CircuitState
from codeatlas.rendering.service import RenderingService
from tests.conftest import free_port
from tests.rendering.servers import (
    DroppingServer,
    Upstream,
    start_render_svc,
    stop,
    wait_ready,
)

URL = "/api/v1/rendering/markdown"
PYTHON_DOC = "```python\ndef greet(name: str) -> str:\n    return f'hi {name}'\n```\n"

pytestmark = pytest.mark.slow


def doc(i: int) -> str:
    # A different document per request: a cache hit would never reach the remote.
    return f"Request {i}\n\n{PYTHON_DOC}"


def assert_python_highlighted(html: str) -> None:
    assert '<pre class="highlight"><code class="language-python">' in html
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">greet</span>' in html


def breaker_of(app: Any) -> Any:
    service: RenderingService = app.state.rendering
    assert service.remote is not None
    return service.remote.breaker


async def render_check(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/health/ready")
    body = r.json()
    # Other components' checks may fail in a test app (e.g. no job worker running); only the
    # render check matters here, and a failing render-svc must never fail it.
    checks = body["checks"] if r.status_code == 200 else body["details"]["checks"]
    check: dict[str, Any] = checks["render"]
    assert check["status"] == "ready"
    if r.status_code != 200:
        assert "render" not in body["details"]["failed"]
    return dict(check["detail"])


async def test_dod_python_block_through_a_real_render_svc_process(
    render_svc: str, api_client: Any
) -> None:
    direct = httpx.post(f"{render_svc}/render/markdown", json={"markdown": PYTHON_DOC})
    assert direct.status_code == 200
    assert_python_highlighted(direct.json()["html"])
    assert httpx.get(f"{render_svc}/health/live").json() == {"status": "alive"}

    async with api_client(render_endpoint=render_svc) as (app, client):
        r = await client.post(URL, json={"markdown": PYTHON_DOC})
        assert r.status_code == 200, r.text
        assert r.headers["x-renderer"] == "remote"
        assert r.headers["x-render-cache"] == "miss"
        assert_python_highlighted(r.json()["html"])
        assert r.json() == direct.json()
        assert app.state.rendering.remote.attempts == 1

        hit = await client.post(URL, json={"markdown": PYTHON_DOC})
        assert hit.headers["x-render-cache"] == "hit" and hit.json() == r.json()
        assert app.state.rendering.remote.attempts == 1

        detail = await render_check(client)
        assert detail == {"breaker": "closed", "consecutive_failures": 0, "remote": "ready"}

        too_big = await client.post(URL, json={"markdown": "a" * 200_001})
        assert too_big.status_code == 413
        assert app.state.rendering.remote.attempts == 1  # refused before forwarding


async def test_render_svc_with_workers_serves_concurrent_requests() -> None:
    port = free_port()
    proc = start_render_svc(port, "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            replies = await asyncio.gather(
                *(client.post("/render/markdown", json={"markdown": doc(i)}) for i in range(20))
            )
        for i, reply in enumerate(replies):
            assert reply.status_code == 200
            assert f"Request {i}" in reply.json()["html"]
    finally:
        stop(proc)


async def test_breaker_opens_after_three_500s_falls_back_and_closes_after_cooldown(
    upstream: Upstream, api_client: Any
) -> None:
    settings = {"render_endpoint": upstream.url, "render_breaker_reset": 1.0}
    async with api_client(**settings) as (app, client):
        breaker = breaker_of(app)
        r = await client.post(URL, json={"markdown": doc(0)}, headers={"X-Request-ID": "rid-0001"})
        assert r.headers["x-renderer"] == "remote"
        assert upstream.state.calls == 1
        assert upstream.state.request_ids == ["rid-0001"]  # the correlation id travels along

        upstream.state.mode = "error"
        for i in range(1, 4):
            r = await client.post(URL, json={"markdown": doc(i)})
            assert r.status_code == 200
            assert r.headers["x-renderer"] == "local-fallback"
            assert_python_highlighted(r.json()["html"])
        assert upstream.state.calls == 4  # 500 is not retried: one call per request
        assert breaker.state is CircuitState.OPEN
        detail = await render_check(client)
        assert detail["breaker"] == "open" and detail["remote"] == "HTTP 503"

        # Open: served locally without calling render-svc at all.
        r = await client.post(URL, json={"markdown": doc(4)})
        assert r.headers["x-renderer"] == "local-fallback"
        assert upstream.state.calls == 4

        # render-svc recovers; after the cool-down one trial request closes the breaker.
        upstream.state.mode = "ok"
        await asyncio.sleep(1.1)
        assert breaker.state is CircuitState.HALF_OPEN
        r = await client.post(URL, json={"markdown": doc(5)})
        assert r.headers["x-renderer"] == "remote"
        assert upstream.state.calls == 5
        assert breaker.state is CircuitState.CLOSED
        assert (await render_check(client))["breaker"] == "closed"
        r = await client.post(URL, json={"markdown": doc(6)})
        assert r.headers["x-renderer"] == "remote"


async def test_failed_trial_reopens_the_breaker(upstream: Upstream, api_client: Any) -> None:
    upstream.state.mode = "error"
    settings = {"render_endpoint": upstream.url, "render_breaker_reset": 0.5}
    async with api_client(**settings) as (app, client):
        for i in range(3):
            await client.post(URL, json={"markdown": doc(i)})
        assert breaker_of(app).state is CircuitState.OPEN
        await asyncio.sleep(0.6)
        r = await client.post(URL, json={"markdown": doc(3)})
        assert r.headers["x-renderer"] == "local-fallback"
        assert upstream.state.calls == 4  # the trial went out ...
        assert breaker_of(app).state is CircuitState.OPEN  # ... failed, and re-opened it
        r = await client.post(URL, json={"markdown": doc(4)})
        assert upstream.state.calls == 4


async def test_hanging_remote_times_out_and_counts_as_failure(
    upstream: Upstream, api_client: Any
) -> None:
    upstream.state.mode = "hang"
    upstream.state.hang_seconds = 10.0
    settings = {"render_endpoint": upstream.url, "render_read_timeout": 0.3}
    async with api_client(**settings) as (app, client):
        for i in range(3):
            started = time.monotonic()
            r = await client.post(URL, json={"markdown": doc(i)})
            elapsed = time.monotonic() - started
            assert r.status_code == 200
            assert r.headers["x-renderer"] == "local-fallback"
            assert_python_highlighted(r.json()["html"])
            assert elapsed < 5.0, "the request waited for the hanging remote"
        assert upstream.state.calls == 3  # a timeout is not retried
        assert breaker_of(app).state is CircuitState.OPEN


async def test_connection_errors_are_retried_but_count_once(
    dropping_server: DroppingServer, api_client: Any
) -> None:
    settings = {"render_endpoint": dropping_server.url, "render_connect_retries": 1}
    async with api_client(**settings) as (app, client):
        breaker = breaker_of(app)
        r = await client.post(URL, json={"markdown": doc(0)})
        assert r.headers["x-renderer"] == "local-fallback"
        assert dropping_server.connections == 2  # first attempt + one retry
        assert breaker.failure_count == 1  # ... but one failed call
        assert breaker.state is CircuitState.CLOSED

        for i in (1, 2):
            await client.post(URL, json={"markdown": doc(i)})
        assert dropping_server.connections == 6
        assert breaker.state is CircuitState.OPEN
        await client.post(URL, json={"markdown": doc(3)})
        assert dropping_server.connections == 6


async def test_unreachable_render_svc_falls_back_and_readiness_says_so(api_client: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with api_client(render_endpoint=dead) as (_, client):
        r = await client.post(URL, json={"markdown": PYTHON_DOC})
        assert r.status_code == 200 and r.headers["x-renderer"] == "local-fallback"
        detail = await render_check(client)
        assert detail["remote"] == "unreachable (ConnectError)"
        assert detail["consecutive_failures"] == 1


async def test_remote_4xx_falls_back_without_tripping_the_breaker(
    upstream: Upstream, api_client: Any
) -> None:
    upstream.state.mode = "reject"
    async with api_client(render_endpoint=upstream.url) as (app, client):
        for i in range(5):
            r = await client.post(URL, json={"markdown": doc(i)})
            assert r.headers["x-renderer"] == "local-fallback"
        assert upstream.state.calls == 5
        assert breaker_of(app).state is CircuitState.CLOSED
        assert breaker_of(app).failure_count == 0


async def test_pool_timeout_renders_overflow_locally_without_tripping_the_breaker(
    upstream: Upstream, api_client: Any
) -> None:
    upstream.state.mode = "hang"
    upstream.state.hang_seconds = 1.5  # slow, but inside the read timeout: it answers
    settings = {
        "render_endpoint": upstream.url,
        "render_max_connections": 1,
        "render_pool_timeout": 0.2,
    }
    async with api_client(**settings) as (app, client):
        slow = asyncio.create_task(client.post(URL, json={"markdown": doc(0)}))
        await asyncio.sleep(0.3)  # the one connection is now busy
        overflow = await asyncio.gather(
            *(client.post(URL, json={"markdown": doc(i)}) for i in range(1, 6))
        )
        for r in overflow:
            assert r.status_code == 200
            assert r.headers["x-renderer"] == "local-fallback"
            assert_python_highlighted(r.json()["html"])
        assert (await slow).headers["x-renderer"] == "remote"
        assert upstream.state.calls == 1  # the overflow never reached render-svc
        assert breaker_of(app).state is CircuitState.CLOSED
        assert breaker_of(app).failure_count == 0
