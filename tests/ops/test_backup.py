"""`codeatlas backup` while a real `codeatlas serve` takes uploads, `codeatlas restore` into a
fresh directory: the same files and rows, and the restored instance answers the same searches;
`codeatlas doctor` names what is wrong and exits 1."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeatlas.db.session import Database
from codeatlas.models import ProjectRole
from tests.code.helpers import make_project, make_user, multipart
from tests.conftest import build_settings, free_port
from tests.factories import auth_headers
from tests.knowledge.test_code_search import FILES, MEANING

SECRET = "backup-test-secret-key-0123456789abcdefghijklmnop"


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "QDRANT_", "EMBEDDING_", "JOBS_"))
    }
    env.update(DATA_DIR=str(data_dir), SECRET_KEY=SECRET, ENV="test", PYTHONUNBUFFERED="1")
    return env


def _cli(data_dir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codeatlas", *args],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Served:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "codeatlas", "serve", "--port", str(self.port)],
                env=_env(data_dir),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.log = log
        deadline = time.monotonic() + 180
        while True:
            assert self.proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{self.base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve not ready:\n" + log.read_text()
            time.sleep(0.3)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / "original", tmp_path / "original.log")
    try:
        yield server
    finally:
        server.stop()


def _rows(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = sqlite3.connect(database)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {
            "documents": con.execute(
                "SELECT id, project_id, file_path, content_hash FROM code_documents ORDER BY id"
            ).fetchall(),
            "users": con.execute("SELECT id, email FROM users ORDER BY id").fetchall(),
        }
    finally:
        con.close()


def _check_files(data_dir: Path, documents: list[tuple[Any, ...]]) -> None:
    for _, project_id, file_path, content_hash in documents:
        data = (data_dir / "uploads" / str(project_id) / file_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == content_hash, file_path


async def _searches(base: str, headers: dict[str, str], project_id: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        for query in MEANING:
            r = await c.post("/api/v1/search", json={"query": query}, headers=headers)
            assert r.status_code == 200, r.text
            out[query] = [hit["path"] for hit in r.json()["results"][:3]]
        r = await c.get(f"/api/v1/projects/{project_id}/files", headers=headers)
        assert r.status_code == 200, r.text
        out["files"] = sorted(item["path"] for item in r.json()["items"])
    return out


@pytest.mark.slow
async def test_backup_while_uploading_then_restore_answers_the_same(
    served: Served, tmp_path: Path
) -> None:
    db = Database(
        build_settings(
            f"sqlite+aiosqlite:///{served.data_dir / 'codeatlas.db'}",
            served.data_dir,
            secret_key=SECRET,
        )
    )
    try:
        owner = await make_user(db)
        project_id = await make_project(db, {owner: ProjectRole.OWNER})
    finally:
        await db.dispose()
    headers = auth_headers(owner, db.settings)

    async def upload_all() -> None:
        async with httpx.AsyncClient(base_url=served.base, timeout=60) as c:
            for n in range(4):
                for name, data in FILES:
                    body, content_type = multipart([("files", f"r{n}/{name}", data)])
                    r = await c.post(
                        f"/api/v1/projects/{project_id}/files",
                        content=body,
                        headers={**headers, "Content-Type": content_type},
                    )
                    assert r.status_code == 201, r.text

    uploading = asyncio.create_task(upload_all())
    await asyncio.sleep(1.0)
    during = tmp_path / "during.tar.gz"
    result = await asyncio.to_thread(_cli, served.data_dir, "backup", str(during))
    assert result.returncode == 0, result.stdout + result.stderr
    await uploading

    # The backup taken mid-upload is consistent: every row's file is there, whole.
    mid = tmp_path / "mid"
    result = await asyncio.to_thread(_cli, mid, "restore", str(during), "--skip-reindex")
    assert result.returncode == 0, result.stdout + result.stderr
    mid_rows = _rows(mid / "codeatlas.db")
    _check_files(mid, mid_rows["documents"])

    # Wait until the original has indexed everything, back it up, restore it elsewhere.
    deadline = time.monotonic() + 300
    while True:
        con = sqlite3.connect(served.data_dir / "codeatlas.db")
        pending = con.execute(
            "SELECT count(*) FROM jobs WHERE status NOT IN ('succeeded', 'failed', 'dead')"
        ).fetchone()[0]
        con.close()
        if pending == 0:
            break
        assert time.monotonic() < deadline, served.log.read_text()[-3000:]
        await asyncio.sleep(1)
    after = tmp_path / "after.tar.gz"
    result = await asyncio.to_thread(_cli, served.data_dir, "backup", str(after))
    assert result.returncode == 0, result.stdout + result.stderr
    restored_dir = tmp_path / "restored"
    result = await asyncio.to_thread(_cli, restored_dir, "restore", str(after))
    assert result.returncode == 0, result.stdout + result.stderr
    original_rows = _rows(served.data_dir / "codeatlas.db")
    assert _rows(restored_dir / "codeatlas.db") == original_rows
    _check_files(restored_dir, original_rows["documents"])
    assert (restored_dir / "uploads").exists()

    expected = await _searches(served.base, headers, project_id)
    restored = Served(restored_dir, tmp_path / "restored.log")
    try:
        assert await _searches(restored.base, headers, project_id) == expected
    finally:
        restored.stop()

    # A restore never writes over a directory in use.
    result = await asyncio.to_thread(_cli, served.data_dir, "restore", str(after))
    assert result.returncode == 1 and "not empty" in result.stderr


def test_doctor_names_what_is_wrong_and_how_to_fix_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    result = _cli(data_dir, "doctor", timeout=120)
    assert result.returncode == 1
    assert "FAIL database" in result.stdout and "codeatlas migrate upgrade" in result.stdout
    assert _cli(data_dir, "migrate", "upgrade", timeout=120).returncode == 0
    result = _cli(data_dir, "doctor", timeout=120)
    assert result.returncode == 0, result.stdout
    assert "ok   database" in result.stdout
    env_redis = _env(data_dir) | {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run(
        [sys.executable, "-m", "codeatlas", "doctor"],
        env=env_redis,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "FAIL redis" in result.stdout
