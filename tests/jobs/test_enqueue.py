"""Jobs leave only after their transaction commits, carrying the request's id (6-B, 2-A)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from codeatlas.db.session import Database, atomic
from codeatlas.jobs.enqueue import enqueue
from codeatlas.models import Job
from tests.jobs.conftest import (
    FAST,
    Probes,
    add_enqueue_route,
    get_job,
    wait_for,
    wait_status,
)


async def _count_is(probes: Probes, n: int) -> bool:
    return await probes.queued_messages() == n


async def _sent(db: Database, message_id: str) -> Job | None:
    job = await get_job(db, message_id)
    return job if job is not None and job.send_at is None else None


async def test_committed_request_sends_one_message_with_its_request_id(
    jobs_client: httpx.AsyncClient, db: Database, probes: Probes
) -> None:
    rid = "req-commit-0001"
    r = await jobs_client.post(
        "/api/v1/_test/enqueue",
        params={"actor": "probe.record", "n": 1},
        headers={"X-Request-ID": rid},
    )
    assert r.status_code == 200, r.text
    job = await get_job(db, r.json()["message_id"])
    assert job is not None
    assert (job.status, job.attempts, job.request_id, job.project_id) == ("queued", 0, rid, 1001)
    assert job.args == [1] and job.actor == "probe.record"
    assert job.send_seq == 1
    # The relay, woken by the commit, sends it (no request waits on Redis).
    await wait_for(lambda: _count_is(probes, 1), what="the relay to send the message")
    job = await wait_for(lambda: _sent(db, job.message_id), what="send_at cleared")
    assert job.status == "queued"


async def test_rolled_back_request_sends_nothing(
    jobs_client: httpx.AsyncClient, db: Database, probes: Probes
) -> None:
    r = await jobs_client.post(
        "/api/v1/_test/enqueue", params={"actor": "probe.record", "n": 2, "fail": True}
    )
    assert r.status_code == 400
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Job)) == 0
    assert await probes.queued_messages() == 0


async def test_savepoint_rollback_drops_only_its_own_jobs(
    jobs_app: FastAPI, db: Database, probes: Probes
) -> None:
    async with db.session() as s, atomic(s):
        kept = enqueue(s, "probe.record", 10)
        with pytest.raises(RuntimeError):
            async with atomic(s):  # a SAVEPOINT
                enqueue(s, "probe.record", 11)
                raise RuntimeError("undo the savepoint")
        async with atomic(s):
            nested_kept = enqueue(s, "probe.record", 12)
        # Nothing leaves before the outer transaction commits, savepoint or not.
        await asyncio.sleep(0.5)
        assert await probes.queued_messages() == 0
    await wait_for(lambda: _count_is(probes, 2), what="the relay to send both")
    async with db.session() as s:
        ids = set((await s.scalars(select(Job.message_id))).all())
    assert ids == {kept.message_id, nested_kept.message_id}


async def test_outer_rollback_drops_jobs_of_committed_savepoints(
    jobs_app: FastAPI, db: Database, probes: Probes
) -> None:
    with pytest.raises(RuntimeError):
        async with db.session() as s, atomic(s):
            async with atomic(s):
                enqueue(s, "probe.record", 20)
            raise RuntimeError("undo everything")
    assert await probes.queued_messages() == 0


async def test_unknown_actor_is_refused_at_enqueue(jobs_app: FastAPI, db: Database) -> None:
    async with db.session() as s, atomic(s):
        with pytest.raises(ValueError, match="no actor named"):
            enqueue(s, "probe.nothing", 1)


async def test_sync_background_runs_jobs_inline_after_commit(
    app_factory, db: Database, probes: Probes
) -> None:  # type: ignore[no-untyped-def]
    app: FastAPI = app_factory(**FAST, use_sync_background=True)
    add_enqueue_route(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        ok = await c.post("/api/v1/_test/enqueue", params={"actor": "probe.record", "n": 30})
        failed = await c.post(
            "/api/v1/_test/enqueue", params={"actor": "probe.record", "n": 31, "fail": True}
        )
        await app.state.jobs_dispatcher.drain()
        assert "workers" not in app.state.health.names  # nothing to wait for
    assert ok.status_code == 200 and failed.status_code == 400
    job = await wait_status(db, ok.json()["message_id"], "succeeded", timeout=10)
    assert job.attempts == 1 and job.progress == 100
    assert await probes.done() == [30]
    assert await probes.queued_messages() == 0


def test_sync_background_is_refused_in_production() -> None:
    from codeatlas.settings import Settings

    with pytest.raises(ValueError, match="USE_SYNC_BACKGROUND"):
        Settings(env="production", secret_key="x" * 40, use_sync_background=True)
