"""Fixtures of the jobs tests: an app that enqueues probe jobs, real `codeatlas worker`
processes, and readers of the `jobs` table and of the probes' Redis traces."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import select

from codeatlas.core.redis_client import key
from codeatlas.db.session import Database, SessionDep
from codeatlas.errors import BadRequest
from codeatlas.jobs.enqueue import enqueue
from codeatlas.models import Job
from codeatlas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROBES = "tests.jobs.probe_actors"

# Short timings so crash recovery and heartbeats are observable in seconds.
FAST: dict[str, Any] = {
    "jobs_extra_modules": [PROBES],
    "jobs_min_backoff_ms": 100,
    "jobs_max_backoff_ms": 400,
    "jobs_broker_heartbeat_timeout_ms": 3000,
    "jobs_broker_maintenance_chance": 1_000_000,
    "worker_heartbeat_interval": 0.5,
    "worker_heartbeat_stale_after": 2.0,
    "embedded_worker_threads": 0,
    "jobs_relay_poll_interval": 0.2,
    "jobs_relay_backoff_max": 1.0,
    "jobs_relay_send_timeout": 2.0,
    "jobs_lease_seconds": 3.0,
    "jobs_lease_renew_interval": 0.5,
    "jobs_reaper_interval": 0.5,
    "jobs_workers_required": True,
    # These tests are about the job system; embedding is the knowledge tests' business (and
    # would load a model in every worker).
    "knowledge_embed_code": False,
}


def env_for(settings: Settings) -> dict[str, str]:
    """The environment of a worker process on the same database, Redis and prefix."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "JOBS_", "WORKER_"))
    }
    env.update(
        DATABASE_URL=settings.resolved_database_url,
        REDIS_URL=settings.redis_url or "",
        REDIS_KEY_PREFIX=settings.redis_key_prefix,
        DATA_DIR=str(settings.data_dir),
        ENV="test",
        LOG_LEVEL="INFO",
        JOBS_EXTRA_MODULES=",".join(settings.jobs_extra_modules),
        JOBS_MIN_BACKOFF_MS=str(settings.jobs_min_backoff_ms),
        JOBS_MAX_BACKOFF_MS=str(settings.jobs_max_backoff_ms),
        JOBS_BROKER_HEARTBEAT_TIMEOUT_MS=str(settings.jobs_broker_heartbeat_timeout_ms),
        JOBS_BROKER_MAINTENANCE_CHANCE=str(settings.jobs_broker_maintenance_chance),
        WORKER_HEARTBEAT_INTERVAL=str(settings.worker_heartbeat_interval),
        WORKER_HEARTBEAT_STALE_AFTER=str(settings.worker_heartbeat_stale_after),
        JOBS_RELAY_POLL_INTERVAL=str(settings.jobs_relay_poll_interval),
        JOBS_RELAY_BACKOFF_MAX=str(settings.jobs_relay_backoff_max),
        JOBS_RELAY_SEND_TIMEOUT=str(settings.jobs_relay_send_timeout),
        JOBS_LEASE_SECONDS=str(settings.jobs_lease_seconds),
        JOBS_LEASE_RENEW_INTERVAL=str(settings.jobs_lease_renew_interval),
        JOBS_REAPER_INTERVAL=str(settings.jobs_reaper_interval),
        UPLOAD_ROOT=str(settings.UPLOAD_ROOT),
        KNOWLEDGE_EMBED_CODE=str(getattr(settings, "knowledge_embed_code", True)).lower(),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Workers:
    settings: Settings
    tmp: Path
    started: list[WorkerProc] = field(default_factory=list)

    async def start(self, threads: int = 2, processes: int = 1) -> WorkerProc:
        log = self.tmp / f"worker-{len(self.started)}.log"
        command = [sys.executable, "-m", "codeatlas", "worker", "--processes", str(processes)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*command, "--threads", str(threads)],
                cwd=ROOT,
                env=env_for(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProc(proc, log)
        self.started.append(worker)
        await self.wait_ready(worker)
        return worker

    async def wait_ready(self, worker: WorkerProc, timeout: float = 60) -> None:
        """Until the process logged that its Dramatiq worker runs (its heartbeat is written)."""
        deadline = time.monotonic() + timeout
        while "worker started" not in worker.output():
            assert worker.proc.poll() is None, worker.output()
            assert time.monotonic() < deadline, "worker did not start:\n" + worker.output()
            await asyncio.sleep(0.1)

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def jobs_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST)


@pytest.fixture
def workers(jobs_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(jobs_settings, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def add_enqueue_route(app: FastAPI) -> None:
    """A route that enqueues one job in the request's transaction (and can roll it back)."""

    @app.post("/api/v1/_test/enqueue")
    async def enqueue_probe(
        session: SessionDep, actor: str, n: int, fail: bool = False
    ) -> dict[str, Any]:
        job = enqueue(session, actor, n, project_id=1000 + n)
        await session.flush()
        if fail:
            raise BadRequest("rolled back on purpose")
        return {"id": job.id, "message_id": job.message_id}


@pytest.fixture
async def jobs_app(db: Database, jobs_settings: Settings) -> AsyncIterator[FastAPI]:
    from codeatlas.app import create_app

    app = create_app(jobs_settings)
    add_enqueue_route(app)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def jobs_client(jobs_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=jobs_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def redis_client(jobs_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(jobs_settings.redis_url or "", decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


class Probes:
    """Reads the traces the probe actors leave in Redis."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def key(self, *parts: object) -> str:
        return key(self.settings, "probe", *parts)

    async def done(self) -> list[int]:
        return [int(v) for v in await self.client.lrange(self.key("done"), 0, -1)]

    async def started(self) -> list[int]:
        return [int(v) for v in await self.client.lrange(self.key("started"), 0, -1)]

    async def set(self, *parts: object) -> None:
        await self.client.set(self.key(*parts), "1")

    async def queued_messages(self) -> int:
        """Messages the broker holds for the default queue (waiting or delayed)."""
        total = 0
        for name in ("default", "default.DQ", "default.XQ"):
            total += await self.client.hlen(key(self.settings, "dramatiq", name + ".msgs"))
        return total


@pytest.fixture
def probes(redis_client: aioredis.Redis, jobs_settings: Settings) -> Probes:
    return Probes(redis_client, jobs_settings)


async def get_job(db: Database, message_id: str) -> Job | None:
    async with db.session() as s:
        return await s.scalar(select(Job).where(Job.message_id == message_id))


async def wait_for(
    predicate: Callable[[], Awaitable[Any]], timeout: float = 60, what: str = "condition"
) -> Any:
    """Poll until ``predicate()`` is truthy (generous timeout: the machine is shared)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def wait_status(db: Database, message_id: str, *statuses: str, timeout: float = 60) -> Job:
    async def check() -> Job | None:
        job = await get_job(db, message_id)
        return job if job is not None and job.status in statuses else None

    job: Job = await wait_for(check, timeout, f"job {message_id} to be {statuses}")
    return job
