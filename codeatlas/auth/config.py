"""Settings owned by the auth domain (mixed into :class:`codeatlas.settings.Settings`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AuthSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""

    jwt_algorithm: str = Field("HS256", description="Signing algorithm of access tokens.")
    access_token_ttl_seconds: int = Field(
        900, description="Lifetime of an access token (short; refresh tokens renew it)."
    )
