"""The auth API, split by concern (5-A): each sub-module owns one small router."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/auth", tags=["auth"])
