"""/api/v1/system: what version is running."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from codeatlas import __version__

router = APIRouter(prefix="/system", tags=["system"])


class VersionOut(BaseModel):
    name: str
    version: str


@router.get("/version", operation_id="system-version")
async def version() -> VersionOut:
    return VersionOut(name="codeatlas", version=__version__)
