"""Real `codeatlas serve` processes for the multi-process tests, and pinned HTTP connections
whose serving worker process is known."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from codeatlas.settings import Settings
from tests.conftest import free_port


def serve_env(**values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "DISABLE_", "TRUSTED_", "HEALTH_"))
    }
    env.update(ENV="test", LOG_LEVEL="WARNING", HEALTH_MIN_COMPONENTS="db,redis")
    env.update(values)
    return env


def env_on(settings: Settings, data_dir: Path, **values: str) -> dict[str, str]:
    """A `serve` on the test's own database and Redis (its key prefix), plus ``values``."""
    assert settings.redis_url
    return serve_env(
        DATABASE_URL=settings.resolved_database_url,
        DATA_DIR=str(data_dir),
        REDIS_URL=settings.redis_url,
        REDIS_KEY_PREFIX=settings.redis_key_prefix,
        **values,
    )


@contextmanager
def serving(
    env: dict[str, str],
    log: Path,
    *,
    workers: int = 1,
    ready_timeout: float = 300,
    port: int | None = None,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`codeatlas serve` on ``port`` (a free one by default), ready (GET /health/ready is
    200) within ``ready_timeout`` seconds, stopped afterwards."""
    port = port or free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "codeatlas",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + ready_timeout  # serve starts a worker child first
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health/ready")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not become ready:\n" + log.read_text()
            time.sleep(0.2)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Pinned:
    """One keep-alive connection, so every request on it is served by the same process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.connect()
        assert self.conn.sock is not None
        self.local_port: int = self.conn.sock.getsockname()[1]

    def post(
        self, path: str, body: dict[str, str], *, client_ip: str
    ) -> tuple[int, dict[str, object]]:
        self.conn.request(
            "POST",
            path,
            body=json.dumps(body),
            headers={"Content-Type": "application/json", "X-Forwarded-For": client_ip},
        )
        resp = self.conn.getresponse()
        data = json.loads(resp.read() or b"{}")
        return resp.status, data

    def server_pid(self, candidates: list[int]) -> int:
        """Which of the candidate processes holds the other end of this connection."""
        for pid in candidates:
            for c in psutil.Process(pid).net_connections(kind="tcp"):
                if c.raddr and c.raddr.port == self.local_port and c.laddr.port == self.port:
                    return pid
        raise AssertionError("no candidate process serves this connection")

    def close(self) -> None:
        self.conn.close()


def pinned_per_worker(port: int, workers: list[int], tries: int = 60) -> dict[int, Pinned]:
    """A connection to each worker process (the kernel decides who accepts, so keep trying)."""
    found: dict[int, Pinned] = {}
    for _ in range(tries):
        conn = Pinned(port)
        conn.conn.request("GET", "/health/live")
        conn.conn.getresponse().read()
        pid = conn.server_pid(workers)
        if pid in found:
            conn.close()
        else:
            found[pid] = conn
        if len(found) == len(workers):
            return found
    raise AssertionError(f"connections reached only {list(found)} of workers {workers}")


def worker_pids(
    serve: subprocess.Popen[bytes], port: int, expected: int, timeout: float = 30
) -> list[int]:
    """uvicorn's worker processes: the children of `serve` that listen on its port."""
    deadline = time.monotonic() + timeout
    while True:
        children = psutil.Process(serve.pid).children(recursive=False)
        pids = [
            p.pid
            for p in children
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in _tcp(p))
        ]
        if len(pids) >= expected:
            return pids
        assert time.monotonic() < deadline, f"only {pids} of {expected} workers appeared"
        time.sleep(0.2)


def _tcp(p: psutil.Process) -> list[Any]:
    try:
        return list(p.net_connections(kind="tcp"))
    except psutil.Error:
        return []
