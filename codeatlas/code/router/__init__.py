"""The code API (files, uploads, filename search)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/projects", tags=["code"])
