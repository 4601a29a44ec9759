"""`codeatlas serve --workers N` for the chat tests and benchmark, with a patient start-up.

Like :func:`tests.auth.serving.serving`, but the deadline for readiness is a parameter: each
worker loads the embedding model and opens the vector store, which on a busy 2-core machine
takes minutes, and a test must not fail because the machine is busy.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from codeatlas.settings import Settings
from tests.auth.serving import serve_env
from tests.conftest import free_port
from tests.llm.openai_server import OpenAITestServer


def chat_env(
    settings: Settings, data_dir: Path, llm: OpenAITestServer, **extra: str
) -> dict[str, str]:
    """A `serve` on the test's database and Redis, answering with the test LLM server."""
    assert settings.redis_url
    return serve_env(
        DATABASE_URL=settings.resolved_database_url,
        DATA_DIR=str(data_dir),
        REDIS_URL=settings.redis_url,
        REDIS_KEY_PREFIX=settings.redis_key_prefix,
        LLM_PROVIDER="openai",
        LLM_BASE_URL=llm.base_url,
        LLM_MODEL="test-model",
        LOG_LEVEL="INFO",
        **extra,
    )


@contextmanager
def serving(
    env: dict[str, str], log: Path, *, workers: int = 1, ready_timeout: float = 600
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
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
        deadline = time.monotonic() + ready_timeout
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health/ready")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    break
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


def call(
    port: int, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, dict[str, Any]]:
    """One JSON request on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body) if body is not None else None
        conn.request(
            method, path, body=data, headers={"Content-Type": "application/json", **headers}
        )
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else {})
    finally:
        conn.close()
