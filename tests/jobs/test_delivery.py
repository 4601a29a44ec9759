"""Durable delivery (issue 10): the outbox through a Redis outage, dead letters in the table,
reclaiming a SIGKILLed worker's job by its lease, retry/cancel of running jobs, and
`requeue-stuck` on the embedded default. Real Redis (one of the test's own where it is
stopped), real database, real `codeatlas worker` processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from sqlalchemy import func, select

from codeatlas.app import create_app
from codeatlas.core.redis_client import key
from codeatlas.db.session import Database, atomic
from codeatlas.jobs.enqueue import enqueue
from codeatlas.models import CodeDocument, Job, ProjectRole
from codeatlas.settings import Settings
from tests.code.helpers import make_project, make_user, upload
from tests.factories import auth_headers, create_user
from tests.jobs.conftest import (
    Probes,
    Workers,
    add_enqueue_route,
    get_job,
    wait_for,
    wait_status,
)
from tests.platform.throwaway import throwaway_redis

pytestmark = pytest.mark.slow

PY = b"def f%d(x):\n    return x + %d\n\n\nclass C%d:\n    pass\n"


async def _send(client: httpx.AsyncClient, actor: str, n: int) -> str:
    r = await client.post("/api/v1/_test/enqueue", params={"actor": actor, "n": n})
    assert r.status_code == 200, r.text
    message_id: str = r.json()["message_id"]
    return message_id


async def _statuses(db: Database, project_id: int) -> dict[str, str]:
    async with db.session() as s:
        rows = await s.execute(
            select(CodeDocument.file_path, CodeDocument.status).where(
                CodeDocument.project_id == project_id
            )
        )
        return {path: status for path, status in rows}


async def test_uploads_during_a_redis_outage_are_processed_when_it_returns(
    db: Database, jobs_settings: Settings, tmp_path: Path
) -> None:
    """Redis down: uploads still answer 201 (no request waits on Redis); when Redis comes
    back (empty: it keeps nothing on disk), every upload is processed with no manual step."""
    with throwaway_redis() as rd:
        settings = jobs_settings.model_copy(update={"redis_url": rd.url})
        owner = await make_user(db)
        project_id = await make_project(db, {owner: ProjectRole.OWNER})
        headers = auth_headers(owner, settings)
        workers = Workers(settings, tmp_path)
        app = create_app(settings)
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
            ):
                await workers.start(threads=2)
                r = await upload(c, project_id, headers, [("src/before.py", PY % (0, 0, 0))])
                assert r.status_code == 201, r.text

                async def before_indexed() -> bool:
                    return (await _statuses(db, project_id)).get("src/before.py") == "searchable"

                await wait_for(before_indexed, 90, "the first upload to be indexed")

                await asyncio.to_thread(rd.stop)
                codes = []
                for i in range(1, 6):
                    r = await upload(c, project_id, headers, [(f"src/m{i}.py", PY % (i, i, i))])
                    codes.append(r.status_code)
                    listing = await c.get(f"/api/v1/projects/{project_id}/files", headers=headers)
                    assert listing.status_code < 500, listing.text
                assert codes == [201] * 5
                async with db.session() as s:
                    pending = await s.scalar(
                        select(func.count()).select_from(Job).where(Job.send_at.is_not(None))
                    )
                assert pending == 5  # committed with their uploads, waiting in the outbox

                await asyncio.to_thread(rd.start)
                returned = time.monotonic()

                async def all_indexed() -> bool:
                    statuses = await _statuses(db, project_id)
                    return len(statuses) == 6 and set(statuses.values()) == {"searchable"}

                await wait_for(all_indexed, 120, "every upload to be indexed after Redis")
                print(f"\nall uploads indexed {time.monotonic() - returned:.1f}s after Redis")
            async with db.session() as s:
                jobs = (await s.scalars(select(Job))).all()
            assert {j.status for j in jobs} == {"succeeded"}
            assert all(j.send_at is None for j in jobs)
        finally:
            workers.stop_all()


def _dead_letter(settings: Settings, queue: str, message_id: str) -> None:
    """What Dramatiq's nack does to a message whose retries ran out (its Lua script: ZADD to
    `<queue>.XQ`, HSET the encoded message in `<queue>.XQ.msgs`), for a job whose worker
    never got to record it (its database write failed, then the process died)."""
    from dramatiq.message import Message

    message: Message[Any] = Message(
        queue_name=queue,
        actor_name="probe.broken",
        args=(4,),
        kwargs={},
        options={"retries": 3, "traceback": "Traceback...\nRuntimeError: broken 4 on purpose"},
        message_id=message_id,
    )
    client = redis.Redis.from_url(settings.redis_url or "")
    try:
        xq = key(settings, "dramatiq", f"{queue}.XQ")
        client.zadd(xq, {"redis-id-1": int(time.time() * 1000) + 1000})
        client.hset(xq + ".msgs", "redis-id-1", message.encode())
    finally:
        client.close()


async def test_dead_lettered_message_marks_its_job_dead_and_an_admin_retries_it(
    jobs_client: httpx.AsyncClient,
    db: Database,
    probes: Probes,
    workers: Workers,
    jobs_settings: Settings,
) -> None:
    message_id = await _send(jobs_client, "probe.broken", 4)
    job = await wait_for(lambda: _sent(db, message_id), what="the message to be sent")
    assert job.status == "queued"
    _dead_letter(jobs_settings, "default", message_id)

    job = await wait_status(db, message_id, "dead", timeout=60)
    assert job.last_error == "RuntimeError: broken 4 on purpose"
    assert job.finished_at is not None

    async def swept() -> bool:
        client = redis.Redis.from_url(jobs_settings.redis_url or "")
        try:
            return client.zcard(key(jobs_settings, "dramatiq", "default.XQ")) == 0
        finally:
            client.close()

    await wait_for(swept, what="the dead letter to be dropped once recorded")

    admin = await create_user(db, is_admin=True)
    await probes.set("fix", 4)
    r = await jobs_client.post(
        f"/api/v1/admin/jobs/{job.id}/retry", headers=auth_headers(admin, jobs_settings)
    )
    assert r.status_code == 200 and r.json()["status"] == "queued"
    await workers.start()
    job = await wait_status(db, message_id, "succeeded", timeout=90)
    assert await probes.done() == [4]


async def _sent(db: Database, message_id: str) -> Job | None:
    job = await get_job(db, message_id)
    return job if job is not None and job.send_at is None else None


@pytest.fixture
def no_broker_redelivery(jobs_settings: Settings) -> Settings:
    """The broker itself never redelivers a dead worker's messages here: what brings the job
    back is the lease and the reaper alone."""
    return jobs_settings.model_copy(update={"jobs_broker_heartbeat_timeout_ms": 3_600_000})


async def test_running_job_of_a_sigkilled_worker_is_reclaimed_by_its_lease(
    db: Database, probes: Probes, no_broker_redelivery: Settings, tmp_path: Path
) -> None:
    settings = no_broker_redelivery
    app: FastAPI = create_app(settings)
    add_enqueue_route(app)
    workers = Workers(settings, tmp_path)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            first = await workers.start(threads=1)
            message_id = await _send(c, "probe.wait", 1)
            await wait_for(probes.started, what="the job to start")
            job = await wait_status(db, message_id, "running")
            assert job.lease_until is not None and job.worker_id is not None
            assert job.worker_id.endswith(f":{first.pid}")

            first.kill()
            await probes.set("gate", 1)
            await workers.start(threads=1)
            job = await wait_status(db, message_id, "succeeded", timeout=120)
        assert job.attempts == 2
        assert await probes.started() == [1, 1]
        assert await probes.done() == [1]
    finally:
        workers.stop_all()


async def test_admin_cancels_and_retries_a_running_job(
    jobs_client: httpx.AsyncClient,
    db: Database,
    probes: Probes,
    workers: Workers,
    jobs_settings: Settings,
) -> None:
    worker = await workers.start(threads=1)
    h = auth_headers(await create_user(db, is_admin=True), jobs_settings)

    # Cancel while running: the attempt is aborted, the row stays `cancelled`.
    cancelled_id = await _send(jobs_client, "probe.wait", 1)
    job = await wait_status(db, cancelled_id, "running")
    r = await jobs_client.post(f"/api/v1/admin/jobs/{job.id}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    try:
        await wait_for(lambda: _logged(worker.output(), f"{cancelled_id} (probe.wait) aborted"), 60)
    except AssertionError:
        raise AssertionError("no abort:\n" + worker.output()[-6000:]) from None

    # The single worker thread is free again: it runs the next job.
    other = await _send(jobs_client, "probe.record", 2)
    await wait_status(db, other, "succeeded")

    # Retry while running: the attempt is aborted and a new one runs to the end.
    retried_id = await _send(jobs_client, "probe.wait", 3)
    job = await wait_status(db, retried_id, "running")
    assert job.attempts == 1
    r = await jobs_client.post(f"/api/v1/admin/jobs/{job.id}/retry", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "queued"

    async def second_attempt() -> bool:
        j = await get_job(db, retried_id)
        return j is not None and j.status == "running" and j.attempts == 2

    await wait_for(second_attempt, 60, "the retried job's second attempt")
    await probes.set("gate", 3)
    job = await wait_status(db, retried_id, "succeeded")
    assert job.attempts == 2
    assert await probes.done() == [2, 3]  # the cancelled one never finished

    job = await get_job(db, cancelled_id)
    assert job is not None and job.status == "cancelled" and job.attempts == 1


async def _logged(text: str, needle: str) -> bool:
    return needle in text


async def test_requeue_stuck_works_on_the_embedded_default(tmp_path: Path) -> None:
    """SQLite and no REDIS_URL: the command needs only the database (it used to fail with
    `REDIS_URL is not set`)."""
    from datetime import timedelta

    from codeatlas.db import migrate
    from codeatlas.db.base import utcnow
    from tests.conftest import build_settings

    settings = build_settings(f"sqlite+aiosqlite:///{tmp_path / 'emb.db'}", tmp_path)
    await asyncio.to_thread(migrate.upgrade, settings)
    db = Database(settings)
    try:
        async with db.session() as s, atomic(s):
            job = Job(
                message_id="stuck-embedded",
                actor="code.process_file",
                queue="code.parse",
                args=[1],
                kwargs={},
                args_summary="1",
                status="queued",
                attempts=0,
                progress=0,
            )
            s.add(job)
            await s.flush()
            job.updated_at = utcnow() - timedelta(hours=2)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
        env.update(DATABASE_URL=settings.resolved_database_url, DATA_DIR=str(tmp_path), ENV="test")
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "codeatlas", "jobs", "requeue-stuck", "--older-than", "60"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "stuck-embedded" in result.stdout and "1 job(s) re-queued" in result.stdout
        async with db.session() as s:
            row = await s.scalar(select(Job).where(Job.message_id == "stuck-embedded"))
        assert row is not None and row.status == "queued" and row.send_at is not None
        assert row.send_seq == 1
    finally:
        await db.dispose()


async def test_a_job_committed_without_an_api_leaves_through_a_workers_relay(
    db: Database, probes: Probes, workers: Workers, jobs_settings: Settings
) -> None:
    """No API process runs here: the job committed by this session (as an actor's follow-up
    job would be) is sent by the worker process's own relay."""
    await workers.start()
    async with db.session() as s, atomic(s):
        job = enqueue(s, "probe.record", 77, settings=jobs_settings)
    await wait_status(db, job.message_id, "succeeded")
    assert await probes.done() == [77]
