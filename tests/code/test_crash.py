"""SIGKILL of a real `codeatlas serve` in the middle of a large upload: after a restart no
partial file is left under UPLOAD_ROOT and no row without its file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from codeatlas.db.session import Database
from codeatlas.models import CodeDocument
from tests.code.conftest import Team
from tests.code.helpers import files_under, multipart
from tests.conftest import free_port

MiB = 1024 * 1024


def _serve(team: Team, port: int, redis_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=team.settings.resolved_database_url,
        DATA_DIR=str(team.settings.data_dir),
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=team.settings.redis_key_prefix,
        SECRET_KEY=team.settings.secret_key,
        ENV="test",
        LOG_LEVEL="WARNING",
        UPLOAD_MAX_FILE_BYTES=str(512 * MiB),
        UPLOAD_MAX_REQUEST_BYTES=str(1024 * MiB),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "codeatlas", "serve", "--port", str(port)],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 180  # generous: a busy machine starts `serve` slowly
    async with httpx.AsyncClient() as c:
        while True:
            assert proc.poll() is None, "server exited"
            with contextlib.suppress(httpx.TransportError):
                if (await c.get(f"http://127.0.0.1:{port}/health/live")).status_code == 200:
                    return
            assert time.monotonic() < deadline, "server did not start"
            await asyncio.sleep(0.2)


def _staged_bytes(upload_root: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(upload_root):
        for n in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.path.getsize(os.path.join(dirpath, n))
    return total


@pytest.mark.slow
async def test_sigkill_mid_upload_leaves_no_partial_file_and_no_orphan_row(
    team: Team, db: Database, redis_url: str
) -> None:
    port = free_port()
    proc = _serve(team, port, redis_url)
    try:
        await _wait_ready(proc, port)
        head, ctype = multipart([("files", "small/done.py", b"print('complete')\n")])
        head = head[: head.rindex(b"--codeatlas")]  # keep the body open for the big part
        boundary = ctype.split("boundary=")[1]

        async def body() -> AsyncIterator[bytes]:
            yield head
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="big/blob.bin"\r\n\r\n'
            ).encode()
            for _ in range(400):  # 400 MiB, far more than will be sent before the kill
                yield b"\xab" * MiB
                await asyncio.sleep(0.005)

        async def send() -> None:
            async with httpx.AsyncClient(timeout=60) as c:
                with contextlib.suppress(httpx.HTTPError):
                    await c.post(
                        f"http://127.0.0.1:{port}/api/v1/projects/{team.project_id}/files",
                        content=body(),
                        headers={**team.headers(team.owner), "Content-Type": ctype},
                    )

        task = asyncio.create_task(send())
        deadline = time.monotonic() + 60
        while _staged_bytes(team.upload_root) < 20 * MiB:  # the server is writing it out
            assert time.monotonic() < deadline, "upload never reached the server's disk"
            assert not task.done(), "upload ended early"
            await asyncio.sleep(0.05)
        assert files_under(team.upload_root / ".txn"), "expected staged data in flight"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        await asyncio.wait_for(task, 30)

        restarted = _serve(team, port, redis_url)
        try:
            await _wait_ready(restarted, port)  # start-up recovery has run
        finally:
            restarted.terminate()
            restarted.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert files_under(team.upload_root) == []  # no partial file, no staged leftovers
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(CodeDocument)) == 0
