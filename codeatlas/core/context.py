"""The request id of the current unit of work, readable from anywhere.

HTTP requests get it from asgi-correlation-id's middleware; background jobs and WebSocket
pushes set it themselves with :func:`bind_request_id`, so every log line and payload of the
same piece of work carries the same id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from asgi_correlation_id.context import correlation_id

# Ids we accept from a client: short, printable, no separators a log parser could trip on.
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")


def get_request_id() -> str | None:
    """The id of the request (or job) this code runs for, if any."""
    return correlation_id.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def is_valid_request_id(value: str) -> bool:
    """Accept ids of 8-128 safe characters; anything else is replaced, never logged raw."""
    return bool(_VALID_ID.fullmatch(value))


@contextmanager
def bind_request_id(value: str | None) -> Iterator[str]:
    """Run a block (a job, a WebSocket push) under a given request id."""
    rid = value if value and is_valid_request_id(value) else new_request_id()
    token = correlation_id.set(rid)
    try:
        yield rid
    finally:
        correlation_id.reset(token)
