"""`codeatlas users create-admin`: an active administrator from the command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx

from codeatlas.db.session import Database
from codeatlas.settings import Settings
from tests.auth.helpers import API, bearer, login
from tests.auth.serving import serve_env


async def _create_admin(
    settings: Settings, tmp_path: Path, *args: str, password: str
) -> subprocess.CompletedProcess[str]:
    env = serve_env(
        DATABASE_URL=settings.resolved_database_url,
        DATA_DIR=str(tmp_path),
        CODEATLAS_ADMIN_PASSWORD=password,
    )
    # In a thread: a blocking wait would freeze the test's event loop, where a live app's
    # job relay may hold SQLite's write lock the command then waits for.
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "codeatlas", "users", "create-admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_create_admin_then_log_in(
    client: httpx.AsyncClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    done = await _create_admin(
        settings,
        tmp_path,
        "--email",
        "Root@Example.com",
        "--full-name",
        "Root",
        password="an admin password",
    )
    assert done.returncode == 0, done.stderr
    assert "created administrator root@example.com" in done.stdout

    r = await login(client, "root@example.com", "an admin password")
    assert r.status_code == 200, r.text
    me = (await client.get(f"{API}/me", headers=bearer(r.json()["access_token"]))).json()
    assert me["is_admin"] is True and me["is_active"] is True and me["full_name"] == "Root"

    again = await _create_admin(
        settings, tmp_path, "--email", "ROOT@example.com", password="another pw!"
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = await _create_admin(
        settings, tmp_path, "--email", "not-an-email", password="an admin password"
    )
    assert bad.returncode == 1 and "Invalid e-mail" in bad.stderr
    short = await _create_admin(settings, tmp_path, "--email", "x@example.com", password="short")
    assert short.returncode == 1 and "Password must be" in short.stderr
