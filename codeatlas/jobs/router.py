"""The jobs API."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/admin/jobs", tags=["admin"])
