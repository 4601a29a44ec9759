"""Settings owned by the code domain (mixed into :class:`codeatlas.settings.Settings`)."""

from __future__ import annotations

from pydantic import BaseModel


class CodeSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""
