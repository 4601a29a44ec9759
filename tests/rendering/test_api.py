"""POST /api/v1/rendering/markdown and the stylesheet with the in-process renderer.

The local path (RENDER_ENDPOINT unset, the roll-back), the Redis cache, the 413 envelope, and
render-svc's own app in-process; the remote paths are in test_remote.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from codeatlas.core.redis_client import key as redis_key
from codeatlas.rendering.breaker import CircuitState
from codeatlas.rendering.cache import MemoryRenderCache, cache_key
from codeatlas.rendering.core import RenderOptions
from codeatlas.rendering.service import RedisRenderCache, RenderingService, check_input_size
from codeatlas.rendering.svc import create_svc_app
from codeatlas.settings import Settings
from tests.conftest import free_port

URL = "/api/v1/rendering/markdown"
PYTHON_DOC = "# Example\n\n```python\ndef greet(name: str) -> str:\n    return f'hi {name}'\n```\n"


def assert_python_highlighted(html: str) -> None:
    assert '<pre class="highlight"><code class="language-python">' in html
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">greet</span>' in html


async def test_python_block_is_highlighted_locally_and_cached_in_redis(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    r = await client.post(URL, json={"markdown": PYTHON_DOC})
    assert r.status_code == 200, r.text
    body = r.json()
    assert_python_highlighted(body["html"])
    assert body["code_languages"] == ["python"]
    assert body["has_math"] is False and body["has_mermaid"] is False
    assert r.headers["x-renderer"] == "local"
    assert r.headers["x-render-cache"] == "miss"

    service: RenderingService = app.state.rendering
    assert isinstance(service.cache, RedisRenderCache)
    stored = redis_key(settings, cache_key(PYTHON_DOC, RenderOptions()))
    assert stored.startswith(settings.redis_key_prefix)
    assert await app.state.redis.exists(stored) == 1
    ttl = await app.state.redis.ttl(stored)
    assert 0 < ttl <= settings.render_cache_ttl

    again = await client.post(URL, json={"markdown": PYTHON_DOC})
    assert again.status_code == 200
    assert again.headers["x-render-cache"] == "hit"
    assert again.headers["x-renderer"] == "cache"
    assert again.json() == body


async def test_cache_hit_is_served_from_redis_not_the_renderer(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    # Plant an entry in Redis: the response must be that entry, proving where hits come from.
    doc = "planted *entry*"
    planted = (
        '{"html":"<p>from redis</p>","code_languages":[],"has_math":false,"has_mermaid":false}'
    )
    await app.state.redis.set(redis_key(settings, cache_key(doc, RenderOptions())), planted)
    r = await client.post(URL, json={"markdown": doc})
    assert r.headers["x-render-cache"] == "hit"
    assert r.json()["html"] == "<p>from redis</p>"


async def test_options_are_part_of_the_cache_key(client: httpx.AsyncClient) -> None:
    plain = await client.post(URL, json={"markdown": PYTHON_DOC, "options": {"highlight": False}})
    assert plain.status_code == 200
    assert plain.headers["x-render-cache"] == "miss"
    assert "highlight" not in plain.json()["html"]
    assert '<code class="language-python">' in plain.json()["html"]
    bad = await client.post(URL, json={"markdown": "x", "options": {"scripts": True}})
    assert bad.status_code == 422 and bad.json()["error_code"] == "VALIDATION_ERROR"


async def test_without_redis_the_cache_is_in_process(api_client: Any) -> None:
    async with api_client(redis_url=None) as (app, client):
        assert app.state.redis is None
        assert isinstance(app.state.rendering.cache, MemoryRenderCache)
        first = await client.post(URL, json={"markdown": PYTHON_DOC})
        second = await client.post(URL, json={"markdown": PYTHON_DOC})
        assert first.headers["x-render-cache"] == "miss"
        assert second.headers["x-render-cache"] == "hit"
        assert first.json() == second.json()


async def test_cache_ttl_zero_disables_the_cache(api_client: Any) -> None:
    async with api_client(render_cache_ttl=0) as (app, client):
        assert app.state.rendering.cache is None
        for _ in range(2):
            r = await client.post(URL, json={"markdown": PYTHON_DOC})
            assert r.headers["x-render-cache"] == "miss"
            assert r.headers["x-renderer"] == "local"


async def test_dead_redis_degrades_to_rendering_and_its_breaker_opens(api_client: Any) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with api_client(redis_url=dead, redis_timeout=0.2) as (app, client):
        cache = app.state.rendering.cache
        assert isinstance(cache, RedisRenderCache)
        for i in range(3):
            r = await client.post(URL, json={"markdown": f"{PYTHON_DOC}\n{i}"})
            assert r.status_code == 200, r.text
            assert r.headers["x-render-cache"] == "miss"
            assert_python_highlighted(r.json()["html"])
        # get + set per request: the cache breaker is open, so Redis is no longer waited on.
        assert cache.breaker.state is CircuitState.OPEN
        r = await client.post(URL, json={"markdown": PYTHON_DOC})
        assert r.status_code == 200 and r.headers["x-renderer"] == "local"


async def test_oversized_markdown_is_413_with_the_envelope(api_client: Any) -> None:
    async with api_client(render_max_input_bytes=1_000) as (_, client):
        at_limit = await client.post(URL, json={"markdown": "a" * 1_000})
        assert at_limit.status_code == 200
        r = await client.post(URL, json={"markdown": "é" * 501})  # 501 chars, 1002 bytes
        assert r.status_code == 413
        body = r.json()
        assert body["error_code"] == "PAYLOAD_TOO_LARGE"
        assert body["details"] == {"size": 1002, "limit": 1_000}
        assert body["request_id"] == r.headers["x-request-id"]
        assert r.headers["x-error-code"] == "PAYLOAD_TOO_LARGE"


async def test_oversized_body_is_refused_before_parsing(api_client: Any) -> None:
    async with api_client(render_max_input_bytes=1_000) as (_, client):
        # Declared Content-Length over the cap.
        huge = b'{"markdown": "' + b"a" * 100_000 + b'"}'
        r = await client.post(URL, content=huge, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error_code"] == "PAYLOAD_TOO_LARGE"

        # Chunked (no Content-Length): counted while it streams.
        async def chunks() -> Any:
            yield b'{"markdown": "'
            for _ in range(20):
                yield b"a" * 5_000
            yield b'"}'

        r = await client.post(URL, content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error_code"] == "PAYLOAD_TOO_LARGE"


def test_check_input_size_counts_utf8_bytes() -> None:
    check_input_size("a" * 100, 100)
    check_input_size("é" * 50, 100)
    with pytest.raises(Exception, match="101 bytes"):
        check_input_size("a" * 101, 100)
    with pytest.raises(Exception, match="102 bytes"):
        check_input_size("é" * 51, 100)


async def test_slow_render_does_not_block_the_event_loop(api_client: Any) -> None:
    # ~1.5-2 s of CPU (30k table rows), with the complexity limits of issue 11 raised (they
    # would refuse it with 422 by default). A ticker measures the longest stall of the event loop
    # while it renders: on the loop, the stall would be the whole render; on the render pool
    # it is a few GIL switch intervals. Compared as a ratio, so a slow machine scales both.
    dense = "|a|b|\n|-|-|\n" + "|x|y|\n" * 30_000
    longest = 0.0
    running = True

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    limits = {
        "render_max_lines": 100_000,
        "render_max_inline_marks": 200_000,
        "render_max_work": 50_000_000,
    }
    async with api_client(**limits) as (_, client):
        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        r = await client.post(URL, json={"markdown": dense})
        elapsed = time.perf_counter() - started
        running = False
        await tick
    assert r.status_code == 200 and r.json()["html"].count("<tr>") == 30_001
    assert longest < elapsed / 3, f"event loop stalled {longest:.3f}s of a {elapsed:.3f}s render"


async def test_stylesheet(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/rendering/stylesheet.css")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/css")
    assert ".highlight .k " in r.text and ".highlight .nf " in r.text
    assert "public" in r.headers["cache-control"]
    dark = await client.get("/api/v1/rendering/stylesheet.css", params={"style": "monokai"})
    assert dark.status_code == 200 and dark.text != r.text
    unknown = await client.get("/api/v1/rendering/stylesheet.css", params={"style": "nope"})
    assert unknown.status_code == 400 and unknown.json()["error_code"] == "UNKNOWN_STYLE"
    bad = await client.get("/api/v1/rendering/stylesheet.css", params={"style": "../x"})
    assert bad.status_code == 422


async def test_no_render_readiness_check_without_endpoint(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/ready")
    body = r.json()
    checks = body["checks"] if r.status_code == 200 else body["details"]["checks"]
    assert "db" in checks and "render" not in checks


async def test_openapi_documents_the_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    op = spec["paths"]["/api/v1/rendering/markdown"]["post"]
    assert op["operationId"] == "rendering-markdown"
    assert "413" in op["responses"]
    assert "X-Renderer" in op["responses"]["200"]["headers"]


def test_blank_render_endpoint_means_local() -> None:
    assert Settings(render_endpoint="  ").render_endpoint is None
    assert Settings(render_endpoint="http://svc:8080/").render_endpoint == "http://svc:8080"


# --------------------------------------------------------------------------- render-svc app


@pytest.fixture
async def svc_client(tmp_path: Any) -> Any:
    async def make(**overrides: Any) -> tuple[FastAPI, httpx.AsyncClient]:
        app = create_svc_app(Settings(data_dir=tmp_path, **overrides))
        return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s")

    return make


async def test_render_svc_app_renders_limits_and_probes(
    svc_client: Callable[..., Any],
) -> None:
    app, client = await svc_client(render_max_input_bytes=1_000)
    async with app.router.lifespan_context(app), client:
        r = await client.post("/render/markdown", json={"markdown": PYTHON_DOC})
        assert r.status_code == 200
        assert_python_highlighted(r.json()["html"])
        assert "x-request-id" in r.headers

        too_big = await client.post("/render/markdown", json={"markdown": "a" * 1_001})
        assert too_big.status_code == 413
        assert too_big.json()["error_code"] == "PAYLOAD_TOO_LARGE"
        invalid = await client.post("/render/markdown", json={"text": "x"})
        assert invalid.status_code == 422 and invalid.json()["error_code"] == "VALIDATION_ERROR"

        assert (await client.get("/health/live")).json() == {"status": "alive"}
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["renderer"]["status"] == "ready"


async def test_render_svc_refuses_over_complex_markdown(svc_client: Callable[..., Any]) -> None:
    # the API checks first; render-svc applies the same limits to whoever calls it directly
    app, client = await svc_client(render_max_work=1_000)
    async with app.router.lifespan_context(app), client:
        r = await client.post("/render/markdown", json={"markdown": "[a" * 200})
        assert r.status_code == 422
        assert r.json()["error_code"] == "MARKDOWN_TOO_COMPLEX"
        assert r.json()["details"]["work"] > 1_000
        ok = await client.post("/render/markdown", json={"markdown": "*plain*"})
        assert ok.status_code == 200 and "<em>plain</em>" in ok.json()["html"]
