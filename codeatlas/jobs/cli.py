"""Command-line commands of the jobs domain: `codeatlas worker` and `codeatlas jobs ...`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from codeatlas.settings import Settings

jobs_app = typer.Typer(help="Background jobs: inspect and re-queue.")


def _settings() -> Settings:
    from codeatlas.core.logging import configure_logging
    from codeatlas.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def worker(
    processes: int = typer.Option(1, min=1, help="Worker processes (each heartbeats)."),
    threads: int = typer.Option(
        0, min=0, help="Threads per process (0: JOBS_WORKER_THREADS from the settings)."
    ),
    queues: str = typer.Option(
        "",
        help=(
            "Comma-separated queues to consume, e.g. `code.parse` or `knowledge.embed` "
            "(default: JOBS_WORKER_QUEUES, else all)."
        ),
    ),
) -> None:
    """Run Dramatiq workers that process background jobs until SIGTERM/SIGINT."""
    from codeatlas.jobs.worker import run_worker_process, supervise

    settings = _settings()
    if not settings.redis_url:
        typer.secho("REDIS_URL is not set: a worker needs the Redis broker", err=True, fg="red")
        raise typer.Exit(code=1)
    threads = threads or settings.jobs_worker_threads
    chosen = [q.strip() for q in queues.split(",") if q.strip()] or settings.jobs_worker_queues
    if processes == 1:
        run_worker_process(settings, threads, chosen or None)
    else:
        raise typer.Exit(code=supervise(processes, threads, chosen or None))


@jobs_app.command("requeue-stuck")
def requeue_stuck(
    older_than: float = typer.Option(
        600.0,
        help="Seconds a job must have stayed `queued`/`retrying` (or `running` past its "
        "lease) to count as stuck.",
    ),
    dry_run: bool = typer.Option(False, help="Only list the jobs."),
) -> None:
    """Re-queue stuck jobs through the outbox (needs only the database: any running relay,
    in `codeatlas serve` or `codeatlas worker`, sends them)."""
    import asyncio

    from codeatlas.jobs.service import requeue_stuck_jobs

    settings = _settings()
    message_ids = asyncio.run(requeue_stuck_jobs(settings, older_than, dry_run=dry_run))
    for message_id in message_ids:
        typer.echo(message_id)
    typer.echo(f"{len(message_ids)} job(s) {'stuck' if dry_run else 're-queued'}")


def register(app: typer.Typer) -> None:
    """Add this domain's commands to the main CLI."""
    app.command("worker")(worker)
    app.add_typer(jobs_app, name="jobs")
