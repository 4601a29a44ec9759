"""2-B: readiness follows reality within seconds (issue 10, finding 9).

With the default heartbeat timings (WORKER_HEARTBEAT_INTERVAL=1, _STALE_AFTER=4), a real
`codeatlas worker` process and a Redis of the test's own: readiness turns green again within
seconds of Redis coming back empty (the worker rewrites its heartbeat at once), turns red
within seconds of the worker being SIGKILLed, and at once when a worker stops cleanly (it
deletes its key). Bounds are twice the target, for a busy machine; the measured times are
printed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from codeatlas.app import create_app
from codeatlas.db import migrate
from codeatlas.settings import Settings
from tests.conftest import build_settings
from tests.jobs.conftest import Workers
from tests.platform.throwaway import throwaway_redis

pytestmark = pytest.mark.slow

TARGET = 5.0


async def _seconds_until(client: httpx.AsyncClient, want: int, failed: str | None = None) -> float:
    started = time.monotonic()
    while True:
        r = await client.get("/health/ready")
        if r.status_code == want and (
            failed is None or failed in r.json().get("details", {}).get("failed", [])
        ):
            return time.monotonic() - started
        assert time.monotonic() - started < 6 * TARGET, r.text
        await asyncio.sleep(0.1)


async def _settings(tmp_path: Path, redis_url: str) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ready.db'}"
    await asyncio.to_thread(migrate.upgrade, build_settings(url, tmp_path))
    return build_settings(
        url,
        tmp_path,
        redis_url=redis_url,
        redis_key_prefix="ready:",
        jobs_workers_required=True,
        embedded_worker_threads=0,
        knowledge_embed_code=False,
    )


async def test_readiness_tracks_redis_and_worker_within_seconds(tmp_path: Path) -> None:
    with throwaway_redis() as rd:
        settings = await _settings(tmp_path, rd.url)
        assert settings.worker_heartbeat_interval == 1.0  # the defaults are what is tested
        assert settings.worker_heartbeat_stale_after == 4.0
        pool = Workers(settings, tmp_path)
        app = create_app(settings)
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
            ):
                worker = await pool.start(threads=1)
                await _seconds_until(c, 200)

                await asyncio.to_thread(rd.stop)
                down = await _seconds_until(c, 503, "redis")
                await asyncio.to_thread(rd.start)  # back, and empty: no heartbeat key at all
                back = await _seconds_until(c, 200)
                print(f"redis down noticed in {down:.1f}s, ready {back:.1f}s after it returned")
                assert back <= 2 * TARGET

                worker.kill()  # SIGKILL: no chance to delete its key
                dead = await _seconds_until(c, 503, "workers")
                print(f"SIGKILLed worker noticed in {dead:.1f}s")
                assert dead <= 2 * TARGET

                worker = await pool.start(threads=1)
                await _seconds_until(c, 200)
                await asyncio.to_thread(worker.stop)  # SIGTERM: it deletes its key on the way out
                stopped = await _seconds_until(c, 503, "workers")
                print(f"cleanly stopped worker noticed in {stopped:.1f}s")
                assert stopped <= TARGET
        finally:
            pool.stop_all()
