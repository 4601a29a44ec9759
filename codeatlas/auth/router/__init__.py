"""The auth API, split by concern (5-A): each sub-module owns one small router."""

from __future__ import annotations

from fastapi import APIRouter

from codeatlas.auth.router import login, profile, refresh, registration

router = APIRouter(prefix="/auth", tags=["auth"])
for _module in (registration, login, refresh, profile):
    router.include_router(_module.router)
