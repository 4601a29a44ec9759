"""`codeatlas serve --workers N` for the chat tests and benchmark, with a patient start-up.

:func:`tests.auth.serving.serving` with a 600 s deadline for readiness: each worker loads the
embedding model and opens the vector store, which on a busy 2-core machine takes minutes,
and a test must not fail because the machine is busy.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from codeatlas.settings import Settings
from tests.auth import serving as shared
from tests.llm.openai_server import OpenAITestServer

READY_TIMEOUT = 600.0


def chat_env(
    settings: Settings, data_dir: Path, llm: OpenAITestServer, **extra: str
) -> dict[str, str]:
    """A `serve` on the test's database and Redis, answering with the test LLM server."""
    return shared.env_on(
        settings,
        data_dir,
        LLM_PROVIDER="openai",
        LLM_BASE_URL=llm.base_url,
        LLM_MODEL="test-model",
        LOG_LEVEL="INFO",
        **extra,
    )


def serving(
    env: dict[str, str], log: Path, *, workers: int = 1
) -> AbstractContextManager[tuple[int, subprocess.Popen[bytes]]]:
    return shared.serving(env, log, workers=workers, ready_timeout=READY_TIMEOUT)


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
