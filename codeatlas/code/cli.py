"""Command-line commands of the code domain, attached to `codeatlas` by :func:`register`."""

from __future__ import annotations

import os

import typer

bench_app = typer.Typer(help="Benchmarks that need a real database (see docs/benchmarks.md).")

DEFAULT_BENCH_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/codeatlas_bench_filenames"


@bench_app.command("filename-search")
def filename_search(
    rows: int = typer.Option(1_000_000, help="Code documents to generate."),
    projects: int = typer.Option(1000, help="Projects they are spread over."),
    queries: int = typer.Option(1000, help="Queries in the timed mix."),
    database_url: str = typer.Option(
        os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_URL),
        help="PostgreSQL URL of a database the benchmark may DROP and re-create.",
    ),
    http: bool = typer.Option(True, help="Also time GET /search/files on `codeatlas serve`."),
    redis_url: str | None = typer.Option(
        os.environ.get("REDIS_URL"), help="REDIS_URL for the server (else embedded)."
    ),
) -> None:
    """6-A: p50/p95/p99 of the filename search with and without the trigram index."""
    from codeatlas.code.bench import run

    raise typer.Exit(run(database_url, rows, projects, queries, http, redis_url))


def register(app: typer.Typer) -> None:
    """Add this domain's commands (or sub-command groups) to the main CLI."""
    app.add_typer(bench_app, name="bench")
