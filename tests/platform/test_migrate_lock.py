"""5-C under concurrency: several processes migrating one empty database at once all succeed.

Without the advisory lock (`codeatlas/db/migrate_lock.py`) they race on CREATE TABLE and the
version table; with it one migrates and the others find head. Process start-up on a busy
machine staggers them too much to race by chance, so the test holds the lock itself while
they start: each must wait (no table appears, none exits), and once it lets go all four
finish.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from codeatlas.db import migrate
from codeatlas.db.migrate_lock import MIGRATION_LOCK_KEY
from tests.conftest import build_settings, make_database_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4


async def test_four_processes_migrating_an_empty_database_at_once_all_succeed(
    tmp_path: Path,
) -> None:
    url = await asyncio.to_thread(make_database_url, "postgresql", tmp_path, "migrate_race")
    u = make_url(url)
    holder = await asyncpg.connect(
        host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username, database=u.database
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(DATABASE_URL=url, ENV="test", LOG_LEVEL="INFO")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "codeatlas", "migrate", "upgrade"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(PROCESSES)
        ]
        # every process is connected and polling for the lock ...
        deadline = time.monotonic() + 180
        while True:
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> "
                "pg_backend_pid() AND query ILIKE '%pg_try_advisory_xact_lock%'",
                u.database,
            )
            if waiting >= PROCESSES:
                break
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, f"only {waiting} processes reached the lock"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        # ... and none has migrated anything while another holds the lock
        assert all(p.poll() is None for p in procs)
        assert await holder.fetchval("SELECT to_regclass('alembic_version')") is None
    finally:
        await holder.close()  # releases the session-level lock
    outputs = [
        (await asyncio.to_thread(p.communicate, timeout=240))[0].decode(errors="replace")
        for p in procs
    ]
    assert [p.returncode for p in procs] == [0] * PROCESSES, outputs
    settings = build_settings(url, tmp_path)
    assert await asyncio.to_thread(migrate.current_revision, settings) == migrate.head_revision()
    await asyncio.to_thread(migrate.check, settings)  # the schema is the models, once
