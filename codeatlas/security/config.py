"""Settings of the HTTP security layer (mixed into :class:`codeatlas.settings.Settings`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode


class SecuritySettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""

    hsts_max_age: int = Field(
        0,
        ge=0,
        description=(
            "Set when CodeAtlas is reached over HTTPS (directly or behind a TLS proxy): every "
            "response carries `Strict-Transport-Security: max-age=<this>; includeSubDomains`. "
            "0 (default): no HSTS header, so a plain-HTTP install is not locked out."
        ),
    )
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated origins (e.g. `https://app.example.com`) allowed to call the API "
            "from a browser on another origin. Empty (default): CORS stays closed, no "
            "Access-Control-* header is ever sent."
        ),
    )

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip().rstrip("/") for p in value.split(",") if p.strip()]
        return value

    @field_validator("cors_allow_origins")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or "://" not in origin:
                raise ValueError(f"CORS_ALLOW_ORIGINS needs full origins, not {origin!r}")
        return value
