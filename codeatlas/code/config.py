"""Settings owned by the code domain (mixed into :class:`codeatlas.settings.Settings`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MiB = 1024 * 1024


class CodeSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""

    # -- 1-B -------------------------------------------------------------------------------
    upload_path_validation: Literal["enforce", "warn"] = Field(
        "enforce",
        description=(
            "1-B roll-back. `enforce`: an upload path that fails validation is refused with "
            "400 PATH_NOT_ALLOWED. `warn`: the reason is logged and the file is stored under "
            "a sanitised path instead (the response says so); nothing is ever written "
            "outside UPLOAD_ROOT either way."
        ),
    )

    # -- upload limits ----------------------------------------------------------------------
    upload_max_file_bytes: int = Field(
        10 * MiB,
        gt=0,
        description="Largest single file, uploaded or inside an archive (FILE_TOO_LARGE, 413).",
    )
    upload_max_files: int = Field(
        2000,
        gt=0,
        description=(
            "Most files one upload may store, archive entries included (TOO_MANY_FILES, 400)."
        ),
    )
    upload_max_request_bytes: int = Field(
        200 * MiB,
        gt=0,
        description="Largest request body of an upload, as received (UPLOAD_TOO_LARGE, 413).",
    )
    upload_max_archive_bytes: int = Field(
        100 * MiB,
        gt=0,
        description="Largest single archive as uploaded, compressed (ARCHIVE_TOO_LARGE, 413).",
    )
    upload_archive_max_total_bytes: int = Field(
        200 * MiB,
        gt=0,
        description="Most bytes one archive may unpack to (ARCHIVE_TOO_LARGE, 413).",
    )
    upload_archive_max_ratio: float = Field(
        100.0,
        gt=1,
        description=(
            "Largest uncompressed/compressed ratio of an archive, checked once its output "
            "passes UPLOAD_ARCHIVE_RATIO_MIN_BYTES (ARCHIVE_RATIO_EXCEEDED, 400): zip bombs."
        ),
    )
    upload_archive_ratio_min_bytes: int = Field(
        4 * MiB,
        ge=0,
        description=(
            "Output size below which the ratio is not checked: a small, very compressible "
            "archive of source code is not a bomb."
        ),
    )

    # -- lists and search --------------------------------------------------------------------
    filename_search_max_results: int = Field(
        100, gt=0, description="Most results one filename search may return (`limit` cap)."
    )
    rate_limit_upload: str = Field(
        "60/minute",
        description="SlowAPI limit per client IP on POST /projects/{id}/files (uploads).",
    )
