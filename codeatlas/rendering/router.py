"""The rendering API."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/rendering", tags=["rendering"])
