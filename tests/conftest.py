"""Test fixtures: real databases (PostgreSQL when DATABASE_URL names one, SQLite always).

The primary backend is PostgreSQL when ``DATABASE_URL`` points at one (CI does), else SQLite.
Each test run builds its databases fresh with ``alembic upgrade head``; each test starts on
empty tables.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from codeatlas.app import create_app
from codeatlas.db import migrate
from codeatlas.db.session import Database
from codeatlas.models import Base
from codeatlas.settings import Settings

# No test app or `codeatlas serve` started by a test runs the local model (which .ci/run
# installs) unless the test asks for an LLM itself (LLM_PROVIDER=openai / a local server).
os.environ.setdefault("LLM_PROVIDER", "none")

ENV_DATABASE_URL = os.environ.get("DATABASE_URL", "")
PG_AVAILABLE = ENV_DATABASE_URL.startswith("postgresql")
BACKENDS = ["sqlite", "postgresql"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def pg_admin(url: str) -> AsyncIterator[Any]:
    """An asyncpg connection to the maintenance database ``postgres`` of the server ``url``
    names (to create or drop ``url``'s own database); tests and benchmarks share it."""
    import asyncpg

    u = make_url(url)
    admin = await asyncpg.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        database="postgres",
    )
    try:
        yield admin
    finally:
        await admin.close()


async def _recreate_pg_database(url: str) -> None:
    name = make_url(url).database
    async with pg_admin(url) as admin:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')


def make_database_url(backend: str, tmp: Path, name: str) -> str:
    """A fresh, empty database of the given backend."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
    if not PG_AVAILABLE:
        pytest.skip("PostgreSQL not configured (set DATABASE_URL=postgresql+asyncpg://...)")
    base = make_url(ENV_DATABASE_URL)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = base.set(database=f"{base.database}_{name}_{worker}").render_as_string(
        hide_password=False
    )
    asyncio.run(_recreate_pg_database(url))
    return url


def build_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "data_dir": data_dir,
        "migrate_on_start": True,
        # No worker runs beside most test apps; tests/jobs turn this on where they start one.
        "jobs_workers_required": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("codeatlas")


@pytest.fixture(scope="session")
def primary_backend() -> str:
    return "postgresql" if PG_AVAILABLE else "sqlite"


@pytest.fixture(scope="session")
def migrated_url(primary_backend: str, session_tmp: Path) -> str:
    """The primary test database, built by Alembic once per run."""
    url = make_database_url(primary_backend, session_tmp, "main")
    migrate.upgrade(build_settings(url, session_tmp))
    return url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: REDIS_URL when set (CI), else an embedded Valkey server for the run."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from codeatlas.core.embedded_redis import start_valkey

    server = start_valkey(save="", appendonly="no")
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (nothing else is)."""
    import redis

    prefix = f"codeatlas-test:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def settings(migrated_url: str, tmp_path: Path, redis_url: str, redis_prefix: str) -> Settings:
    return build_settings(
        migrated_url, tmp_path, redis_url=redis_url, redis_key_prefix=redis_prefix
    )


async def truncate_all(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                await conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    await truncate_all(database)
    try:
        yield database
    finally:
        await truncate_all(database)
        await database.dispose()


@pytest.fixture
def app_factory(db: Database) -> Iterator[Any]:
    """Builds apps on the test database; `settings` overrides are applied on top."""

    def factory(**overrides: Any) -> FastAPI:
        return create_app(db.settings.model_copy(update=overrides))

    yield factory


@pytest.fixture
async def app(app_factory: Any) -> AsyncIterator[FastAPI]:
    application: FastAPI = app_factory()
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


PYTHON = sys.executable


# -- the second CI run ---------------------------------------------------------------------
# `.ci/run` runs the suite on PostgreSQL + Redis, then again on the embedded default (SQLite
# + embedded Valkey). Only tests whose backend comes from DATABASE_URL / REDIS_URL can
# behave differently the second time; with CODEATLAS_TESTS_BACKEND_ONLY=1 the others are
# deselected (they already ran, on SQLite where they pick a backend themselves).
BACKEND_FIXTURES = frozenset({"migrated_url", "redis_url", "primary_backend"})


# Slow scenarios start real servers, workers, browsers and throwaway databases; on a shared
# 2-core CI machine one of them can lose a race with the machine itself (a start-up that
# takes longer than its deadline). Each gets one more try (pytest-rerunfailures); a real
# defect fails twice. Fast tests are never retried.
SLOW_RERUNS = int(os.environ.get("CODEATLAS_SLOW_RERUNS", "1"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SLOW_RERUNS and config.pluginmanager.hasplugin("rerunfailures"):
        for item in items:
            if item.get_closest_marker("slow") and not item.get_closest_marker("flaky"):
                item.add_marker(pytest.mark.flaky(reruns=SLOW_RERUNS, reruns_delay=2))
    if os.environ.get("CODEATLAS_TESTS_BACKEND_ONLY", "") not in ("1", "true", "yes"):
        return
    keep, drop = [], []
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        (keep if names & BACKEND_FIXTURES else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# Playwright's sync API (the browser tests) keeps its event loop marked running in the main
# thread for as long as it is started. Should one outlive its module (a browser fixture not
# torn down after a failure, a rerun or a timeout), every later asyncio test on that xdist
# worker would fail with "Runner.run() cannot be called from a running event loop", which CI
# once showed for a whole tail of unrelated tests. Tests that do not drive the browser run
# with that mark lifted and put back afterwards; the leak is reported, not hidden.
@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    leaked = asyncio.events._get_running_loop()
    if leaked is None or "browser" in getattr(item, "fixturenames", ()):
        yield
        return
    item.warn(pytest.PytestWarning(f"an event loop left marked running before {item.nodeid}"))
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(leaked)
