"""The embedded default: `codeatlas serve` runs Dramatiq worker threads in its own process."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from codeatlas.db.session import Database
from codeatlas.jobs.config import DEFAULT_EMBEDDED_WORKER_THREADS
from codeatlas.settings import Settings
from tests.jobs.conftest import FAST, Probes, add_enqueue_route, wait_status


async def test_embedded_worker_threads_process_jobs_and_heartbeat(
    app_factory: Any, db: Database, probes: Probes
) -> None:
    app: FastAPI = app_factory(**{**FAST, "embedded_worker_threads": 2})
    add_enqueue_route(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        ready = await c.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["workers"]["detail"].startswith("1 worker process(es), 2")
        r = await c.post(
            "/api/v1/_test/enqueue",
            params={"actor": "probe.flaky", "n": 3},
            headers={"X-Request-ID": "req-embedded-0001"},
        )
        job = await wait_status(db, r.json()["message_id"], "succeeded")
    assert job.attempts == 3 and job.request_id == "req-embedded-0001"
    assert await probes.done() == [3]


def test_embedded_threads_default_follows_redis_url() -> None:
    assert Settings(redis_url=None).in_process_worker_threads == DEFAULT_EMBEDDED_WORKER_THREADS
    assert Settings(redis_url="redis://127.0.0.1:6379/0").in_process_worker_threads == 0
    explicit = Settings(redis_url="redis://127.0.0.1:6379/0", embedded_worker_threads=3)
    assert explicit.in_process_worker_threads == 3
    assert Settings(use_sync_background=True).in_process_worker_threads == 0
