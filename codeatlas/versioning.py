"""5-B: un-versioned ``/api/...`` paths point to ``/api/v1/...`` until the sunset, then 410.

GET/HEAD get 301; every other method gets 308, which keeps the method and body.

A middleware rather than a catch-all route, so it does not depend on route order and never
shadows a versioned route added later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from fastapi.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from codeatlas.errors import error_response

API_PREFIX = "/api/v1"


class LegacyApiMiddleware:
    def __init__(self, app: ASGIApp, sunset: datetime) -> None:
        self.app = app
        self.sunset = sunset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or _is_versioned(path):
            await self.app(scope, receive, send)
            return
        rest = path[len("/api/") :]
        target = f"{API_PREFIX}/{rest}"
        response: Response
        if datetime.now(UTC) >= self.sunset:
            response = error_response(
                410,
                "API_VERSION_GONE",
                f"Un-versioned API paths were retired; use {target}",
                headers={"Link": f'<{target}>; rel="successor-version"'},
            )
        else:
            query = scope.get("query_string", b"").decode("latin-1")
            if query:
                target += f"?{query}"
            # 301 lets clients turn a POST into a GET; 308 keeps the method and the body.
            method = scope.get("method", "GET")
            response = RedirectResponse(
                target,
                status_code=301 if method in ("GET", "HEAD") else 308,
                headers={
                    "Deprecation": "true",
                    "Sunset": format_datetime(self.sunset, usegmt=True),
                    "Link": f'<{target}>; rel="successor-version"',
                },
            )
        await response(scope, receive, send)


def _is_versioned(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")
