"""Security headers on every HTTP response, and CORS only when an allow-list is configured.

* every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
  ``X-Frame-Options: DENY`` and a CSP with ``frame-ancestors 'none'`` (clickjacking);
* HTML pages (``/admin/jobs``, the self-hosted Swagger UI, the web app) get the strict
  :data:`HTML_CSP`: scripts and styles only from this origin, no inline script, no plugins,
  no ``<base>``; JSON and other bodies get ``default-src 'none'`` (they are never documents);
* ``Strict-Transport-Security`` when ``HSTS_MAX_AGE`` is set;
* no ``Server`` header (uvicorn's is switched off where it is started; this strips any other).

A response that already carries its own ``Content-Security-Policy`` keeps it: an exception is
then visible in the code of that route. A pure ASGI middleware (not ``BaseHTTPMiddleware``)
so streamed responses and WebSockets are untouched.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codeatlas.security.options import OptionsMiddleware
from codeatlas.settings import Settings

HTML_CSP = (
    "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'; img-src 'self' data:"
)
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, hsts_max_age: int = 0) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_max_age}; includeSubDomains" if hsts_max_age > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                html = headers.get("content-type", "").startswith("text/html")
                headers.setdefault("Content-Security-Policy", HTML_CSP if html else OTHER_CSP)
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", self.hsts)
                if "server" in headers:
                    del headers["server"]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security_headers(app: FastAPI, settings: Settings) -> None:
    """Called by create_app after the other middleware, so it wraps them (outermost but the
    correlation id): even an error envelope or a redirect carries the headers."""
    app.add_middleware(OptionsMiddleware)  # inside CORS: a configured CORS answers preflights
    if settings.cors_allow_origins:
        # Bearer tokens, no cookies: credentials stay off, so a listed origin still cannot
        # ride on a browser's ambient session.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "X-Error-Code", "Retry-After"],
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware, hsts_max_age=settings.hsts_max_age)
