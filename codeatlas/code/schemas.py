"""Request and response bodies of the code API (documents, uploads, filename search)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from codeatlas.core.timestamps import UtcDatetime
from codeatlas.models import CodeDocument

UploadResult = Literal["created", "updated", "unchanged"]
MatchKind = Literal["exact", "prefix", "substring"]


class DocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    path: str = Field(description="Path relative to the project root, '/'-separated.")
    name: str = Field(description="The last segment of `path`.")
    language: str | None
    size: int
    content_hash: str = Field(description="sha256 of the content, hex.")
    status: Literal["pending", "processing", "parsed", "searchable", "failed"] = Field(
        description=(
            "Processing state: `pending` → `processing` → `parsed` (symbols and chunks "
            "stored) → `searchable` (keyword and semantic search find it), or `failed` "
            "(see `error`). Binary files are stored but never parsed: they are `searchable` "
            "(findable by name) with `parseable` false."
        )
    )
    parseable: bool
    version: int = Field(description="1 on first upload, +1 each time new content arrives.")
    error: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @classmethod
    def of(cls, doc: CodeDocument) -> DocumentOut:
        return cls(
            id=doc.id,
            project_id=doc.project_id,
            path=doc.file_path,
            name=doc.file_name,
            language=doc.language,
            size=doc.size,
            content_hash=doc.content_hash,
            status=doc.status,
            parseable=doc.parseable,
            version=doc.version,
            error=doc.error,
            created_at=doc.created_at,
            updated_at=doc.updated_at,
        )


class DocumentDetail(DocumentOut):
    symbols: list[dict[str, Any]] | None = Field(
        None, description="Symbols found by parsing (null until processed)."
    )

    @classmethod
    def of(cls, doc: CodeDocument) -> DocumentDetail:
        return cls(**DocumentOut.of(doc).model_dump(), symbols=doc.symbols)


class DocumentPage(BaseModel):
    items: list[DocumentOut]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


class UploadedFile(BaseModel):
    path: str = Field(description="Where the file was stored, relative to the project.")
    original_path: str | None = Field(
        None, description="The path as sent, when it differs (warn mode sanitised it)."
    )
    path_warning: str | None = Field(
        None,
        description=(
            "UPLOAD_PATH_VALIDATION=warn only: why the original path was refused and a "
            "sanitised one used instead."
        ),
    )
    archive: str | None = Field(None, description="The archive the file came from, if any.")
    result: UploadResult = Field(
        description="`unchanged`: same content already stored at this path (a no-op)."
    )
    document_id: int
    version: int
    size: int
    content_hash: str
    language: str | None
    parseable: bool
    status: str


class UploadResponse(BaseModel):
    files: list[UploadedFile]
    created: int
    updated: int
    unchanged: int
    warnings: list[str] = Field(
        default_factory=list, description="Human-readable notes, e.g. paths sanitised."
    )


class FilenameHit(BaseModel):
    document_id: int
    project_id: int
    path: str
    name: str
    language: str | None
    match: MatchKind = Field(
        description="Rank: `exact` basename, then basename `prefix`, then `substring` of path."
    )


class FilenameSearchResponse(BaseModel):
    query: str
    project_id: int | None
    results: list[FilenameHit]
    truncated: bool = Field(
        description="More files match than were ranked; a longer query narrows them."
    )


class SearchHistoryItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    query: str
    kind: str
    project_id: int | None
    result_count: int
    created_at: UtcDatetime


class SearchHistoryPage(BaseModel):
    items: list[SearchHistoryItem]
    next_cursor: str | None = None


class IndexingFiles(BaseModel):
    total: int = Field(description="Parseable files of the project.")
    parsed: int = Field(description="Parsed (chunks stored), not yet searchable.")
    searchable: int = Field(description="Found by keyword and semantic search.")
    failed: int = Field(description="Parsing or indexing gave up (see `errors`).")
    pending: int = Field(description="Waiting to be parsed, or being parsed.")


class IndexingChunks(BaseModel):
    total: int = Field(description="Chunks of the parsed files.")
    embedded: int = Field(description="Chunks of searchable files (vectors and keywords in).")


class IndexingError(BaseModel):
    document_id: int
    path: str
    error: str


class IndexingProgress(BaseModel):
    files: IndexingFiles
    chunks: IndexingChunks
    eta_seconds: float | None = Field(
        description="Seconds until every file is searchable at the last minute's rate; 0 when "
        "done, null while unknown (nothing finished in the last minute)."
    )
    errors: list[IndexingError] = Field(description="Failed files (first 100 by path).")

    @classmethod
    def of(cls, progress: Any) -> IndexingProgress:
        return cls(
            files=IndexingFiles(**progress.files),
            chunks=IndexingChunks(total=progress.chunks_total, embedded=progress.chunks_embedded),
            eta_seconds=progress.eta_seconds,
            errors=[
                IndexingError(document_id=e.document_id, path=e.path, error=e.error)
                for e in progress.errors
            ],
        )
