"""Liveness and readiness: 503 naming the failed component."""

from __future__ import annotations

import httpx

from tests.conftest import free_port


async def _ready(app) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        assert (await c.get("/health/live")).status_code == 200
        return await c.get("/health/ready")


async def test_ready_when_database_answers(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/ready")
    assert r.status_code == 200
    assert r.json()["checks"]["db"]["status"] == "ready"


async def test_ready_is_503_naming_db_when_database_unreachable(app_factory) -> None:  # type: ignore[no-untyped-def]
    dead = f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/nothing"
    app = app_factory(database_url=dead, health_check_timeout=3.0)
    r = await _ready(app)
    assert r.status_code == 503
    body = r.json()
    assert body["error_code"] == "NOT_READY"
    assert body["details"]["failed"] == ["db"]
    assert "db" in body["message"]
    assert r.headers["x-error-code"] == "NOT_READY"


async def test_health_min_components_limits_checks(app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory(health_min_components=["db"])

    async def broken() -> None:
        raise ConnectionError("down")

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        app.state.health.register("other", broken)
        r = await c.get("/health/ready")
        assert r.status_code == 200 and list(r.json()["checks"]) == ["db"]
        app.state.health.only = set()
        r = await c.get("/health/ready")
        assert r.status_code == 503 and r.json()["details"]["failed"] == ["other"]


async def test_slow_check_times_out(app_factory) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    app = app_factory(health_check_timeout=0.2)

    async def slow() -> None:
        await asyncio.sleep(5)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        app.state.health.register("slow", slow)
        r = await c.get("/health/ready")
    assert r.status_code == 503
    assert r.json()["details"]["checks"]["slow"]["reason"] == "timeout"


async def test_public_body_names_failing_components_only_details_go_to_the_log(
    app_factory,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    import logging

    app = app_factory()

    async def broken() -> None:
        raise RuntimeError("cannot open /srv/secret/internal/path.sock")

    with caplog.at_level(logging.WARNING, logger="codeatlas.health.registry"):
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            app.state.health.register("broken", broken)
            r = await c.get("/health/ready")
    assert r.status_code == 503
    assert r.json()["details"]["failed"] == ["broken"]
    assert r.json()["details"]["checks"]["broken"] == {
        "status": "error",
        "latency_ms": r.json()["details"]["checks"]["broken"]["latency_ms"],
        "reason": "failed",
    }
    assert "/srv/secret" not in r.text and "RuntimeError" not in r.text
    assert "/srv/secret/internal/path.sock" in caplog.text  # the operator still sees why
