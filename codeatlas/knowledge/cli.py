"""Command-line commands of the knowledge domain, attached to `codeatlas` by :func:`register`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this domain's commands (or sub-command groups) to the main CLI."""
