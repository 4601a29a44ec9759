"""A project's indexing progress: how many of its files are parsed, searchable or failed,
how many chunks are indexed, and an estimate of the time left.

Counts come from the documents' statuses (``code.process_file`` sets ``parsed``, the
indexing job ``searchable``), so they say where each file really is. Binary files are not
parsed and are left out. The ETA divides the chunks still to index by the rate of the last
:data:`RATE_WINDOW` seconds (chunks of the documents that became searchable in that
window); it is None while nothing finished in the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.db.base import utcnow
from codeatlas.models import CodeChunk, CodeDocument, DocumentStatus

RATE_WINDOW = 60.0
MAX_ERRORS = 100


@dataclass(frozen=True, slots=True)
class FileError:
    document_id: int
    path: str
    error: str


@dataclass(frozen=True, slots=True)
class Progress:
    files: dict[str, int]
    chunks_total: int
    chunks_embedded: int
    eta_seconds: float | None
    errors: list[FileError]


async def project_progress(session: AsyncSession, project_id: int) -> Progress:
    parseable = (CodeDocument.project_id == project_id, CodeDocument.parseable.is_(True))
    by_status = dict(
        (
            await session.execute(
                select(CodeDocument.status, func.count())
                .where(*parseable)
                .group_by(CodeDocument.status)
            )
        ).all()
    )
    chunk_counts = dict(
        (
            await session.execute(
                select(CodeDocument.status, func.count(CodeChunk.id))
                .join(CodeChunk, CodeChunk.document_id == CodeDocument.id)
                .where(*parseable)
                .group_by(CodeDocument.status)
            )
        ).all()
    )
    since = utcnow() - timedelta(seconds=RATE_WINDOW)
    recent = await session.scalar(
        select(func.count(CodeChunk.id))
        .join(CodeDocument, CodeDocument.id == CodeChunk.document_id)
        .where(
            *parseable,
            CodeDocument.status == DocumentStatus.SEARCHABLE.value,
            CodeDocument.updated_at >= since,
        )
    )
    errors = [
        FileError(doc_id, path, error or "")
        for doc_id, path, error in (
            await session.execute(
                select(CodeDocument.id, CodeDocument.file_path, CodeDocument.error)
                .where(*parseable, CodeDocument.status == DocumentStatus.FAILED.value)
                .order_by(CodeDocument.file_path)
                .limit(MAX_ERRORS)
            )
        ).all()
    ]
    count = {s.value: int(by_status.get(s.value, 0)) for s in DocumentStatus}
    files = {
        "total": sum(count.values()),
        "parsed": count["parsed"],
        "searchable": count["searchable"],
        "failed": count["failed"],
        "pending": count["pending"] + count["processing"],
    }
    chunks_total = int(sum(chunk_counts.values()))
    embedded = int(chunk_counts.get(DocumentStatus.SEARCHABLE.value, 0))
    # Still to index: parsed chunks, plus files not parsed yet at the mean chunks per file.
    done_files = files["parsed"] + files["searchable"] + files["failed"]
    per_file = chunks_total / done_files if done_files else 0.0
    remaining = int(chunk_counts.get(DocumentStatus.PARSED.value, 0)) + per_file * files["pending"]
    eta: float | None = None
    if remaining <= 0 and files["pending"] == 0:
        eta = 0.0
    elif recent:
        eta = round(remaining / (int(recent) / RATE_WINDOW), 1)
    return Progress(files, chunks_total, embedded, eta, errors)
