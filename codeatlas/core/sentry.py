"""Sentry (checklist 3-B): on when SENTRY_DSN is set, never with PII or request bodies.

Every event carries the ``request_id`` tag of the work it came from (an HTTP request, a
background chat turn, a job: whatever bound the id, see :mod:`codeatlas.core.context`), so
an error report leads straight to that request's log lines. Authorization headers, cookies
and tokens are scrubbed before an event leaves the process.
"""

from __future__ import annotations

import logging
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
        max_request_body_size="never",
        before_send=before_send,  # type: ignore[arg-type]
        **_no_pii(),
    )
    return True


def _no_pii() -> dict[str, Any]:
    """Options whose spelling changed with sentry-sdk 3.0 (which rejects the old ones).

    No personal data: ``send_default_pii=False`` up to 2.x, ``data_collection`` from 3.0
    (``before_send`` scrubs what remains either way). Error log records as events: 2.x's
    default; 3.0 made ``event_level`` opt-in and ships INFO records as "Sentry logs"
    instead, which is off here (log lines stay in our own logs).
    """
    from sentry_sdk.integrations.logging import LoggingIntegration

    if int(sentry_sdk.VERSION.split(".")[0]) >= 3:
        return {
            "data_collection": {"user_info": False, "http_bodies": [], "cookies": {"mode": "off"}},
            "integrations": [
                LoggingIntegration(
                    level=None, event_level=logging.ERROR, breadcrumb_level=logging.INFO
                )
            ],
        }
    return {"send_default_pii": False}
