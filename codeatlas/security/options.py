"""OPTIONS on the documented API answers 204 with an ``Allow`` header (RFC 9110, 9.3.7).

Before (issue 11, finding 6) every OPTIONS request was a 405, and where a path has one route
per method (``GET`` and ``POST /api/v1/projects``) the ``Allow`` of that 405 named only the
first route's methods. ``Allow`` now lists the operations the OpenAPI document gives the path,
plus OPTIONS. A CORS preflight gets the same answer without any ``Access-Control-*`` header:
CORS stays closed unless ``CORS_ALLOW_ORIGINS`` is set, and then Starlette's CORS middleware,
outside this one, answers preflights itself. Paths outside the document keep the router's
answer (404 or 405).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

_METHODS = ("get", "post", "put", "patch", "delete")
_PARAM = re.compile(r"\{[^}]+\}")


def _pattern(template: str) -> re.Pattern[str]:
    parts = _PARAM.split(template)
    return re.compile("^" + "[^/]+".join(re.escape(p) for p in parts) + "$")


class OptionsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._table: list[tuple[re.Pattern[str], set[str]]] | None = None

    def _allow(self, scope: Scope) -> str | None:
        if self._table is None:
            document: dict[str, Any] = scope["app"].openapi()
            table = []
            for template, operations in document.get("paths", {}).items():
                table.append((_pattern(template), {m for m in _METHODS if m in operations}))
            self._table = table
        # every operation the path could route to (a literal path may also fit a template)
        found = [methods for pattern, methods in self._table if pattern.match(scope["path"])]
        if not found:
            return None
        allowed = set().union(*found)
        return ", ".join([*(m.upper() for m in _METHODS if m in allowed), "OPTIONS"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            allow = self._allow(scope)
            if allow is not None:
                await Response(status_code=204, headers={"Allow": allow})(scope, receive, send)
                return
        await self.app(scope, receive, send)
