"""Real `codeatlas serve` processes on the embedded default (own DATA_DIR, embedded Valkey,
worker child), for the tests of one-instance-per-directory and the supervised worker child."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from codeatlas.settings import Settings
from tests.conftest import free_port


def embedded_env(settings: Settings, data_dir: Path, **extra: str) -> dict[str, str]:
    """The test's database; everything else embedded (no REDIS_URL, no QDRANT_URL)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DATABASE_", "REDIS_", "QDRANT_", "EMBEDDING_", "JOBS_", "VECTOR_", "HEALTH_")
        )
    }
    env.update(
        DATABASE_URL=settings.resolved_database_url,
        DATA_DIR=str(data_dir),
        SECRET_KEY=settings.secret_key,
        ENV="test",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def serve_command(port: int, workers: int = 1) -> list[str]:
    command = [sys.executable, "-m", "codeatlas", "serve", "--port", str(port)]
    return [*command, "--workers", str(workers)]


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/health/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "serve not ready:\n" + log.read_text()
        time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def eventually_ready(base: str, timeout: float = 300) -> None:
    """Readiness answers 200 within the deadline (its 2 s checks can time out on a busy
    machine; a component that is really down never answers 200)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = httpx.get(f"{base}/health/ready", timeout=10)
            if r.status_code == 200:
                return
            last = r.text
        except httpx.TransportError as exc:
            last = repr(exc)
        assert time.monotonic() < deadline, last
        time.sleep(1.0)


@contextmanager
def running_serve(
    env: dict[str, str], log: Path, *, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`codeatlas serve` on a free port, ready, stopped afterwards: (base URL, process)."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            serve_command(port, workers), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log)
        yield base, proc
    finally:
        stop(proc)


def children_named(pid: int, needle: str) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if needle in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def worker_child(serve_pid: int, timeout: float = 60) -> psutil.Process:
    """The current worker child of a `serve` (waits for one after a restart)."""
    deadline = time.monotonic() + timeout
    while True:
        found = children_named(serve_pid, "codeatlas.worker_child")
        if len(found) == 1:
            return found[0]
        assert time.monotonic() < deadline, f"no single worker child under {serve_pid}: {found}"
        time.sleep(0.2)


def gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False
