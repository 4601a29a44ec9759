"""Settings owned by the knowledge domain (mixed into :class:`codeatlas.settings.Settings`)."""

from __future__ import annotations

from pydantic import BaseModel


class KnowledgeSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""
