"""render-svc: the separate rendering process (``codeatlas render-svc``), 4-A.

A small FastAPI app around the same renderer core the API uses in-process:
``POST /render/markdown`` (a :class:`RenderRequest` in, a :class:`RenderResult` out),
``/health/live`` and ``/health/ready``, the same error envelope and X-Request-ID handling as
the API. It keeps no state (the API caches), needs no database and no Redis, and scales with
``--workers`` (rendering is CPU-bound Python, so processes, not threads, add throughput).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import APIRouter, FastAPI, Request

from codeatlas import __version__
from codeatlas.core.context import is_valid_request_id, new_request_id
from codeatlas.errors import UnhandledErrorMiddleware, install_error_handlers, responses
from codeatlas.health.registry import HealthRegistry
from codeatlas.health.router import router as health_router
from codeatlas.rendering.bodylimit import BoundedBodyRoute, too_large
from codeatlas.rendering.complexity import ComplexityLimits, check_complexity
from codeatlas.rendering.core import RenderOptions, RenderResult, RenderTooLarge
from codeatlas.rendering.schemas import RenderRequest
from codeatlas.rendering.service import LocalRenderer, check_input_size, render_limits
from codeatlas.settings import Settings, get_settings

router = APIRouter(tags=["render"], route_class=BoundedBodyRoute)

_PROBE = RenderOptions(math=False, mermaid=False, linkify=False)


@router.post("/render/markdown", responses=responses(413, 422, 500))
async def render_markdown(body: RenderRequest, request: Request) -> RenderResult:
    """Render Markdown to sanitised HTML with highlighted code.

    The same limits as the API: 413 over the size limit, 422 MARKDOWN_TOO_COMPLEX over the
    complexity limits (issue 11; the API checks first, this guards direct callers).
    """
    renderer: LocalRenderer = request.app.state.renderer
    settings: Settings = request.app.state.settings
    try:
        check_input_size(body.markdown, renderer.max_bytes)
        check_complexity(body.markdown, ComplexityLimits.from_settings(settings))
        return await renderer.render(body.markdown, body.options)
    except RenderTooLarge as exc:
        raise too_large(exc) from exc


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    renderer = LocalRenderer(settings.render_threads, render_limits(settings))
    app.state.renderer = renderer

    async def check_renderer() -> dict[str, Any]:
        # A real render through the pool: a wedged or saturated pool fails the probe (within
        # HEALTH_CHECK_TIMEOUT), which takes this replica out of rotation.
        result = await renderer.render("`ok`", _PROBE)
        if "<code>ok</code>" not in result.html:
            raise RuntimeError("renderer produced unexpected output")
        return {"threads": settings.render_threads}

    app.state.health.register("renderer", check_renderer)
    try:
        yield
    finally:
        renderer.close()


def _operation_id(route: Any) -> str:
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


def create_svc_app(settings: Settings | None = None) -> FastAPI:
    """The render-svc ASGI app (uvicorn factory: ``codeatlas.rendering.svc:create_svc_app``)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="CodeAtlas render-svc",
        version=__version__,
        lifespan=_lifespan,
        redoc_url=None,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.health = HealthRegistry(settings.health_check_timeout)
    install_error_handlers(app)
    app.add_middleware(UnhandledErrorMiddleware)
    if not settings.disable_correlation_id:
        # The API forwards its X-Request-ID, so one id ties both processes' log lines.
        app.add_middleware(
            CorrelationIdMiddleware,
            header_name="X-Request-ID",
            generator=new_request_id,
            validator=is_valid_request_id,
            update_request_header=True,
        )
    app.include_router(health_router)
    app.include_router(router)
    return app
