"""2-B: the `llm` readiness component (GET /models, 0.5 s timeout) and SKIP_OPENAI_HEALTH."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.llm.openai_server import OpenAITestServer


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        yield c


async def test_llm_is_a_readiness_component(
    app_factory: Any, llm_server: OpenAITestServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(
        llm_provider="openai", llm_base_url=llm_server.base_url, llm_model="test-model"
    )
    async with running(app) as c:
        r = await c.get("/health/ready")
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["llm"]["detail"] == {"model": "test-model", "models": 1}

        llm_server.models_status = 500
        r = await c.get("/health/ready")
        assert r.status_code == 503 and r.json()["details"]["failed"] == ["llm"]

        llm_server.models_status, llm_server.models_delay = 200, 1.5
        r = await c.get("/health/ready")
        assert r.status_code == 503 and r.json()["details"]["failed"] == ["llm"]
        # The public body says only that it failed; why (a 0.5 s timeout) is in the log.
        assert r.json()["details"]["checks"]["llm"]["reason"] in ("failed", "timeout")
        assert "Timeout" in caplog.text or "timed out" in caplog.text


async def test_skip_openai_health_leaves_llm_out(
    app_factory: Any, llm_server: OpenAITestServer
) -> None:
    llm_server.models_status = 500
    app = app_factory(
        llm_provider="openai", llm_base_url=llm_server.base_url, skip_openai_health=True
    )
    async with running(app) as c:
        r = await c.get("/health/ready")
        assert r.status_code == 200 and "llm" not in r.json()["checks"]


async def test_no_llm_no_component(app_factory: Any) -> None:
    app = app_factory(llm_base_url="", llm_provider="none")
    async with running(app) as c:
        r = await c.get("/health/ready")
        assert r.status_code == 200 and "llm" not in r.json()["checks"]
