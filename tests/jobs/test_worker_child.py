"""The supervised worker child of `codeatlas serve` on the embedded default (issue 10,
findings 6 and 7): it owns the vector store, API processes reach it over a Unix socket (so
``--workers 2`` works), and a SIGKILLed child is replaced and its jobs finish, once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from codeatlas.db.session import Database
from codeatlas.knowledge.vector_store import EdgeVectorStore
from codeatlas.models import CodeChunk, CodeDocument, Job, ProjectRole
from codeatlas.settings import Settings
from tests.auth.serving import Pinned, pinned_per_worker, worker_pids
from tests.code.helpers import make_project, make_user, upload
from tests.conftest import free_port
from tests.core.serve_process import (
    embedded_env,
    eventually_ready,
    gone,
    running_serve,
    serve_command,
    worker_child,
)
from tests.factories import auth_headers
from tests.knowledge.test_code_search import FILES, MEANING

UNFINISHED = ("queued", "running", "retrying")


def _source(i: int) -> bytes:
    functions = "\n\n".join(
        f"def step_{i}_{n}(values):\n"
        f'    """Stage {n} of pipeline {i}: scale, filter and sum the values."""\n'
        f"    scaled = [v * {n + 1} for v in values]\n"
        f"    kept = [v for v in scaled if v % {n + 2}]\n"
        f"    return sum(kept) + {i}\n"
        for n in range(12)
    )
    return functions.encode()


async def _count(db: Database, query: object) -> int:
    async with db.session() as s:
        return int(await s.scalar(query) or 0)  # type: ignore[call-overload]


async def _wait_for(db: Database, predicate: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with db.session() as s:
            statuses = list(
                (await s.execute(select(Job.status, func.count()).group_by(Job.status))).all()
            )
        by_status = {status: n for status, n in statuses}
        if predicate == "running" and by_status.get("running"):
            return
        if predicate == "done" and by_status and not any(by_status.get(u) for u in UNFINISHED):
            return
        assert time.monotonic() < deadline, f"jobs: {by_status}"
        await asyncio.sleep(0.3)


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_a_killed_worker_child_is_replaced_and_its_jobs_finish_once(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "serve.log"
    owner = await make_user(db)
    project_id = await make_project(db, {owner: ProjectRole.OWNER})
    files = [(f"pkg/module_{i}.py", _source(i)) for i in range(12)]
    with running_serve(embedded_env(settings, data_dir), log) as (base, serve):
        child = worker_child(serve.pid)
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            r = await upload(c, project_id, auth_headers(owner, settings), files)
        assert r.status_code == 201, r.text
        await _wait_for(db, "running", timeout=300)
        async with db.session() as s:
            in_flight = set(
                (await s.scalars(select(Job.message_id).where(Job.status == "running"))).all()
            )
        os.kill(child.pid, signal.SIGKILL)
        assert gone(child.pid)
        replacement = worker_child(serve.pid)
        assert replacement.pid != child.pid
        await _wait_for(db, "done", timeout=900)
        async with db.session() as s:
            rows = (await s.execute(select(Job.message_id, Job.status))).all()
        statuses = {message_id: status for message_id, status in rows}
        assert in_flight and all(statuses[m] == "succeeded" for m in in_flight), statuses
        assert set(statuses.values()) == {"succeeded"}, statuses
        indexed = select(func.count()).where(CodeDocument.status == "searchable")
        assert await _count(db, indexed) == len(files)
        eventually_ready(base)
    assert f"worker child pid {child.pid} exited" in log.read_text()
    # Nothing duplicated: one vector per stored chunk, one chunk row per (document, index).
    chunks = await _count(db, select(func.count()).select_from(CodeChunk))
    distinct = select(func.count()).select_from(
        select(CodeChunk.document_id, CodeChunk.index).distinct().subquery()
    )
    assert chunks >= len(files) and await _count(db, distinct) == chunks
    store = EdgeVectorStore(data_dir / "vectors", optimize_threshold=None)
    try:
        assert await store.count("code_chunks") == chunks
    finally:
        await store.close()


def _open_paths(pid: int) -> list[str]:
    """Everything the process has open, directories included (the shard's WAL lock is one)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.append(os.readlink(fd))
        except OSError:
            continue
    return found


def _pin_both(port: int, pids: list[int], timeout: float = 300) -> dict[int, Pinned]:
    """A connection to each API process. Until both have finished starting (minutes on a
    busy machine) only one accepts, so keep trying."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pinned_per_worker(port, pids)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2.0)


def _vector_store_becomes_ready(conn: Pinned, pid: int, timeout: float = 300) -> None:
    """Never `failed` (before: the second process could not open the store: 503 for good);
    a `timeout` of the 2 s check on a busy machine is retried until it answers `ready`."""
    deadline = time.monotonic() + timeout
    while True:
        conn.conn.request("GET", "/health/ready")
        resp = conn.conn.getresponse()
        body = json.loads(resp.read() or b"{}")
        checks = body.get("checks") or body.get("details", {}).get("checks", {})
        check = checks.get("vector_store", {})
        assert check.get("reason") != "failed", (pid, body)
        if check.get("status") == "ready":
            return
        assert time.monotonic() < deadline, (pid, body)
        time.sleep(1.0)


def _search(conn: Pinned, headers: dict[str, str], query: str) -> tuple[int, dict[str, object]]:
    body = json.dumps({"query": query, "kinds": ["code"], "top_k": 3})
    conn.conn.request(
        "POST",
        "/api/v1/knowledge/search",
        body=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    resp = conn.conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_two_api_workers_reach_the_one_vector_store(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    owner = await make_user(db)
    project_id = await make_project(db, {owner: ProjectRole.OWNER})
    headers = auth_headers(owner, settings)
    env = embedded_env(settings, tmp_path / "data", EMBEDDED_WORKER_NICE="5")
    with running_serve(env, tmp_path / "serve.log", workers=2) as (base, serve):
        port = int(base.rsplit(":", 1)[1])
        conns = _pin_both(port, worker_pids(serve, port, 2))
        for pid, conn in conns.items():  # both API processes see the store as ready
            _vector_store_becomes_ready(conn, pid)
            conn.close()  # uvicorn drops idle keep-alive connections after 5 s anyway
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            r = await upload(c, project_id, headers, FILES)
        assert r.status_code == 201, r.text
        query, path = next(iter(MEANING.items()))
        conns = _pin_both(port, list(conns))
        try:
            for pid, conn in conns.items():  # every API process answers from the one store
                deadline = time.monotonic() + 600
                while True:
                    status, found = _search(conn, headers, query)
                    assert status == 200, (pid, found)
                    results = found["results"]
                    assert isinstance(results, list)
                    if results and results[0]["path"] == path:
                        break
                    assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                    await asyncio.sleep(0.5)
        finally:
            for conn in conns.values():
                conn.close()
        # Only the worker child has the store open; the API processes hold no shard.
        child = worker_child(serve.pid)
        for pid in worker_pids(serve, port, 2):
            assert not any("/vectors/" in p for p in _open_paths(pid))
        assert any("/vectors/" in p for p in _open_paths(child.pid))
        # EMBEDDED_WORKER_NICE: background work yields the CPU to the API processes.
        api_nice = os.getpriority(os.PRIO_PROCESS, serve.pid)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(19, api_nice + 5)
        for pid in worker_pids(serve, port, 2):
            assert os.getpriority(os.PRIO_PROCESS, pid) == api_nice


def test_threads_mode_refuses_several_workers_naming_qdrant_url(
    settings: Settings, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = embedded_env(settings, data_dir, EMBEDDED_WORKER_MODE="threads")
    result = subprocess.run(
        serve_command(free_port(), workers=2), env=env, capture_output=True, timeout=120
    )
    assert result.returncode == 1
    assert "QDRANT_URL" in result.stderr.decode()
    assert not (data_dir / "valkey").exists()  # refused before anything was started
