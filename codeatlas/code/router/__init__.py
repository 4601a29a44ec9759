"""The code API, split by concern (5-A): each sub-module owns one small router.

* :mod:`.uploads`: ``POST /projects/{id}/files`` (files and archives);
* :mod:`.files`: list, detail, raw content and delete of a project's files;
* :mod:`.indexing`: ``GET /projects/{id}/indexing`` (indexing progress, any member);
* :mod:`.search`: ``GET /search/files`` (filename search) and ``GET /search/history``.

``router`` carries no prefix of its own: each sub-router states its full path.
"""

from __future__ import annotations

from fastapi import APIRouter

from codeatlas.code.router import files, indexing, search, uploads

router = APIRouter()
router.include_router(uploads.router)
router.include_router(files.router)
router.include_router(search.router)
router.include_router(indexing.router)
