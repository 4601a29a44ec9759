"""``/api/v1/docs``: Swagger UI served from this instance, under a strict CSP.

FastAPI's default page loads Swagger UI from a CDN and starts it with an inline ``<script>``,
which ``script-src 'self'`` forbids. Here the page, its start-up script and the Swagger UI
assets (shipped by the ``fastapi-offline`` package, so nothing is fetched from a CDN) all come
from this origin. The one exception to the strict CSP: ``style-src 'unsafe-inline'``, because
Swagger UI sets inline styles and upstream does not plan to remove them
(swagger-api/swagger-ui#7540); styles cannot run script, and ``script-src`` stays ``'self'``.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from codeatlas.errors import NotFound
from codeatlas.security.headers import HTML_CSP
from codeatlas.versioning import API_PREFIX

DOCS_PATH = f"{API_PREFIX}/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
DOCS_CSP = HTML_CSP + "; style-src 'self' 'unsafe-inline'"

_VENDOR = Path(fastapi_offline.__file__).parent / "static"
_ASSETS = {
    "swagger-ui-bundle.js": (_VENDOR / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (_VENDOR / "swagger-ui.css", "text/css"),
    "favicon.png": (_VENDOR / "favicon.png", "image/png"),
    "swagger-init.js": (Path(__file__).parent / "static" / "swagger-init.js", "text/javascript"),
}

router = APIRouter(include_in_schema=False)


def _page(openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>CodeAtlas API</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<link rel="icon" href="{ASSETS_PATH}/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{escape(openapi_url)}"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}/swagger-init.js"></script>
</body>
</html>
"""


@router.get(DOCS_PATH)
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(
        _page(f"{API_PREFIX}/openapi.json"), headers={"Content-Security-Policy": DOCS_CSP}
    )


@router.get(ASSETS_PATH + "/{name}")
async def swagger_asset(name: str) -> FileResponse:
    found = _ASSETS.get(name)  # a fixed allow-list: the name never reaches the file system
    if found is None:
        raise NotFound("No such asset")
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "max-age=86400"})
