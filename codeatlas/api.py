"""The versioned API: every domain router, under ``/api/v1``."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute

from codeatlas.errors import ErrorResponse, responses
from codeatlas.security.types import refuse_nul_characters
from codeatlas.versioning import API_PREFIX


def build_api_router() -> APIRouter:
    from codeatlas.auth.router import router as auth_router
    from codeatlas.chat.router import router as chat_router
    from codeatlas.code.router import router as code_router
    from codeatlas.jobs.router import router as jobs_router
    from codeatlas.knowledge.router import router as knowledge_router
    from codeatlas.knowledge.search_router import router as hybrid_search_router
    from codeatlas.projects.router import router as projects_router
    from codeatlas.rendering.router import router as rendering_router
    from codeatlas.system.router import router as system_router
    from codeatlas.web.api import router as web_api_router
    from codeatlas.web.session import router as web_session_router
    from codeatlas.ws.router import router as ws_router

    # Every route can fail validation or crash; both answer with the error envelope.
    # ... and answer 503 DB_UNAVAILABLE / DB_BUSY / REDIS_UNAVAILABLE while a dependency is away.
    # NUL characters in any parameter or parsed body: 422 (codeatlas/security/types.py).
    api = APIRouter(
        prefix=API_PREFIX,
        responses=responses(422, 500, 503),
        dependencies=[Depends(refuse_nul_characters)],
    )
    for router in (
        system_router,
        auth_router,
        projects_router,
        code_router,
        jobs_router,
        rendering_router,
        knowledge_router,
        hybrid_search_router,
        web_session_router,
        web_api_router,
        ws_router,
        chat_router,
    ):
        api.include_router(router)
    _document_unparsable_bodies(api)
    return api


def _document_unparsable_bodies(api: APIRouter) -> None:
    """A body that cannot be parsed at all (bytes that are not UTF-8 JSON, a broken multipart
    stream) is refused before validation with 400 `MALFORMED_BODY`: documented on every
    operation that takes a body (issue 11, finding 6)."""
    for route in api.routes:
        if isinstance(route, APIRoute):
            if route.body_field is not None:
                route.responses.setdefault(
                    400, {"model": ErrorResponse, "description": HTTPStatus(400).phrase}
                )
        elif isinstance(included := getattr(route, "original_router", None), APIRouter):
            _document_unparsable_bodies(included)  # FastAPI keeps included routers nested
