"""Timestamps in responses always carry their UTC offset.

SQLite returns naive datetimes for ``DateTime(timezone=True)`` columns (they were stored as
UTC); PostgreSQL returns aware ones. Response models type their timestamps as
:data:`UtcDatetime`, so both databases give clients the same RFC 3339 ``date-time`` with an
offset (an offset-less one is not a valid OpenAPI ``date-time``: issue 11, finding 6).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_aware)]
