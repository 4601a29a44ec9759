"""The knowledge API."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/knowledge", tags=["knowledge"])
