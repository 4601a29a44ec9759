"""Values read when Prometheus scrapes: job states from the jobs table (the truth), worker
heartbeats from Redis, readiness per component, breaker states.

Reading them at scrape time (every 15-30 s) costs one grouped query and needs no background
task; each read is bounded by the readiness timeout, and a failing source leaves its gauges
as they were rather than failing the scrape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from codeatlas.metrics.registry import (
    BREAKER_STATE,
    COMPONENT_UP,
    JOBS,
    OUTBOX_BACKLOG,
    QUEUE_DEPTH,
    QUEUE_OLDEST_AGE,
    WORKERS_ALIVE,
)
from codeatlas.models.job import Job, JobStatus

logger = logging.getLogger(__name__)

ScrapeHook = Callable[[FastAPI], Awaitable[None]]
_BREAKER_VALUES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}


async def collect_jobs(app: FastAPI) -> None:
    db = app.state.db
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Job.actor, Job.status, func.count()).group_by(Job.actor, Job.status)
            )
        ).all()
        queued = (
            await session.execute(
                select(Job.queue, func.count(), func.min(Job.created_at))
                .where(Job.status == JobStatus.QUEUED.value)
                .group_by(Job.queue)
            )
        ).all()
        # The outbox: rows whose message is still to be handed to the broker.
        backlog = await session.scalar(
            select(func.count()).select_from(Job).where(Job.send_at.is_not(None))
        )
    OUTBOX_BACKLOG.set(backlog or 0)
    JOBS.clear()
    for actor, state, count in rows:
        JOBS.labels(actor, state).set(count)
    QUEUE_DEPTH.clear()
    QUEUE_OLDEST_AGE.clear()
    now = datetime.now(UTC)
    for queue, count, oldest in queued:
        QUEUE_DEPTH.labels(queue).set(count)
        if oldest is not None and oldest.tzinfo is None:  # SQLite returns naive UTC
            oldest = oldest.replace(tzinfo=UTC)
        QUEUE_OLDEST_AGE.labels(queue).set((now - oldest).total_seconds() if oldest else 0)


async def collect_workers(app: FastAPI) -> None:
    from codeatlas.jobs.heartbeat import live_workers

    client = getattr(app.state, "redis", None)
    if client is not None:
        WORKERS_ALIVE.set(len(await live_workers(client, app.state.settings)))


async def collect_readiness(app: FastAPI) -> None:
    for result in await app.state.health.run():
        COMPONENT_UP.labels(result.name).set(1 if result.ok else 0)


async def collect_breakers(app: FastAPI) -> None:
    service: Any = getattr(app.state, "rendering", None)
    # render-svc's breaker (4-A) and the render cache's own one (a dead Redis), when present.
    for part in (getattr(service, "remote", None), getattr(service, "cache", None)):
        breaker: Any = getattr(part, "breaker", None)
        if breaker is not None:
            state = getattr(breaker.state, "value", str(breaker.state))
            BREAKER_STATE.labels(breaker.name).set(_BREAKER_VALUES.get(str(state).lower(), 0))


DEFAULT_HOOKS: list[ScrapeHook] = [
    collect_jobs,
    collect_workers,
    collect_readiness,
    collect_breakers,
]


async def run_hooks(app: FastAPI, hooks: list[ScrapeHook], seconds: float) -> None:
    async def one(hook: ScrapeHook) -> None:
        try:
            await asyncio.wait_for(hook(app), seconds)
        except (TimeoutError, SQLAlchemyError, RedisError, OSError) as exc:
            # A source that is down leaves its gauges as they were; readiness reports it.
            logger.warning("metrics: %s failed: %s", getattr(hook, "__name__", hook), exc)

    await asyncio.gather(*(one(h) for h in hooks))
