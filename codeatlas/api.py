"""The versioned API: every domain router, under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from codeatlas.errors import responses
from codeatlas.versioning import API_PREFIX


def build_api_router() -> APIRouter:
    # Every route can fail validation or crash; both answer with the error envelope.
    api = APIRouter(prefix=API_PREFIX, responses=responses(422, 500))
    from codeatlas.system.router import router as system_router

    api.include_router(system_router)
    return api
