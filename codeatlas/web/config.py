"""Settings owned by the web app (mixed into :class:`codeatlas.settings.Settings`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class WebSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""

    session_cookie_secure: Literal["auto", "always", "never"] = Field(
        "auto",
        description=(
            "The `Secure` flag of the web app's session cookies: `auto` sets it when the "
            "request came over HTTPS; use `always` behind a TLS-terminating reverse proxy."
        ),
    )
    web_view_max_bytes: int = Field(
        2 * 1024 * 1024,
        gt=0,
        description="Largest file the code browser highlights (bigger ones: download only).",
    )
