"""The application factory: middleware, error handlers, routers, start-up and shut-down."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from sqlalchemy import text

from codeatlas import __version__
from codeatlas.api import build_api_router
from codeatlas.core.context import is_valid_request_id, new_request_id
from codeatlas.core.ratelimit import install_rate_limiting
from codeatlas.db.session import Database
from codeatlas.errors import UnhandledErrorMiddleware, install_error_handlers
from codeatlas.health.registry import HealthRegistry
from codeatlas.health.router import router as health_router
from codeatlas.jobs.page import router as jobs_page_router
from codeatlas.security.docs import router as swagger_router
from codeatlas.security.headers import install_security_headers
from codeatlas.settings import Settings, get_settings
from codeatlas.versioning import API_PREFIX, LegacyApiMiddleware
from codeatlas.web.pages import install as install_web_app

logger = logging.getLogger(__name__)

StartupHook = Callable[[FastAPI, AsyncExitStack], Awaitable[None]]

# Each component's start-up hook, in order: it gets the app and an exit stack for its
# shut-down. Redis comes first because the others use it.
LIFECYCLE_MODULES = [
    "codeatlas.core.redis_client",
    "codeatlas.core.ratelimit",
    "codeatlas.auth.lifecycle",
    "codeatlas.code.lifecycle",
    "codeatlas.jobs.lifecycle",
    "codeatlas.rendering.lifecycle",
    "codeatlas.knowledge.lifecycle",
    "codeatlas.ws.lifecycle",
    "codeatlas.llm.lifecycle",
    "codeatlas.chat.lifecycle",
]


def _init_sentry(settings: Settings) -> None:
    from codeatlas.core.sentry import init_sentry  # 3-B: request_id tag, no PII, no bodies

    init_sentry(settings.sentry_dsn, environment=settings.env, release=__version__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    db = Database(settings)
    app.state.db = db

    async def check_db() -> str:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return db.dialect

    app.state.health.register("db", check_db)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(db.dispose)
        for module in LIFECYCLE_MODULES:
            startup: StartupHook = importlib.import_module(module).startup
            await startup(app, stack)
        logger.info("codeatlas %s ready (database: %s)", __version__, db.dialect)
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    _init_sentry(settings)
    app = FastAPI(
        title="CodeAtlas",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # self-hosted Swagger UI under a strict CSP: codeatlas/security/docs.py
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.health = HealthRegistry(settings.health_check_timeout, settings.health_min_components)
    install_error_handlers(app)
    install_rate_limiting(app)  # SlowAPI's 429 in the envelope, with Retry-After

    # Middleware: added innermost first; the correlation id is the outermost layer.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(LegacyApiMiddleware, sunset=settings.api_legacy_sunset)
    if not settings.disable_correlation_id:
        app.add_middleware(
            CorrelationIdMiddleware,
            header_name="X-Request-ID",
            generator=new_request_id,
            validator=is_valid_request_id,
            update_request_header=True,
        )

    install_security_headers(app, settings)  # outermost: every answer carries the headers

    app.include_router(health_router)
    app.include_router(swagger_router)  # /api/v1/docs, outside the OpenAPI document
    app.include_router(jobs_page_router)  # /admin/jobs: HTML, outside /api/v1
    app.include_router(build_api_router())
    install_web_app(app)  # the browser app: /, its pages and /static
    return app


def _operation_id(route: Any) -> str:
    """Operation ids `{tag}-{name}` give generated clients clean method names."""
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"
