"""Start-up and shut-down of the rendering domain: called once by the app's lifespan.

Creates the :class:`RenderingService` (``app.state.rendering``) with the Redis cache when
Redis is configured, and registers the ``render`` readiness check only when RENDER_ENDPOINT
is set: without it there is no dependency to report on.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import FastAPI

from codeatlas.rendering.service import RenderingService
from codeatlas.settings import Settings


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    """Create this domain's long-lived resources; register their shut-down on `stack`."""
    settings: Settings = app.state.settings
    service = RenderingService.from_settings(settings, getattr(app.state, "redis", None))
    app.state.rendering = service
    stack.push_async_callback(service.aclose)
    if service.remote is not None:
        app.state.health.register("render", service.readiness)
