"""A project's files: list (keyset pages), detail, raw content, delete."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from codeatlas.code import service
from codeatlas.code.lifecycle import StorageDep
from codeatlas.code.schemas import DocumentDetail, DocumentOut, DocumentPage
from codeatlas.db.session import SessionDep
from codeatlas.errors import responses
from codeatlas.projects.deps import ProjectEditor, ProjectMember

router = APIRouter(prefix="/projects", tags=["code"])

_CHUNK = 64 * 1024


@router.get("/{project_id}/files", responses=responses(400, 401, 404), summary="List files")
async def list_files(
    member: ProjectMember,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    language: Annotated[str | None, Query(max_length=32)] = None,
    status: Literal["pending", "processing", "parsed", "searchable", "failed"] | None = None,
    path_prefix: Annotated[
        str | None, Query(max_length=1024, description="Only paths starting with this.")
    ] = None,
) -> DocumentPage:
    """Files in path order; `next_cursor` fetches the next page (keyset, stable under
    inserts)."""
    docs, next_cursor = await service.list_documents(
        session,
        member.project_id,
        limit=limit,
        cursor=cursor,
        language=language,
        status=status,
        path_prefix=path_prefix,
    )
    return DocumentPage(items=[DocumentOut.of(d) for d in docs], next_cursor=next_cursor)


@router.get(
    "/{project_id}/files/{document_id}", responses=responses(401, 404), summary="File detail"
)
async def get_file(document_id: int, member: ProjectMember, session: SessionDep) -> DocumentDetail:
    doc = await service.get_document(session, member.project_id, document_id)
    return DocumentDetail.of(doc)


@router.get(
    "/{project_id}/files/{document_id}/content",
    responses={200: {"content": {"application/octet-stream": {}}}, **responses(401, 404)},
    response_class=StreamingResponse,
    summary="Raw content",
)
async def get_content(
    document_id: int, member: ProjectMember, session: SessionDep, storage: StorageDep
) -> StreamingResponse:
    """The stored bytes, as an attachment (never rendered inline by a browser)."""
    doc = await service.get_document(session, member.project_id, document_id)
    fd = service.open_content(storage, doc)

    def chunks() -> Iterator[bytes]:
        try:
            while data := os.read(fd, _CHUNK):
                yield data
        finally:
            os.close(fd)

    ascii_name = doc.file_name.encode("ascii", "replace").decode().replace('"', "_")
    return StreamingResponse(
        chunks(),
        media_type="text/plain; charset=utf-8" if doc.parseable else "application/octet-stream",
        headers={
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(doc.file_name)}"
            ),
            "Content-Length": str(doc.size),
            "ETag": f'"{doc.content_hash}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.delete(
    "/{project_id}/files/{document_id}",
    status_code=204,
    responses=responses(401, 403, 404),
    summary="Delete a file (row and file on disk)",
)
async def delete_file(
    document_id: int, member: ProjectEditor, session: SessionDep, storage: StorageDep
) -> None:
    await service.delete_document(session, storage, member.project_id, document_id)
