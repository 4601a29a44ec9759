"""``/metrics``: the Prometheus text format, un-versioned like the probes, never public.

Access: METRICS_ENABLED=false answers 404; with METRICS_TOKEN set a scraper must send it as
a bearer token; without one only loopback clients may read (a sidecar or `kubectl
port-forward`). With ``PROMETHEUS_MULTIPROC_DIR`` set (``serve --workers N`` sets it) the
answer aggregates every worker process of the instance.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from codeatlas.errors import error_response
from codeatlas.metrics.collect import run_hooks

router = APIRouter(include_in_schema=False)


def _allowed(request: Request) -> bool:
    token: str = request.app.state.settings.metrics_token
    if token:
        sent = request.headers.get("authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    settings = request.app.state.settings
    if not settings.metrics_enabled:
        return error_response(404, "NOT_FOUND", "Not found")
    if not _allowed(request):
        return error_response(403, "METRICS_FORBIDDEN", "Metrics need METRICS_TOKEN")
    await run_hooks(request.app, request.app.state.metrics_hooks, settings.health_check_timeout)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
