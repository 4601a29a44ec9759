"""Events of background work, sent through the event bus (:mod:`codeatlas.ws.events`).

``document.indexed`` / ``document.failed`` go to every member of the document's project;
``job.progress`` (a job started, reported progress or finished) goes to the user who caused
the job. Each carries the request id of the request that enqueued the job (2-A): the job
runs under it (:class:`codeatlas.jobs.middleware.JobContext`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from codeatlas.settings import Settings
from codeatlas.ws.events import publish_event, user_channel

__all__ = ["publish_job_progress", "publish_to_users", "user_channel"]

logger = logging.getLogger(__name__)


async def publish_to_users(
    client: aioredis.Redis | None,
    settings: Settings,
    user_ids: Iterable[int],
    event_type: str,
    **fields: Any,
) -> None:
    """Best effort: an event lost to a Redis hiccup must not fail the job that emits it."""
    if client is None:
        return
    for user_id in sorted(set(user_ids)):
        try:
            await publish_event(client, user_id, event_type, dict(fields), settings=settings)
        except (RedisError, OSError) as exc:
            logger.warning("event %s for user %s not published: %s", event_type, user_id, exc)
            return


async def publish_job_progress(
    client: aioredis.Redis | None, settings: Settings, job: dict[str, Any]
) -> None:
    """``job.progress`` to the job's user (jobs nobody asked for, e.g. a CLI reindex, go
    nowhere); ``job`` holds the row's public fields."""
    user_id = job.get("user_id")
    if client is None or user_id is None:
        return
    data = {k: v for k, v in job.items() if k not in ("user_id", "request_id")}
    try:
        await publish_event(
            client,
            user_id,
            "job.progress",
            data,
            request_id=job.get("request_id"),
            settings=settings,
        )
    except (RedisError, OSError) as exc:
        logger.warning("job.progress of job %s not published: %s", job.get("job_id"), exc)
