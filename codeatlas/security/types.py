"""Input types shared by the routers: ids within their column's range, text without control
characters. Found by fuzzing (issue 11, finding 6): an id past the column type overflowed the
driver (500), and NUL bytes reached names and were stored."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator
from starlette.requests import HTTPConnection

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


# -- NUL characters, in every text input of the API -----------------------------------------
# PostgreSQL cannot store NUL in text (the driver raised, a 500 where SQLite stored it), and no
# name, query or content of this API means anything by one. A dependency of the whole
# /api/v1 router refuses them in path and query parameters and in parsed JSON and form bodies
# with 422 VALIDATION_ERROR naming the field (issue 11, finding 6). Upload file names are left
# to the upload path rules (`codeatlas/code/paths.py`), file contents to the parsers.
NUL = "\x00"


def _nul_locations(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, str):
        if NUL in value:
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                yield (*loc, key)
            yield from _nul_locations(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_locations(item, (*loc, index))


async def refuse_nul_characters(connection: HTTPConnection) -> None:
    found: list[tuple[str | int, ...]] = [
        ("path", name) for name, v in connection.path_params.items() if NUL in str(v)
    ]
    found += [("query", name) for name, v in connection.query_params.multi_items() if NUL in v]
    # Only bodies FastAPI already parsed for the route (cached on the request): never read one
    # the route does not take.
    parsed_json = getattr(connection, "_json", None)
    if parsed_json is not None:
        found += list(_nul_locations(parsed_json, ("body",)))
    form = getattr(connection, "_form", None)
    if form is not None:
        found += [("body", k) for k, v in form.multi_items() if isinstance(v, str) and NUL in v]
    if found:
        raise RequestValidationError(
            [
                {"type": "string_nul", "loc": loc, "msg": "must not contain NUL characters"}
                for loc in found
            ]
        )
