"""Fixtures of the WebSocket tests: the app served by a real uvicorn in this event loop (so
its tasks are countable), users with access tokens, and a `websockets` client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from codeatlas.auth.tokens import create_access_token
from codeatlas.db.session import Database
from codeatlas.models import User
from codeatlas.settings import Settings
from codeatlas.ws.hub import EventHub
from tests.conftest import free_port
from tests.factories import create_user


@dataclass
class Live:
    app: FastAPI
    port: int
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings(self) -> Settings:
        return self.app.state.settings  # type: ignore[no-any-return]

    @property
    def hub(self) -> EventHub:
        hub = self.app.state.ws_hub
        assert hub is not None
        return hub  # type: ignore[no-any-return]

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 60)


LiveFactory = Callable[..., Awaitable[Live]]


@pytest.fixture
async def live_server(app_factory: Callable[..., FastAPI]) -> AsyncIterator[LiveFactory]:
    """Starts the app (settings overrides as keywords) under uvicorn on a free port."""
    started: list[Live] = []

    async def start(**overrides: Any) -> Live:
        app = app_factory(**overrides)
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        deadline = time.monotonic() + 60
        while not server.started:
            assert not task.done(), "uvicorn exited during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.02)
        live = Live(app, port, server, task)
        started.append(live)
        return live

    yield start
    for live in started:
        await live.stop()


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    from codeatlas.core.redis_client import create_redis

    client = create_redis(settings)
    assert client is not None
    try:
        yield client
    finally:
        await client.aclose()


async def user_and_token(db: Database, settings: Settings) -> tuple[User, str]:
    user = await create_user(db)
    return user, create_access_token(user.id, settings, version=user.token_version)


async def open_ws(
    url: str,
    token: str,
    *,
    last_event_id: str | None = None,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect, authenticate, and return the socket with its `ready` message."""
    ws = await connect(
        url, additional_headers=headers, proxy=None, open_timeout=30, compression=None, **options
    )
    auth: dict[str, Any] = {"type": "auth", "token": token}
    if last_event_id is not None:
        auth["last_event_id"] = last_event_id
    await ws.send(json.dumps(auth))
    ready = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert ready["type"] == "ready", ready
    return ws, ready


async def recv_json(ws: ClientConnection, timeout: float = 30) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def recv_type(ws: ClientConnection, kind: str, timeout: float = 30) -> dict[str, Any]:
    """The next message of a type, skipping pings and others."""
    deadline = time.monotonic() + timeout
    while True:
        message = await recv_json(ws, max(0.1, deadline - time.monotonic()))
        if message["type"] == kind:
            return message


async def close_code(ws: ClientConnection, timeout: float = 30) -> int | None:
    """Read until the server closes; the code it sent."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("the server did not close the socket")


async def wait_until(predicate: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        await asyncio.sleep(0.02)
