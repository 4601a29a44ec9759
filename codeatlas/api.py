"""The versioned API: every domain router, under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from codeatlas.errors import responses
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
    api = APIRouter(prefix=API_PREFIX, responses=responses(422, 500))
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
    return api
