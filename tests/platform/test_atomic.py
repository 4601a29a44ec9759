"""3-A: multi-step writes are all-or-nothing, even when the process dies half-way."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from codeatlas.db import migrate
from codeatlas.db.session import Database, atomic
from codeatlas.models import Project, User
from codeatlas.settings import Settings
from tests.conftest import BACKENDS, build_settings, make_database_url
from tests.factories import auth_headers, create_user


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = make_database_url(request.param, tmp_path, "atomic")
    migrate.upgrade(build_settings(url, tmp_path))
    return url


async def _count(db: Database) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(User))).scalar_one())


class Boom(Exception):
    pass


async def test_exception_between_two_writes_leaves_neither(
    backend_url: str, tmp_path: Path
) -> None:
    db = Database(build_settings(backend_url, tmp_path))
    try:
        async with db.session() as s:
            with pytest.raises(Boom):
                async with atomic(s):
                    s.add(User(email="first@example.com", password_hash="x"))
                    await s.flush()
                    assert await _count(db) == 0  # not visible to others before commit
                    raise Boom
        assert await _count(db) == 0
        async with db.session() as s, atomic(s):
            s.add(User(email="first@example.com", password_hash="x"))
            s.add(User(email="second@example.com", password_hash="x"))
        assert await _count(db) == 2
    finally:
        await db.dispose()


async def test_nested_atomic_rolls_back_only_the_inner_block(
    backend_url: str, tmp_path: Path
) -> None:
    db = Database(build_settings(backend_url, tmp_path))
    try:
        async with db.session() as s, atomic(s):
            s.add(User(email="outer@example.com", password_hash="x"))
            await s.flush()
            with pytest.raises(Boom):
                async with atomic(s):
                    s.add(User(email="inner@example.com", password_hash="x"))
                    await s.flush()
                    raise Boom
        async with db.session() as s:
            emails = (await s.execute(select(User.email))).scalars().all()
        assert emails == ["outer@example.com"]
    finally:
        await db.dispose()


async def test_atomic_transactions_false_commits_each_write(
    backend_url: str, tmp_path: Path
) -> None:
    """The roll-back flag really restores the old commit-per-write behaviour."""
    db = Database(build_settings(backend_url, tmp_path, atomic_transactions=False))
    try:
        async with db.session() as s:
            with pytest.raises(Boom):
                async with atomic(s):
                    s.add(User(email="first@example.com", password_hash="x"))
                    await s.flush()
                    raise Boom
        assert await _count(db) == 1
    finally:
        await db.dispose()


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from codeatlas.db.session import Database, atomic
    from codeatlas.models import User
    from codeatlas.settings import Settings

    async def main() -> None:
        db = Database(Settings(database_url=sys.argv[1], data_dir=sys.argv[2]))
        async with db.session() as s, atomic(s):
            s.add(User(email="step1@example.com", password_hash="x"))
            await s.flush()
            Path(sys.argv[3]).write_text("half-way")
            time.sleep(60)  # killed here, between the two writes
            s.add(User(email="step2@example.com", password_hash="x"))

    asyncio.run(main())
    """
)


@pytest.mark.slow
async def test_sigkill_mid_write_leaves_database_consistent(
    backend_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend_url, str(tmp_path), str(marker)],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert proc.poll() is None, "child died early"
            assert time.monotonic() < deadline, "child never reached the half-way point"
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    db = Database(build_settings(backend_url, tmp_path))
    try:
        assert await _count(db) == 0
        # and the database is usable afterwards (no stale lock)
        async with db.session() as s, atomic(s):
            s.add(User(email="after@example.com", password_hash="x"))
        assert await _count(db) == 1
    finally:
        await db.dispose()


async def test_a_write_is_committed_before_its_response_is_sent(
    app: FastAPI, db: Database, settings: Settings
) -> None:
    """The request's transaction ends when the endpoint returns, not after the response.

    At the moment the response starts, another connection must already see the write: a
    client may read it at once, and a 2xx must never precede a commit that could still fail.
    (With FastAPI's default dependency scope the commit ran after the response was sent and
    after its background tasks: a chat turn started as one raced its own message's commit.)
    """
    user = await create_user(db)
    name = f"seen-{uuid.uuid4().hex[:8]}"
    seen_at_start: list[bool] = []

    async def observed(scope: Any, receive: Any, send: Any) -> None:
        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and scope["path"] == "/api/v1/projects":
                async with db.session() as other:
                    found = await other.scalar(select(Project.id).where(Project.name == name))
                    seen_at_start.append(found is not None)
            await send(message)

        await app(scope, receive, watch)

    transport = httpx.ASGITransport(app=observed)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post(
            "/api/v1/projects", json={"name": name}, headers=auth_headers(user, settings)
        )
    assert r.status_code == 201, r.text
    assert seen_at_start == [True]
