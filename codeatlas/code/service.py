"""Business rules of code documents: storing uploads, listing, reading and deleting files.

Services own no transaction: they flush, and the request's session commits. Files on disk
follow the session through a :class:`~codeatlas.code.storage.FileTransaction` bound to it,
so a rolled-back request leaves the tree as it was. :func:`upload_files` returns the ids of
the documents that need processing (``UploadOutcome.to_process``) for the caller to enqueue
once the request has committed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.code.archives import ArchiveLimits, archive_kind, expand_archive
from codeatlas.code.errors import TooManyFiles
from codeatlas.code.multipart import StagedPart, UploadLimits, stage_multipart
from codeatlas.code.parsing import detect_language, is_binary
from codeatlas.code.paths import PathMode, resolve_upload_path
from codeatlas.code.schemas import UploadedFile, UploadResult
from codeatlas.code.storage import FileTransaction, PathConflict, UploadStorage, bind_to_session
from codeatlas.errors import BadRequest, NotFound
from codeatlas.models import CodeDocument, DocumentStatus
from codeatlas.settings import Settings

FILE_FIELDS = frozenset({"files", "file"})
ARCHIVE_FIELDS = frozenset({"archives", "archive"})
_IN_CHUNK = 500  # bound parameter lists well under SQLite's and asyncpg's limits


@dataclass
class UploadItem:
    """One file to store: where it goes and where its bytes are staged."""

    path: str
    original: str
    warning: str | None
    staged: Path
    size: int
    sha256: str
    head: bytes
    archive: str | None = None


@dataclass
class UploadOutcome:
    files: list[UploadedFile]
    # Documents created or changed that a parser should look at, for an after-commit enqueue.
    to_process: list[int]

    def count(self, result: UploadResult) -> int:
        return sum(1 for f in self.files if f.result == result)


def _chunks(items: list[str], size: int = _IN_CHUNK) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _collect(
    parts: list[StagedPart],
    project_dir: Path,
    mode: PathMode,
    tx: FileTransaction,
    settings: Settings,
) -> list[UploadItem]:
    """Resolve every path and unpack every archive (blocking: runs in a thread)."""

    def check(name: str) -> tuple[str, str | None]:
        return resolve_upload_path(name, project_dir, mode)

    limits = ArchiveLimits(
        max_file_bytes=settings.upload_max_file_bytes,
        max_files=settings.upload_max_files,
        max_total_bytes=settings.upload_archive_max_total_bytes,
        max_ratio=settings.upload_archive_max_ratio,
        ratio_min_bytes=settings.upload_archive_ratio_min_bytes,
    )
    items: list[UploadItem] = []
    for part in parts:
        if part.field in FILE_FIELDS:
            path, warning = check(part.filename)
            items.append(
                UploadItem(
                    path,
                    part.filename,
                    warning,
                    part.staged_path,
                    part.size,
                    part.sha256,
                    part.head,
                )
            )
        elif part.field in ARCHIVE_FIELDS:
            kind = archive_kind(part.head)
            if kind is None:
                raise BadRequest(
                    f"{part.filename!r} is neither a zip nor a gzip-compressed tar archive",
                    error_code="ARCHIVE_UNSUPPORTED",
                    details={"archive": part.filename},
                )
            entries = expand_archive(
                part.staged_path, part.filename, kind, tx.staging_path, check, limits
            )
            part.staged_path.unlink()  # its entries are staged now
            items.extend(
                UploadItem(
                    e.path, e.name, e.warning, e.staged, e.size, e.sha256, e.head, part.filename
                )
                for e in entries
            )
        else:
            raise BadRequest(
                f"Unknown multipart field {part.field!r}: send files as 'files' and "
                "archives as 'archives'",
                error_code="UNKNOWN_FIELD",
            )
        if len(items) > settings.upload_max_files:
            raise TooManyFiles(
                f"More than {settings.upload_max_files} files in one upload",
                details={"limit": settings.upload_max_files},
            )
    return items


def _check_batch(items: list[UploadItem], storage: UploadStorage, project_id: int) -> None:
    """No path twice, no file where another needs a directory, here or on disk."""
    if not items:
        raise BadRequest("The upload contains no files", error_code="NO_FILES")
    seen: set[str] = set()
    for item in items:
        if item.path in seen:
            raise BadRequest(
                f"{item.path!r} appears more than once in this upload",
                error_code="DUPLICATE_PATH",
                details={"path": item.path},
            )
        seen.add(item.path)
    for item in items:
        parts = item.path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in seen:
                raise PathConflict(
                    f"{item.path!r} needs {'/'.join(parts[:depth])!r} to be a directory",
                    details={"path": item.path},
                )
        storage.check_placeable(project_id, item.path)


async def upload_files(
    session: AsyncSession,
    storage: UploadStorage,
    settings: Settings,
    project_id: int,
    content_type: str,
    body: AsyncIterator[bytes],
) -> UploadOutcome:
    """Stage, validate and store a multipart upload of files and archives."""
    tx = storage.begin()
    bind_to_session(session, tx)
    try:
        limits = UploadLimits(
            max_file_bytes=settings.upload_max_file_bytes,
            max_files=settings.upload_max_files,
            max_request_bytes=settings.upload_max_request_bytes,
            max_archive_bytes=settings.upload_max_archive_bytes,
            archive_fields=ARCHIVE_FIELDS,
        )
        parts = await stage_multipart(content_type, body, tx.staging_path, limits)
        project_dir = storage.project_dir(project_id)
        items = await asyncio.to_thread(
            _collect, parts, project_dir, settings.upload_path_validation, tx, settings
        )
        await asyncio.to_thread(_check_batch, items, storage, project_id)
        outcome = await _store_rows(session, project_id, items, tx)
        await asyncio.to_thread(tx.apply)
        return outcome
    except BaseException:
        tx.rollback()
        raise


async def _store_rows(
    session: AsyncSession, project_id: int, items: list[UploadItem], tx: FileTransaction
) -> UploadOutcome:
    existing: dict[str, CodeDocument] = {}
    for chunk in _chunks([i.path for i in items]):
        # FOR UPDATE: a concurrent upload of the same path waits for this one to commit.
        rows = await session.scalars(
            select(CodeDocument)
            .where(CodeDocument.project_id == project_id, CodeDocument.file_path.in_(chunk))
            .with_for_update()
        )
        existing.update((d.file_path, d) for d in rows)
    results: list[tuple[UploadItem, CodeDocument, UploadResult]] = []
    for item in items:
        binary = is_binary(item.head)
        doc = existing.get(item.path)
        if doc is not None and doc.content_hash == item.sha256:
            results.append((item, doc, "unchanged"))
            continue
        if doc is None:
            doc = CodeDocument(project_id=project_id, file_path=item.path, version=1)
            session.add(doc)
            result: UploadResult = "created"
        else:
            doc.version += 1
            result = "updated"
        doc.file_name = item.path.rsplit("/", 1)[-1]
        doc.size = item.size
        doc.content_hash = item.sha256
        doc.parseable = not binary
        doc.language = None if binary else detect_language(item.path, item.head)
        # Binary files are never parsed: already as searchable as they will get (by name).
        doc.status = (DocumentStatus.SEARCHABLE if binary else DocumentStatus.PENDING).value
        doc.symbols = None
        doc.error = None
        tx.put(project_id, item.path, item.staged, item.sha256)
        results.append((item, doc, result))
    await session.flush()
    files = [
        UploadedFile(
            path=item.path,
            original_path=item.original if item.original != item.path else None,
            path_warning=item.warning,
            archive=item.archive,
            result=result,
            document_id=doc.id,
            version=doc.version,
            size=doc.size,
            content_hash=doc.content_hash,
            language=doc.language,
            parseable=doc.parseable,
            status=doc.status,
        )
        for item, doc, result in results
    ]
    to_process = [d.id for _, d, r in results if r != "unchanged" and d.parseable]
    return UploadOutcome(files, to_process)


# -- reading ------------------------------------------------------------------------------


def encode_cursor(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        after = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadRequest("Invalid cursor", error_code="INVALID_CURSOR") from exc
    if not isinstance(after, str):
        raise BadRequest("Invalid cursor", error_code="INVALID_CURSOR")
    return after


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix``.

    Paths compare byte-wise (collation "C" / SQLite BINARY), which for UTF-8 is code-point
    order, so bumping the last code point works; None if there is no such bound.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        nxt = last + 1
        if 0xD800 <= nxt <= 0xDFFF:
            nxt = 0xE000
        if nxt <= 0x10FFFF:
            return "".join(chars) + chr(nxt)
    return None


async def list_documents(
    session: AsyncSession,
    project_id: int,
    *,
    limit: int,
    cursor: str | None = None,
    language: str | None = None,
    status: str | None = None,
    path_prefix: str | None = None,
) -> tuple[list[CodeDocument], str | None]:
    """One page of a project's files in path order (keyset: ``file_path > after``)."""
    stmt = select(CodeDocument).where(CodeDocument.project_id == project_id)
    if cursor:
        stmt = stmt.where(CodeDocument.file_path > decode_cursor(cursor))
    if path_prefix:
        # A range on the (project_id, file_path) index instead of LIKE, which would need
        # escaping and, on PostgreSQL, a pattern-ops index to use it.
        stmt = stmt.where(CodeDocument.file_path >= path_prefix)
        upper = prefix_upper_bound(path_prefix)
        if upper is not None:
            stmt = stmt.where(CodeDocument.file_path < upper)
    if language:
        stmt = stmt.where(CodeDocument.language == language)
    if status:
        stmt = stmt.where(CodeDocument.status == status)
    rows = list(await session.scalars(stmt.order_by(CodeDocument.file_path).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].file_path) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def get_document(session: AsyncSession, project_id: int, document_id: int) -> CodeDocument:
    doc = await session.scalar(
        select(CodeDocument).where(
            and_(CodeDocument.id == document_id, CodeDocument.project_id == project_id)
        )
    )
    if doc is None:
        raise NotFound("File not found")
    return doc


def open_content(storage: UploadStorage, doc: CodeDocument) -> int:
    """A read descriptor of the document's stored bytes."""
    try:
        return storage.open_file(doc.project_id, doc.file_path)
    except FileNotFoundError as exc:
        raise NotFound(
            "The file's content is missing from storage", error_code="CONTENT_MISSING"
        ) from exc


async def delete_document(
    session: AsyncSession, storage: UploadStorage, project_id: int, document_id: int
) -> None:
    """Delete the row, and the file once the deletion commits."""
    doc = await get_document(session, project_id, document_id)
    tx = storage.begin()
    bind_to_session(session, tx)
    try:
        await session.delete(doc)
        await session.flush()
        tx.remove(project_id, doc.file_path)
        await asyncio.to_thread(tx.apply)
    except BaseException:
        tx.rollback()
        raise


async def remove_project_files(
    session: AsyncSession, storage: UploadStorage, project_id: int
) -> None:
    """Move the project's directory away; it is deleted when the session commits."""
    tx = storage.begin()
    bind_to_session(session, tx)
    try:
        tx.remove_project(project_id)
        await asyncio.to_thread(tx.apply)
    except BaseException:
        tx.rollback()
        raise


async def stored_hash(session: AsyncSession, project_id: int, path: str) -> str | None:
    """The committed content hash at a path (crash recovery asks this)."""
    return await session.scalar(
        select(CodeDocument.content_hash).where(
            CodeDocument.project_id == project_id, CodeDocument.file_path == path
        )
    )
