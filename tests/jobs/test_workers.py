"""Real `codeatlas worker` processes: crash recovery, retries, dead jobs, request ids,
cancellation and the `workers` readiness check (6-B, 2-A, 2-B)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from codeatlas.db.session import Database
from codeatlas.settings import Settings
from tests.factories import auth_headers, create_user
from tests.jobs.conftest import Probes, Workers, get_job, wait_for, wait_status

pytestmark = pytest.mark.slow


async def _send(client: httpx.AsyncClient, actor: str, n: int, rid: str | None = None) -> str:
    headers = {"X-Request-ID": rid} if rid else {}
    r = await client.post("/api/v1/_test/enqueue", params={"actor": actor, "n": n}, headers=headers)
    assert r.status_code == 200, r.text
    message_id: str = r.json()["message_id"]
    return message_id


async def test_job_of_a_sigkilled_worker_is_finished_by_another(
    jobs_client: httpx.AsyncClient, db: Database, probes: Probes, workers: Workers
) -> None:
    """The DoD: kill the worker mid-job; a second worker picks it up and finishes it."""
    first = await workers.start(threads=1)
    message_id = await _send(jobs_client, "probe.wait", 1)
    await wait_for(probes.started, what="the job to start on the first worker")
    job = await wait_status(db, message_id, "running")
    assert job.attempts == 1

    first.kill()  # SIGKILL: no shutdown, no requeue, no ack
    killed_at = time.monotonic()
    await probes.set("gate", 1)  # the next attempt may finish
    await workers.start(threads=1)

    job = await wait_status(db, message_id, "succeeded", timeout=120)
    recovered_in = time.monotonic() - killed_at
    print(f"\nredelivered and finished {recovered_in:.1f}s after SIGKILL")
    assert job.attempts == 2
    assert await probes.started() == [1, 1]
    assert await probes.done() == [1]  # the killed attempt never finished

    # A second copy (the broker's redelivery or the reaper's re-queue, whichever lost the
    # race) is consumed and skipped, not run: nothing stays behind.
    async def drained() -> bool:
        return await probes.queued_messages() == 0

    await wait_for(drained, what="the duplicate copy to be consumed")
    job = await wait_status(db, message_id, "succeeded")
    assert job.attempts == 2 and await probes.done() == [1]


async def test_failing_twice_succeeds_on_the_third_attempt(
    jobs_client: httpx.AsyncClient, db: Database, probes: Probes, workers: Workers
) -> None:
    await workers.start()
    message_id = await _send(jobs_client, "probe.flaky", 7)
    job = await wait_status(db, message_id, "succeeded")
    assert job.attempts == 3
    assert job.last_error == "RuntimeError: flaky failure 2"  # kept from the failed attempts
    assert await probes.done() == [7]


async def test_always_failing_job_ends_dead_and_an_admin_can_retry_it(
    jobs_client: httpx.AsyncClient,
    db: Database,
    probes: Probes,
    workers: Workers,
    jobs_settings: Settings,
) -> None:
    settings = jobs_settings
    await workers.start()
    message_id = await _send(jobs_client, "probe.broken", 9)
    job = await wait_status(db, message_id, "dead")
    assert job.attempts == 3  # max_retries=2: one attempt plus two retries
    assert job.last_error == "RuntimeError: broken 9 on purpose"
    assert job.finished_at is not None

    admin = await create_user(db, is_admin=True)
    member = await create_user(db)
    url = f"/api/v1/admin/jobs/{job.id}/retry"
    assert (await jobs_client.post(url)).status_code == 401
    forbidden = await jobs_client.post(url, headers=auth_headers(member, settings))
    assert forbidden.status_code == 403 and forbidden.json()["error_code"] == "FORBIDDEN"

    await probes.set("fix", 9)
    r = await jobs_client.post(url, headers=auth_headers(admin, settings))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued"
    job = await wait_status(db, message_id, "succeeded")
    assert job.attempts == 4 and job.progress == 100
    assert await probes.done() == [9]
    again = await jobs_client.post(url, headers=auth_headers(admin, settings))
    assert again.status_code == 409 and again.json()["error_code"] == "JOB_NOT_RETRYABLE"


async def test_permanent_error_fails_without_retries(
    jobs_client: httpx.AsyncClient, db: Database, workers: Workers
) -> None:
    await workers.start()
    message_id = await _send(jobs_client, "probe.permanent", 3)
    job = await wait_status(db, message_id, "failed")
    assert job.attempts == 1
    assert job.last_error == "NotWorthRetrying: permanent 3"


async def test_request_id_appears_in_the_workers_log_lines_for_its_job(
    jobs_client: httpx.AsyncClient, db: Database, probes: Probes, workers: Workers
) -> None:
    worker = await workers.start()
    rid = "req-trace-7f3a9c01"
    message_id = await _send(jobs_client, "probe.record", 5, rid=rid)
    other = await _send(jobs_client, "probe.record", 6, rid="req-other-00000002")
    await wait_status(db, message_id, "succeeded")
    await wait_status(db, other, "succeeded")
    lines = worker.output().splitlines()
    [line] = [ln for ln in lines if "probe record 5 ran" in ln]
    assert f"| INFO | {rid} | codeatlas.tests.probe | probe record 5 ran" in line
    [line] = [ln for ln in lines if "probe record 6 ran" in ln]
    assert "| req-other-00000002 |" in line


async def test_cancelled_job_is_skipped_when_delivered(
    jobs_client: httpx.AsyncClient,
    db: Database,
    probes: Probes,
    workers: Workers,
    jobs_settings: Settings,
) -> None:
    settings = jobs_settings
    admin = await create_user(db, is_admin=True)
    message_id = await _send(jobs_client, "probe.record", 8)
    job = await get_job(db, message_id)
    assert job is not None and job.status == "queued"
    r = await jobs_client.post(
        f"/api/v1/admin/jobs/{job.id}/cancel", headers=auth_headers(admin, settings)
    )
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    await workers.start()

    async def consumed() -> bool:
        return await probes.queued_messages() == 0

    await wait_for(consumed, what="the cancelled message to be consumed")
    job = await get_job(db, message_id)
    assert job is not None and (job.status, job.attempts) == ("cancelled", 0)
    assert await probes.done() == []


async def test_readiness_follows_worker_heartbeats(
    jobs_client: httpx.AsyncClient, workers: Workers
) -> None:
    async def ready_status() -> int:
        return (await jobs_client.get("/health/ready")).status_code

    r = await jobs_client.get("/health/ready")
    assert r.status_code == 503 and r.json()["details"]["failed"] == ["workers"]

    first = await workers.start()
    second = await workers.start()
    await wait_for(lambda: _is(ready_status, 200), what="ready with two workers")
    body = (await jobs_client.get("/health/ready")).json()
    assert body["checks"]["workers"]["detail"].startswith("2 worker process(es)")

    first.kill()  # one left: still ready
    assert await ready_status() == 200
    second.kill()  # none left: not ready once the last heartbeat is stale (2 s here)
    await wait_for(lambda: _is(ready_status, 503), what="503 after killing every worker")
    r = await jobs_client.get("/health/ready")
    assert r.json()["details"]["failed"] == ["workers"]
    assert "workers" in r.json()["message"]

    await workers.start()
    await wait_for(lambda: _is(ready_status, 200), what="ready again with a new worker")


async def _is(get: object, expected: int) -> bool:
    return await get() == expected  # type: ignore[operator,no-any-return]


async def test_supervisor_runs_processes_and_replaces_a_killed_one(
    jobs_client: httpx.AsyncClient, db: Database, workers: Workers, probes: Probes
) -> None:
    import os
    import signal

    from codeatlas.jobs.heartbeat import live_workers

    supervisor = await workers.start(threads=1, processes=2)
    client = probes.client

    async def pids() -> set[int]:
        return {b["pid"] for b in await live_workers(client, workers.settings)}

    before = await wait_for(lambda: _count(pids, 2), what="two worker processes")
    os.kill(next(iter(before)), signal.SIGKILL)
    after = await wait_for(
        lambda: _replaced(pids, before), timeout=60, what="a replacement worker process"
    )
    assert len(after) >= 2
    message_id = await _send(jobs_client, "probe.record", 4)
    await wait_status(db, message_id, "succeeded")
    supervisor.stop()
    assert supervisor.proc.returncode == 0


async def _count(get: object, n: int) -> set[int] | None:
    value: set[int] = await get()  # type: ignore[operator]
    return value if len(value) >= n else None


async def _replaced(get: object, before: set[int]) -> set[int] | None:
    value: set[int] = await get()  # type: ignore[operator]
    return value if len(value - before) >= 1 and len(value & before) >= 1 else None


async def test_time_limit_fails_the_attempt_and_the_job_ends_dead(
    jobs_client: httpx.AsyncClient, db: Database, probes: Probes, workers: Workers
) -> None:
    await workers.start()
    message_id = await _send(jobs_client, "probe.slow", 2)
    job = await wait_status(db, message_id, "dead")
    assert job.attempts == 2  # time_limit_ms=300, max_retries=1
    assert (job.last_error or "").startswith("TimeLimitExceeded")
    assert await probes.done() == []


async def test_default_broker_settings_redeliver_a_killed_workers_job_quickly(
    jobs_client: httpx.AsyncClient,
    db: Database,
    probes: Probes,
    jobs_settings: Settings,
    tmp_path: Path,
) -> None:
    """JOBS_BROKER_HEARTBEAT_TIMEOUT_MS / JOBS_BROKER_MAINTENANCE_CHANCE as shipped: about
    15 s here (Dramatiq's own defaults took minutes). The bound is generous on purpose; the
    measured numbers are in docs/benchmarks.md (benchmarks/jobs_pipeline.py)."""
    defaults = {
        name: Settings.model_fields[name].default
        for name in ("jobs_broker_heartbeat_timeout_ms", "jobs_broker_maintenance_chance")
    }
    pool = Workers(jobs_settings.model_copy(update=defaults), tmp_path)
    try:
        first = await pool.start(threads=1)
        message_id = await _send(jobs_client, "probe.wait", 3)
        await wait_status(db, message_id, "running")
        first.kill()
        killed_at = time.monotonic()
        await probes.set("gate", 3)
        await pool.start(threads=1)
        job = await wait_status(db, message_id, "succeeded", timeout=120)
        print(f"\ndefault settings: finished {time.monotonic() - killed_at:.1f}s after SIGKILL")
        assert job.attempts == 2
        assert time.monotonic() - killed_at < 60
    finally:
        pool.stop_all()
