"""The rendering API: Markdown → sanitised, highlighted HTML, and the highlight stylesheet."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from codeatlas.auth.deps import CurrentUser
from codeatlas.core.ratelimit import limiter, setting_limit
from codeatlas.errors import BadRequest, responses
from codeatlas.rendering.bodylimit import BoundedBodyRoute, too_large
from codeatlas.rendering.complexity import ComplexityLimits, check_complexity
from codeatlas.rendering.core import RenderResult, RenderTooLarge, stylesheet
from codeatlas.rendering.schemas import STYLE_PATTERN, RenderRequest
from codeatlas.rendering.service import RenderingService, check_input_size
from codeatlas.settings import Settings

router = APIRouter(prefix="/rendering", tags=["rendering"], route_class=BoundedBodyRoute)

RENDERER_HEADER = "X-Renderer"
CACHE_HEADER = "X-Render-Cache"


def get_rendering_service(request: Request) -> RenderingService:
    service: RenderingService = request.app.state.rendering
    return service


RenderingServiceDep = Annotated[RenderingService, Depends(get_rendering_service)]


@router.post(
    "/markdown",
    responses={
        **responses(401, 403, 413, 422, 429),
        200: {
            "headers": {
                RENDERER_HEADER: {
                    "description": "Which renderer answered: remote, local, local-fallback "
                    "(render-svc failing or its breaker open) or cache.",
                    "schema": {"type": "string"},
                },
                CACHE_HEADER: {
                    "description": "hit or miss",
                    "schema": {"type": "string"},
                },
            }
        },
    },
)
@limiter.limit(setting_limit("rate_limit_render"))
async def markdown(
    request: Request,
    body: RenderRequest,
    service: RenderingServiceDep,
    response: Response,
    user: CurrentUser,
) -> RenderResult:
    """Render Markdown to sanitised HTML with Pygments-highlighted code (4-A).

    Needs a signed-in user and is rate-limited (RATE_LIMIT_RENDER); input over the size
    limit gets 413, input over the complexity limits 422 MARKDOWN_TOO_COMPLEX (issue 11).
    Uses render-svc when `RENDER_ENDPOINT` is set and the in-process renderer otherwise or
    while render-svc is failing; results are cached by a hash of input and options.
    """
    settings: Settings = request.app.state.settings
    try:
        check_input_size(body.markdown, settings.render_max_input_bytes)  # 413 first: cheaper
        check_complexity(body.markdown, ComplexityLimits.from_settings(settings))
        outcome = await service.render(body.markdown, body.options)
    except RenderTooLarge as exc:
        raise too_large(exc) from exc
    response.headers[RENDERER_HEADER] = outcome.renderer.value
    response.headers[CACHE_HEADER] = "hit" if outcome.cache_hit else "miss"
    return outcome.result


@lru_cache(maxsize=32)
def _stylesheet(style: str) -> str:
    return stylesheet(style)


@router.get(
    "/stylesheet.css",
    response_class=Response,
    responses={
        **responses(400),
        200: {"content": {"text/css": {"schema": {"type": "string"}}}},
    },
)
async def stylesheet_css(
    style: Annotated[
        str, Query(pattern=STYLE_PATTERN, description="A Pygments style, e.g. github-dark.")
    ] = "default",
) -> Response:
    """CSS for the token classes inside `pre.highlight` of rendered HTML."""
    try:
        css = _stylesheet(style)
    except ValueError as exc:
        raise BadRequest(str(exc), error_code="UNKNOWN_STYLE") from exc
    return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=86400"})
