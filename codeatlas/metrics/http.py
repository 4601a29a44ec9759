"""Request metrics, as a pure ASGI middleware (no response buffering, streaming untouched).

Requests are labelled by route *template* (``/api/v1/projects/{project_id}``), never by the
raw path, so label cardinality stays bounded whatever clients send; requests no route
matched are labelled ``unmatched``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codeatlas.metrics.registry import HTTP_DURATION, HTTP_REQUESTS, RATE_LIMIT_REFUSALS

UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not path:
        return UNMATCHED
    # FastAPI >= 0.16x no longer copies included routes with their prefixes: the matched
    # route keeps its own path and the prefixes of the routers it was included through are
    # in the include context it records in the scope (older versions: no such key, and the
    # route's path is already the full template).
    included: Any = (scope.get("fastapi") or {}).get("included_router")
    prefix = getattr(getattr(included, "include_context", None), "prefix", "") or ""
    return f"{prefix}{path}"


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(scope)
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)
            if status == 429:
                RATE_LIMIT_REFUSALS.labels(route).inc()
