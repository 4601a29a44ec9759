"""The browser app's HTML: one shell page served at every app path (the ES modules under
``/static/js`` draw the views), the static files, and the page CSP.

The CSP allows scripts, styles and connections from our own origin only: no inline script,
no inline style attributes, no framing. The security middleware may add the same header for
every response; ours makes the pages strict on their own.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.routing import Match

from codeatlas import __version__

HERE = Path(__file__).parent
FEATURES = {
    "ws": ("websocket", "/api/v1/ws"),
    "indexing": ("http", "/api/v1/projects/1/indexing"),
    "chat": ("http", "/api/v1/chats"),
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

# Paths the app draws in the browser; each answers the same shell.
APP_PATHS = [
    "/",
    "/login",
    "/register",
    "/verify-email",
    "/account",
    "/projects/{project_id}",
    "/projects/{project_id}/files/{document_id}",
    "/knowledge",
    "/chat",
    "/chat/{chat_id}",
    "/admin",
]

_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)

router = APIRouter(include_in_schema=False)


def _has_route(app: FastAPI, kind: str, path: str) -> bool:
    # Asked by matching, not by listing app.routes: included routers need not be flattened.
    scope = {"type": kind, "path": path, "method": "GET", "root_path": "", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


def _features(request: Request) -> str:
    """Which optional APIs this server has, so the page never calls a missing one (it polls
    without the socket, counts file states without the indexing endpoint, hides chat)."""
    app: FastAPI = request.app
    found = getattr(app.state, "web_features", None)
    if found is None:
        found = " ".join(
            name for name, (kind, path) in FEATURES.items() if _has_route(app, kind, path)
        )
        app.state.web_features = found
    return str(found)


async def app_shell(request: Request) -> HTMLResponse:
    html = _templates.get_template("app.html").render(
        version=__version__, features=_features(request)
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


for _path in APP_PATHS:
    router.add_api_route(_path, app_shell, methods=["GET"], response_class=HTMLResponse)


class _Static(StaticFiles):
    """Static files revalidated on every load (an upgrade must not leave stale modules),
    under the same CSP as the pages."""

    def file_response(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(app: FastAPI) -> None:
    """Mount the app's pages and static files."""
    app.include_router(router)
    app.mount("/static", _Static(directory=HERE / "static"), name="static")
