"""Fixtures of the rendering tests: real servers standing in for render-svc (see servers.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import free_port
from tests.factories import auth_headers, create_user
from tests.rendering.servers import (
    DroppingServer,
    Upstream,
    UpstreamState,
    run_dropping_server,
    run_uvicorn_in_thread,
    start_render_svc,
    stop,
    upstream_app,
    wait_ready,
)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = UpstreamState()
    with run_uvicorn_in_thread(upstream_app(state)) as url:
        yield Upstream(url, state)


@pytest.fixture
def dropping_server() -> Iterator[DroppingServer]:
    with run_dropping_server() as server:
        yield server


@pytest.fixture(scope="module")
def render_svc() -> Iterator[str]:
    port = free_port()
    proc = start_render_svc(port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url
    finally:
        stop(proc)


@pytest.fixture
async def api_client(app_factory: Callable[..., FastAPI]) -> AsyncIterator[Any]:
    """``async with api_client(**settings_overrides) as (app, client)``: the API in-process."""

    @contextlib.asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        app = app_factory(**overrides)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            # issue 11: rendering needs a signed-in user
            client.headers.update(auth_headers(await create_user(app.state.db), app.state.settings))
            yield app, client

    yield make


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The root fixture's client, signed in (issue 11: rendering needs a user)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        c.headers.update(auth_headers(await create_user(app.state.db), app.state.settings))
        yield c
