"""The error codes of uploads, each a class of the AppError family (one envelope)."""

from __future__ import annotations

from codeatlas.errors import AppError, BadRequest, PayloadTooLarge


class FileTooLarge(PayloadTooLarge):
    """One file, uploaded or inside an archive, is over UPLOAD_MAX_FILE_BYTES."""

    error_code = "FILE_TOO_LARGE"


class TooManyFiles(AppError):
    """More files (archive entries included) than UPLOAD_MAX_FILES."""

    status_code = 400
    error_code = "TOO_MANY_FILES"


class UploadTooLarge(PayloadTooLarge):
    """The request body is over UPLOAD_MAX_REQUEST_BYTES."""

    error_code = "UPLOAD_TOO_LARGE"


class ArchiveTooLarge(PayloadTooLarge):
    """An archive is over UPLOAD_MAX_ARCHIVE_BYTES, or unpacks to more than
    UPLOAD_ARCHIVE_MAX_TOTAL_BYTES."""

    error_code = "ARCHIVE_TOO_LARGE"


class ArchiveRatioExceeded(AppError):
    """An archive expands more than UPLOAD_ARCHIVE_MAX_RATIO times (a bomb)."""

    status_code = 400
    error_code = "ARCHIVE_RATIO_EXCEEDED"


class ArchiveInvalid(BadRequest):
    """Corrupt, encrypted, sparse or otherwise unreadable archive."""

    error_code = "ARCHIVE_INVALID"
