"""Wire shapes of the rendering API and of render-svc (the same body on both hops)."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field

from codeatlas.rendering.core import RenderOptions, RenderResult

__all__ = ["STYLE_PATTERN", "RenderRequest", "RenderResult", "Renderer"]

#: Pygments style names are lowercase words with dashes/underscores ("github-dark").
STYLE_PATTERN = r"^[a-z0-9_-]{1,40}$"


class RenderRequest(BaseModel):
    """Markdown to render, and which features to use."""

    model_config = ConfigDict(extra="forbid")

    markdown: str = Field(
        description="CommonMark + tables, strikethrough, task lists, `$math$`, fenced code.",
        examples=["# Title\n\n```python\ndef hello() -> str:\n    return 'hi'\n```\n"],
    )
    options: RenderOptions = Field(
        default_factory=RenderOptions, description="Feature switches; all on by default."
    )


class Renderer(enum.StrEnum):
    """Which path produced a response: the value of the ``X-Renderer`` header."""

    LOCAL = "local"
    REMOTE = "remote"
    FALLBACK = "local-fallback"
    CACHE = "cache"
