"""/health/live and /health/ready: un-versioned, for probes, outside the OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from codeatlas.errors import error_response
from codeatlas.health.registry import HealthRegistry

router = APIRouter(prefix="/health", include_in_schema=False)


@router.get("/live")
async def live() -> dict[str, str]:
    """The process answers. Touches no dependency, so a slow database never restarts pods."""
    return {"status": "alive"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    registry: HealthRegistry = request.app.state.health
    results = await registry.run()
    checks: dict[str, Any] = {r.name: r.as_dict() for r in results}
    failed = [r.name for r in results if not r.ok]
    if failed:
        return error_response(
            503,
            "NOT_READY",
            "Not ready: " + ", ".join(failed),
            details={"failed": failed, "checks": checks},
        )
    return JSONResponse({"status": "ready", "checks": checks})
