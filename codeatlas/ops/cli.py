"""Operator commands attached to `codeatlas` by :func:`register`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from codeatlas.settings import Settings


def _settings() -> Settings:
    from codeatlas.core.logging import configure_logging
    from codeatlas.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def doctor() -> None:
    """Check the configuration and every dependency; say what is wrong and how to fix it."""
    from codeatlas.ops.doctor import run_checks
    from codeatlas.settings import get_settings

    try:
        settings = get_settings()
    except ValueError as exc:
        typer.secho(f"FAIL settings: {exc}", fg="red")
        raise typer.Exit(code=1) from None
    findings = asyncio.run(run_checks(settings))
    for f in findings:
        mark = typer.style("ok  ", fg="green") if f.ok else typer.style("FAIL", fg="red")
        typer.echo(f"{mark} {f.name}: {f.detail}" + (f"\n     fix: {f.fix}" if f.fix else ""))
    if not all(f.ok for f in findings):
        raise typer.Exit(code=1)


def backup(out: Path = typer.Argument(..., help="The .tar.gz file to write.")) -> None:
    """Back up the embedded default's data directory while it serves (SQLite, uploads, key)."""
    from codeatlas.ops.backup import BackupError
    from codeatlas.ops.backup import backup as run_backup

    try:
        report = run_backup(_settings(), out)
    except BackupError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(code=1) from None
    total = sum(report.rows.values())
    typer.echo(f"backup written to {out}: {total} rows, {report.files} files")
    for missing in report.missing_files:
        typer.secho(f"deleted while the backup ran (not included): {missing}", err=True)


def restore(
    archive: Path = typer.Argument(..., help="A file written by `codeatlas backup`."),
    skip_reindex: bool = typer.Option(
        False, help="Do not rebuild the vector store now (run `codeatlas reindex` later)."
    ),
) -> None:
    """Restore a backup into an empty DATA_DIR, then rebuild the vector store from it."""
    from codeatlas.knowledge.cli import reindex
    from codeatlas.ops.backup import BackupError
    from codeatlas.ops.backup import restore as run_restore

    settings = _settings()
    try:
        rows = run_restore(settings, archive)
    except BackupError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"restored {sum(rows.values())} rows into {settings.data_dir}")
    if not skip_reindex:
        reindex(collection="all", force=True, enqueue_job=False)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
    app.command("backup")(backup)
    app.command("restore")(restore)
