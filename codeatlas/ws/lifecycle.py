"""Start-up of the WebSocket domain: the process's event hub (needs Redis)."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from fastapi import FastAPI

from codeatlas.settings import Settings
from codeatlas.ws.hub import EventHub

logger = logging.getLogger(__name__)


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    settings: Settings = app.state.settings
    redis = getattr(app.state, "redis", None)
    if redis is None or not settings.redis_url:
        app.state.ws_hub = None
        logger.warning("no Redis: /api/v1/ws closes with 1011 EVENTS_UNAVAILABLE")
        return
    hub = EventHub(settings, redis)
    await hub.start()
    app.state.ws_hub = hub
    stack.push_async_callback(hub.stop)
