"""Progress events of background work, published on a Redis channel per user.

Channel ``<REDIS_KEY_PREFIX>events:user:<user_id>``; each message is one JSON object with
``type`` (e.g. ``document.indexed``), ``request_id`` (the request that caused the work, 2-A)
and the event's fields. The WebSocket layer subscribes to these channels; until a client
listens, Redis simply drops them (pub/sub keeps nothing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from codeatlas.core.context import get_request_id
from codeatlas.core.redis_client import key
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


def user_channel(settings: Settings, user_id: int) -> str:
    return key(settings, "events", "user", user_id)


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
    payload = json.dumps({"type": event_type, "request_id": get_request_id(), **fields})
    try:
        async with client.pipeline(transaction=False) as pipe:
            for user_id in set(user_ids):
                pipe.publish(user_channel(settings, user_id), payload)
            await pipe.execute()
    except RedisError as exc:
        logger.warning("event %s not published: %s", event_type, exc)
