"""Outages answer 503 with a code and Retry-After, never 500 (issue 10, findings 8 and 9).

Each test runs the API on a PostgreSQL and/or Redis of its own (tests/platform/throwaway.py),
stops it, checks login, a read and an upload, starts it again and checks that everything
answers 2xx again without a restart of the API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request

from codeatlas.app import create_app
from codeatlas.db import migrate
from codeatlas.db.session import Database
from codeatlas.models import ProjectRole
from tests.auth.helpers import login
from tests.code.helpers import make_project, upload
from tests.conftest import build_settings
from tests.factories import DEFAULT_PASSWORD, auth_headers, create_user
from tests.platform.throwaway import throwaway_postgres, throwaway_redis

pytestmark = pytest.mark.slow


async def _until(probe: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not await probe():
        assert time.monotonic() - started < timeout, f"timed out after {timeout}s: {what}"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def _unavailable(r: httpx.Response, code: str) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    body = r.json()
    assert body["error_code"] == code and r.headers["x-error-code"] == code, body
    assert int(r.headers["retry-after"]) >= 1
    assert body["request_id"]


async def _exercise(
    c: httpx.AsyncClient, email: str, project_id: int, headers: Any, n: int
) -> list[httpx.Response]:
    return [
        await login(c, email, DEFAULT_PASSWORD),
        await c.get("/api/v1/projects", headers=headers),
        await c.get(f"/api/v1/projects/{project_id}/files", headers=headers),
        await upload(c, project_id, headers, files=[(f"src/f{n}.py", b"x = %d\n" % n)]),
    ]


async def test_postgresql_down_answers_503_db_unavailable_then_recovers(tmp_path: Path) -> None:
    with throwaway_postgres() as pg, throwaway_redis() as rd:
        settings = build_settings(
            pg.url,
            tmp_path,
            redis_url=rd.url,
            redis_key_prefix="outage:",
            embedded_worker_threads=0,
            knowledge_embed_code=False,
        )
        await asyncio.to_thread(migrate.upgrade, settings)
        db = Database(settings)
        user = await create_user(db, "pg-outage@example.com")
        project_id = await make_project(db, {user: ProjectRole.OWNER})
        await db.dispose()
        headers = auth_headers(user, settings)
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            before = await _exercise(c, user.email, project_id, headers, 0)
            assert [r.status_code for r in before] == [200, 200, 200, 201], [r.text for r in before]

            await asyncio.to_thread(pg.stop)  # a crash: immediate shutdown
            during = await _exercise(c, user.email, project_id, headers, 1)
            for r in during:
                _unavailable(r, "DB_UNAVAILABLE")
            ready = await c.get("/health/ready")
            assert ready.status_code == 503 and ready.json()["details"]["failed"] == ["db"]

            await asyncio.to_thread(pg.start)

            async def answers() -> bool:
                return (await login(c, user.email, DEFAULT_PASSWORD)).status_code == 200

            await _until(answers, 60, "login after PostgreSQL came back")
            after = await _exercise(c, user.email, project_id, headers, 2)
            assert [r.status_code for r in after] == [200, 200, 200, 201], [r.text for r in after]


async def test_postgresql_unreachable_from_the_start_is_503_not_500(tmp_path: Path) -> None:
    """A pool that cannot connect at all (nothing listens on the port)."""
    with throwaway_postgres() as pg:
        settings = build_settings(pg.url, tmp_path, redis_url=None, knowledge_embed_code=False)
        await asyncio.to_thread(migrate.upgrade, settings)
        db = Database(settings)
        user = await create_user(db, "pg-gone@example.com")
        project_id = await make_project(db, {user: ProjectRole.OWNER})
        await db.dispose()
        headers = auth_headers(user, settings)
        await asyncio.to_thread(pg.stop)
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            for r in await _exercise(c, user.email, project_id, headers, 1):
                _unavailable(r, "DB_UNAVAILABLE")


async def test_redis_down_never_answers_500_and_readiness_names_redis(tmp_path: Path) -> None:
    """Login and reads do not need Redis (rate limits fall back to memory); readiness says
    `redis`; anything that does need it answers 503 REDIS_UNAVAILABLE, never 500."""
    with throwaway_redis() as rd:
        settings = build_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'outage.db'}",
            tmp_path,
            redis_url=rd.url,
            redis_key_prefix="outage:",
            embedded_worker_threads=0,
            knowledge_embed_code=False,
        )
        await asyncio.to_thread(migrate.upgrade, settings)
        db = Database(settings)
        user = await create_user(db, "redis-outage@example.com")
        project_id = await make_project(db, {user: ProjectRole.OWNER})
        await db.dispose()
        headers = auth_headers(user, settings)
        app = create_app(settings)

        @app.get("/api/v1/_test/redis")
        async def needs_redis(request: Request) -> dict[str, str]:
            """A route that cannot work without Redis (a cache read, say)."""
            await request.app.state.redis.get("outage:probe")
            return {"redis": "up"}

        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            before = await _exercise(c, user.email, project_id, headers, 0)
            assert [r.status_code for r in before] == [200, 200, 200, 201], [r.text for r in before]
            assert (await c.get("/api/v1/_test/redis")).status_code == 200

            await asyncio.to_thread(rd.stop)
            _unavailable(await c.get("/api/v1/_test/redis"), "REDIS_UNAVAILABLE")
            during = await _exercise(c, user.email, project_id, headers, 1)
            assert [r.status_code for r in during[:3]] == [200, 200, 200], [r.text for r in during]
            up = during[3]
            assert up.status_code == 201 or (
                up.status_code == 503 and up.json()["error_code"] == "REDIS_UNAVAILABLE"
            ), up.text
            ready = await c.get("/health/ready")
            assert ready.status_code == 503 and "redis" in ready.json()["details"]["failed"]
            assert "Error" not in ready.text and "/" not in str(ready.json()["details"])

            await asyncio.to_thread(rd.start)

            async def ready_again() -> bool:
                return (await c.get("/health/ready")).status_code == 200

            await _until(ready_again, 30, "readiness after Redis came back")
            after = await _exercise(c, user.email, project_id, headers, 2)
            assert [r.status_code for r in after] == [200, 200, 200, 201], [r.text for r in after]
            assert (await c.get("/api/v1/_test/redis")).status_code == 200
