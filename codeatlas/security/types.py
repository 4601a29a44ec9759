"""Input types shared by the routers: ids within their column's range, text without control
characters. Found by fuzzing (issue 11, finding 6): an id past the column type overflowed the
driver (500), and NUL bytes reached names and were stored."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

INT4_MAX = 2**31 - 1  # INTEGER columns (jobs, users, projects)

JobIdPath = Annotated[int, Path(ge=1, le=INT4_MAX)]
OptionalIdQuery = Annotated[int | None, Query(ge=1, le=INT4_MAX)]
UserIdPath = Annotated[int, Path(ge=1, le=INT4_MAX)]
InvitationIdPath = Annotated[int, Path(ge=1, le=INT4_MAX)]


def _no_control_characters(value: str) -> str:
    # Cc covers NUL, the C0/C1 controls and DEL; line separators too (they break log lines)
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _optional(value: str | None) -> str | None:
    return None if value is None else _no_control_characters(value)


PlainText = AfterValidator(_no_control_characters)
OptionalPlainText = AfterValidator(_optional)
