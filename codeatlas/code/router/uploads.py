"""POST /projects/{project_id}/files: upload files and archives (editors and owners)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from codeatlas.code import service
from codeatlas.code.errors import UploadTooLarge
from codeatlas.code.lifecycle import StorageDep
from codeatlas.code.schemas import UploadResponse
from codeatlas.core.ratelimit import limiter, setting_limit
from codeatlas.db.session import SessionDep
from codeatlas.errors import responses
from codeatlas.jobs.enqueue import enqueue
from codeatlas.projects.deps import ProjectEditor
from codeatlas.settings import Settings

router = APIRouter(prefix="/projects", tags=["code"])

# The body is streamed by hand (see codeatlas.code.multipart), so FastAPI cannot derive its
# schema: describe it for the OpenAPI document.
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": (
                                "Files; each part's filename is its path relative to the "
                                "project root, e.g. `src/app/main.py`."
                            ),
                        },
                        "archives": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": ".zip or .tar.gz archives, unpacked at the root.",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/{project_id}/files",
    status_code=201,
    responses={
        200: {"description": "Nothing new: every file was already stored with this content"},
        **responses(400, 401, 403, 404, 409, 413, 415, 429),
    },
    openapi_extra=_BODY,
    summary="Upload files and archives",
)
@limiter.limit(setting_limit("rate_limit_upload"))
async def upload_files(
    request: Request,
    response: Response,
    member: ProjectEditor,
    session: SessionDep,
    storage: StorageDep,
) -> UploadResponse:
    """Store files under their paths (validated: 400 PATH_NOT_ALLOWED), unpack archives.

    Same content at the same path is a no-op (`unchanged`); new content is a new version.
    Limits: FILE_TOO_LARGE, TOO_MANY_FILES, UPLOAD_TOO_LARGE, ARCHIVE_TOO_LARGE,
    ARCHIVE_RATIO_EXCEEDED. Nothing is stored unless everything is.
    """
    settings: Settings = request.app.state.settings
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.upload_max_request_bytes:
        raise UploadTooLarge(
            f"Upload larger than {settings.upload_max_request_bytes} bytes",
            details={"limit": settings.upload_max_request_bytes},
        )
    outcome = await service.upload_files(
        session,
        storage,
        settings,
        member.project_id,
        request.headers.get("content-type", ""),
        request.stream(),
    )
    # Parse each new or changed document; sent only once this request's transaction commits.
    for doc_id in outcome.to_process:
        ids = {"project_id": member.project_id, "document_id": doc_id, "user_id": member.user.id}
        enqueue(session, "code.process_file", doc_id, settings=settings, **ids)
    created, updated = outcome.count("created"), outcome.count("updated")
    response.status_code = 201 if created or updated else 200
    warnings = [
        f"{f.original_path!r} was stored as {f.path!r}: {f.path_warning}"
        for f in outcome.files
        if f.path_warning
    ]
    return UploadResponse(
        files=outcome.files,
        created=created,
        updated=updated,
        unchanged=outcome.count("unchanged"),
        warnings=warnings,
    )
