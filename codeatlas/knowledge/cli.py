"""Command-line commands of the knowledge domain: `codeatlas reindex`."""

from __future__ import annotations

import asyncio
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


async def _run_here(settings: Settings, collection: str, force: bool) -> dict[str, int]:
    from codeatlas.db.session import Database
    from codeatlas.knowledge.reindexing import reindex as run_reindex
    from codeatlas.knowledge.runtime import configure

    runtime = configure(settings)
    db = Database(settings)
    last: dict[str, int] = {}

    def progress(name: str, done: int, total: int) -> None:
        if done == total or done - last.get(name, 0) >= 100:
            last[name] = done
            typer.echo(f"{name}: {done}/{total}")

    try:
        return await run_reindex(runtime, db, collection, force=force, progress=progress)
    finally:
        await runtime.aclose()
        await db.dispose()


async def _enqueue(settings: Settings, collection: str, force: bool) -> str:
    from codeatlas.db.session import Database, atomic
    from codeatlas.jobs.broker import build_broker, close_broker
    from codeatlas.jobs.enqueue import BrokerDispatcher, enqueue, set_dispatcher
    from codeatlas.jobs.runtime import JobRuntime

    db = Database(settings)
    broker = build_broker(settings, JobRuntime(settings))
    previous = set_dispatcher(BrokerDispatcher(broker))
    try:
        async with db.session() as session, atomic(session):
            job = enqueue(session, "knowledge.reindex", collection, int(force), settings=settings)
        return job.message_id
    finally:
        set_dispatcher(previous)
        close_broker(broker)
        await db.dispose()


def reindex(
    collection: str = typer.Option(
        "all", help="kb_entries, code_chunks or all.", show_default=True
    ),
    force: bool = typer.Option(
        False, help="Drop and rebuild even when the collection's model matches."
    ),
    enqueue_job: bool = typer.Option(
        False,
        "--enqueue",
        help="Send a `knowledge.reindex` job to the workers (needs REDIS_URL) instead of "
        "running here.",
    ),
) -> None:
    """Rebuild the vector index with the configured embedding model.

    A collection built with another model (or size) is dropped and recreated; then every
    code document and knowledge-base entry is embedded again (unchanged pieces of a matching
    collection are kept) and points of deleted sources are removed. With the embedded vector
    store (no QDRANT_URL) stop `codeatlas serve` first, or use --enqueue / the admin endpoint
    POST /api/v1/knowledge/reindex so the server's own workers do it.
    """
    import codeatlas.knowledge.tasks  # noqa: F401  (registers knowledge.reindex)
    from codeatlas.knowledge.indexing import CollectionNotReady
    from codeatlas.knowledge.reindexing import resolve_collections

    settings = _settings()
    try:
        resolve_collections(collection)
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(code=2) from None
    if enqueue_job:
        if not settings.redis_url:
            typer.secho("--enqueue needs REDIS_URL (the workers' broker)", fg="red", err=True)
            raise typer.Exit(code=1)
        message_id = asyncio.run(_enqueue(settings, collection, force))
        typer.echo(f"knowledge.reindex enqueued: {message_id}")
        return
    try:
        done = asyncio.run(_run_here(settings, collection, force))
    except CollectionNotReady as exc:
        typer.secho(
            f"cannot open the vector store: {exc}\n"
            "Is `codeatlas serve` running on this data directory? Stop it first, or run "
            "`codeatlas reindex --enqueue` / POST /api/v1/knowledge/reindex.",
            fg="red",
            err=True,
        )
        raise typer.Exit(code=1) from None
    for name, count in done.items():
        typer.echo(f"re-indexed {name}: {count} sources")


def register(app: typer.Typer) -> None:
    """Add this domain's commands (or sub-command groups) to the main CLI."""
    app.command("reindex")(reindex)
