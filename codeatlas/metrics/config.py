"""Settings of the metrics endpoint."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MetricsSettings(BaseModel):
    metrics_enabled: bool = Field(
        True, description="Serve Prometheus metrics at `/metrics` (false: 404)."
    )
    metrics_token: str = Field(
        "",
        description=(
            "Bearer token a scraper must send to `/metrics`. Empty: only clients on the "
            "loopback interface may read it (metrics are never public by default)."
        ),
    )
    metrics_slow_query_seconds: float = Field(
        0.2,
        description=(
            "Seconds after which a database statement counts in codeatlas_db_slow_queries_total."
        ),
    )
