"""Streaming ``multipart/form-data`` reader for uploads, with the limits applied as bytes arrive.

Hand-written around python-multipart's push parser instead of ``request.form()`` because
Starlette spools every file part, without a size limit, into the system temp directory
before the endpoint runs; here each part goes straight to the upload transaction's staging
directory, is hashed on the way, and the request is refused the moment a limit is crossed.
It also keeps the filename exactly as sent: python-multipart's header helper silently cuts
``C:\\dir\\x`` and ``\\\\host\\share\\x`` down to ``x``, which would hide drive letters and
UNC paths from the validator.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParseError, MultipartParser

from codeatlas.code.errors import ArchiveTooLarge, FileTooLarge, TooManyFiles, UploadTooLarge
from codeatlas.errors import AppError, BadRequest

HEAD_BYTES = 8192  # what language and binary detection look at
_MAX_FIELD_BYTES = 64 * 1024
# Body bytes handed to the parser thread at a time (one thread hop per batch).
_WRITE_BATCH = 256 * 1024
_PARAM = re.compile(rb';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)


@dataclass(frozen=True)
class UploadLimits:
    max_file_bytes: int
    max_files: int
    max_request_bytes: int
    max_archive_bytes: int
    archive_fields: frozenset[str] = frozenset({"archives", "archive"})


@dataclass
class StagedPart:
    """One file part, written to ``staged_path`` in the staging directory."""

    field: str
    # The filename exactly as sent; bytes that were not UTF-8 are lone surrogates.
    filename: str
    staged_path: Path
    size: int = 0
    sha256: str = ""
    head: bytes = b""


@dataclass
class _Current:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    part: StagedPart | None = None
    out: BinaryIO | None = None
    digest: hashlib._Hash | None = None
    field_bytes: int = 0


def parse_disposition(value: bytes) -> dict[str, bytes]:
    """Parameters of a Content-Disposition value, quoted strings unescaped like browsers do.

    Only ``\\"`` and ``\\\\`` are escapes (what python-multipart and httpx agree on); any
    other backslash is kept, so a Windows path arrives as one.
    """
    params: dict[str, bytes] = {}
    for key, raw in _PARAM.findall(value):
        name = key.decode("latin-1").lower()
        if "*" in name:
            continue  # RFC 7578 4.2: no RFC 5987 `filename*=` in form-data
        val = raw.strip()
        if len(val) >= 2 and val[:1] == b'"' and val[-1:] == b'"':
            val = re.sub(rb'\\(["\\])', rb"\1", val[1:-1])
        params.setdefault(name, val)
    return params


def decode_filename(raw: bytes) -> str:
    """UTF-8, with undecodable bytes kept as lone surrogates (the validator refuses them)."""
    return raw.decode("utf-8", "surrogateescape")


def boundary_of(content_type: str) -> bytes:
    if not content_type.lower().startswith("multipart/form-data"):
        raise AppError(
            "Expected multipart/form-data",
            error_code="UNSUPPORTED_MEDIA_TYPE",
            status_code=415,
        )
    match = _BOUNDARY.search(content_type)
    if not match:
        raise BadRequest("multipart boundary missing", error_code="INVALID_MULTIPART")
    return match.group(1).encode("latin-1")


async def stage_multipart(
    content_type: str,
    body: AsyncIterator[bytes],
    new_path: Callable[[], Path],
    limits: UploadLimits,
) -> list[StagedPart]:
    """Read the whole body, writing every file part to ``new_path()``; return the parts.

    Raises FILE_TOO_LARGE, TOO_MANY_FILES or UPLOAD_TOO_LARGE as soon as a limit is crossed
    (the staged files are the caller's to delete: they live in its transaction directory).
    Text fields are ignored (bounded to 64 KiB each).
    """
    boundary = boundary_of(content_type)
    parts: list[StagedPart] = []
    cur = _Current()
    name_buf = bytearray()
    value_buf = bytearray()

    def on_part_begin() -> None:
        cur.headers = {}
        cur.part, cur.out, cur.digest, cur.field_bytes = None, None, None, 0

    def on_header_field(data: bytes, start: int, end: int) -> None:
        name_buf.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value_buf.extend(data[start:end])

    def on_header_end() -> None:
        cur.headers[bytes(name_buf).lower()] = bytes(value_buf)
        name_buf.clear()
        value_buf.clear()

    def on_headers_finished() -> None:
        params = parse_disposition(cur.headers.get(b"content-disposition", b""))
        if "filename" not in params:
            return  # a plain field
        if len(parts) >= limits.max_files:
            raise TooManyFiles(
                f"More than {limits.max_files} files in one upload",
                details={"limit": limits.max_files},
            )
        field_name = params.get("name", b"").decode("utf-8", "replace")
        part = StagedPart(field_name, decode_filename(params["filename"]), new_path())
        cur.part, cur.digest = part, hashlib.sha256()
        cur.out = open(part.staged_path, "wb")  # noqa: SIM115 - closed in on_part_end / finally
        parts.append(part)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        part = cur.part
        if part is None or cur.out is None or cur.digest is None:
            cur.field_bytes += len(chunk)
            if cur.field_bytes > _MAX_FIELD_BYTES:
                raise BadRequest("form field too large", error_code="INVALID_MULTIPART")
            return
        part.size += len(chunk)
        if part.field in limits.archive_fields:
            if part.size > limits.max_archive_bytes:
                raise ArchiveTooLarge(
                    f"{part.filename!r} is larger than {limits.max_archive_bytes} bytes",
                    details={"archive": part.filename, "limit": limits.max_archive_bytes},
                )
        elif part.size > limits.max_file_bytes:
            raise FileTooLarge(
                f"{part.filename!r} is larger than {limits.max_file_bytes} bytes",
                details={"path": part.filename, "limit": limits.max_file_bytes},
            )
        if len(part.head) < HEAD_BYTES:
            part.head += chunk[: HEAD_BYTES - len(part.head)]
        cur.digest.update(chunk)
        cur.out.write(chunk)

    def on_part_end() -> None:
        if cur.part is not None and cur.out is not None and cur.digest is not None:
            cur.out.close()
            cur.part.sha256 = cur.digest.hexdigest()
            cur.out = None

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    received = 0
    pending = bytearray()
    try:
        async for chunk in body:
            received += len(chunk)
            if received > limits.max_request_bytes:
                raise UploadTooLarge(
                    f"Upload larger than {limits.max_request_bytes} bytes",
                    details={"limit": limits.max_request_bytes},
                )
            pending += chunk
            if len(pending) >= _WRITE_BATCH:
                # Parsing, hashing and the file writes happen in a worker thread, a batch at
                # a time: the event loop only collects the body.
                await asyncio.to_thread(parser.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(parser.write, bytes(pending))
        await asyncio.to_thread(parser.finalize)
    except MultipartParseError as exc:
        raise BadRequest(f"Invalid multipart body: {exc}", error_code="INVALID_MULTIPART") from exc
    finally:
        if cur.out is not None:
            await asyncio.to_thread(cur.out.close)
    if any(not p.sha256 for p in parts):
        raise BadRequest("multipart body ended inside a part", error_code="INVALID_MULTIPART")
    return parts
