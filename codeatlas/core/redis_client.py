"""The process's Redis client: one lazily-connected ``redis.asyncio.Redis`` from REDIS_URL.

Everything that needs Redis (rate limiting, caches, heartbeats, pub/sub) takes it from
``app.state.redis`` through :func:`get_redis`; ``None`` means no Redis is configured and each
user falls back in its own documented way.
"""

from __future__ import annotations

import logging
import weakref
from contextlib import AsyncExitStack
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Request

from codeatlas.settings import Settings, get_settings

logger = logging.getLogger(__name__)

# The settings each client was made with, so code handed only a client (the event bus) finds
# its key prefix; weak, so a closed client's app is not kept alive.
_client_settings: weakref.WeakKeyDictionary[aioredis.Redis, Settings] = weakref.WeakKeyDictionary()


def create_redis(settings: Settings) -> aioredis.Redis | None:
    """A client for REDIS_URL (no connection is made until the first command)."""
    if not settings.redis_url:
        return None
    client = aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
        decode_responses=False,
    )
    _client_settings[client] = settings
    return client


def settings_for(client: aioredis.Redis) -> Settings:
    """The settings a client was created with here; the process's settings otherwise."""
    return _client_settings.get(client) or get_settings()


def key(settings: Settings, *parts: object) -> str:
    """A namespaced key: every key CodeAtlas writes starts with REDIS_KEY_PREFIX."""
    return settings.redis_key_prefix + ":".join(str(p) for p in parts)


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    settings: Settings = app.state.settings
    client = create_redis(settings)
    app.state.redis = client
    if client is None:
        logger.warning("REDIS_URL is not set: Redis-backed features use in-process fallbacks")
        return
    stack.push_async_callback(client.aclose)

    async def check_redis() -> str:
        await client.ping()
        return "pong"

    app.state.health.register("redis", check_redis)


def get_redis(request: Request) -> aioredis.Redis | None:
    return getattr(request.app.state, "redis", None)


RedisDep = Annotated[aioredis.Redis | None, Depends(get_redis)]
