"""Start-up of the WebSocket domain: the process's event publisher and hub (need Redis)."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from fastapi import FastAPI

from codeatlas.settings import Settings
from codeatlas.ws.events import EventBatcher
from codeatlas.ws.hub import EventHub

logger = logging.getLogger(__name__)


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    settings: Settings = app.state.settings
    redis = getattr(app.state, "redis", None)
    app.state.event_batcher = None
    if redis is not None:
        batcher = EventBatcher(redis, settings)
        app.state.event_batcher = batcher
        stack.push_async_callback(batcher.aclose)
    if redis is None or not settings.redis_url:
        app.state.ws_hub = None
        logger.warning("no Redis: /api/v1/ws closes with 1011 EVENTS_UNAVAILABLE")
        return
    hub = EventHub(settings, redis)
    await hub.start()
    app.state.ws_hub = hub
    stack.push_async_callback(hub.stop)
