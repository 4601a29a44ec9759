"""The embedded Redis of `codeatlas serve` (REDIS_URL unset): shared by the workers, stopped
on exit, and never left running by a killed `serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from codeatlas.core.embedded_redis import STATE_FILE, stop_stale_server
from codeatlas.db.session import Database
from codeatlas.settings import Settings
from tests.auth.helpers import API
from tests.auth.serving import pinned_per_worker, serve_env, serving, worker_pids
from tests.conftest import free_port


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = serve_env(
        DATABASE_URL=settings.resolved_database_url,
        DATA_DIR=str(tmp_path),
        TRUSTED_PROXIES="127.0.0.1",
    )
    assert "REDIS_URL" not in env
    return env


def _state(tmp_path: Path) -> dict[str, object]:
    return json.loads((tmp_path / "valkey" / STATE_FILE).read_text())  # type: ignore[no-any-return]


def _gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
async def test_workers_share_the_embedded_server_and_it_stops_with_serve(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    with serving(_env(settings, tmp_path), tmp_path / "serve.log", workers=2) as (port, proc):
        valkey_pid = int(_state(tmp_path)["pid"])  # type: ignore[call-overload]
        assert psutil.Process(valkey_pid).ppid() == proc.pid
        conns = pinned_per_worker(port, worker_pids(proc, port, 2))
        a, b = conns.values()
        try:
            wrong = {"email": "someone@example.com", "password": "guess"}
            codes = [
                c.post(f"{API}/login", wrong, client_ip="198.51.100.1")[0]
                for c in (a, b, a, b, a, b)
            ]
            assert codes == [401] * 5 + [429]  # one count across both worker processes
        finally:
            for c in conns.values():
                c.close()
    assert proc.returncode is not None
    assert _gone(valkey_pid), "embedded Valkey outlived serve"
    assert not (tmp_path / "valkey" / STATE_FILE).exists()


@pytest.mark.slow
async def test_killed_serve_does_not_leave_the_server_running(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    with serving(_env(settings, tmp_path), tmp_path / "serve.log") as (_, proc):
        valkey_pid = int(_state(tmp_path)["pid"])  # type: ignore[call-overload]
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up code runs
        proc.wait(timeout=10)
        assert _gone(valkey_pid), "the watchdog did not stop the orphaned server"


def test_a_recycled_pid_is_never_killed(tmp_path: Path) -> None:
    directory = tmp_path / "valkey"
    directory.mkdir()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state = {"pid": bystander.pid, "port": free_port(), "config_file": "/x/valkey.conf"}
        (directory / STATE_FILE).write_text(json.dumps(state))
        assert stop_stale_server(directory) is False
        assert bystander.poll() is None  # still running
        assert not (directory / STATE_FILE).exists()
    finally:
        bystander.kill()
        bystander.wait()
