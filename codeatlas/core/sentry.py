"""Sentry (checklist 3-B): on when SENTRY_DSN is set, never with PII or request bodies.

Every event carries the ``request_id`` tag of the work it came from (an HTTP request, a
background chat turn, a job: whatever bound the id, see :mod:`codeatlas.core.context`), so
an error report leads straight to that request's log lines. Authorization headers, cookies
and tokens are scrubbed before an event leaves the process.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk

from codeatlas.core.context import get_request_id

SCRUBBED = "[Filtered]"
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)


def _scrub_request(request: dict[str, Any]) -> None:
    headers = request.get("headers")
    if isinstance(headers, dict):
        for name in list(headers):
            if name.lower() in SECRET_HEADERS:
                headers[name] = SCRUBBED
    request.pop("cookies", None)
    request.pop("data", None)
    if "query_string" in request:
        request["query_string"] = SCRUBBED


def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    rid = get_request_id()
    tags = event.setdefault("tags", {})
    if rid and isinstance(tags, dict):
        tags.setdefault("request_id", rid)
    request = event.get("request")
    if isinstance(request, dict):
        _scrub_request(request)
    return event


def init_sentry(dsn: str, *, environment: str, release: str) -> bool:
    """Initialise the SDK; False (and nothing done) when ``dsn`` is empty."""
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        send_default_pii=False,
        max_request_body_size="never",
        before_send=before_send,  # type: ignore[arg-type]
    )
    return True
