"""The `codeatlas` command line."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from codeatlas import __version__

app = typer.Typer(
    help="CodeAtlas: a self-hosted, code-aware AI assistant backend.", no_args_is_help=True
)
migrate_app = typer.Typer(help="Database migrations (Alembic is the only source of the schema).")
app.add_typer(migrate_app, name="migrate")


def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def prepare_database() -> None:
    """Bring the schema to head before serving (5-C); ALLOW_SYNC_DB is the dev-only escape."""
    from codeatlas.db import migrate
    from codeatlas.settings import get_settings

    settings = get_settings()
    try:
        if settings.allow_sync_db:
            typer.secho("ALLOW_SYNC_DB=true: building schema with create_all (dev only)", err=True)
            migrate.create_all_dev(settings)
        elif settings.migrate_on_start:
            migrate.upgrade(settings)
    except migrate.MigrationError as exc:
        _fail(f"Database migration failed, not starting: {exc}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
    workers: int = typer.Option(1, help="Number of uvicorn worker processes."),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
) -> None:
    """Migrate the database to head, then serve the API."""
    import uvicorn

    from codeatlas.core.logging import configure_logging, logging_config
    from codeatlas.settings import get_settings

    try:
        settings = get_settings()
    except ValueError as exc:
        _fail(f"Invalid settings: {exc}")
        return
    configure_logging(settings.log_level, settings.log_format)
    from codeatlas.core.instance_lock import InstanceLocked, hold_data_dir
    from codeatlas.llm.local import local_llm_for_serve
    from codeatlas.serving import (
        ServeRefused,
        check_serve_options,
        clean_exit_on_sigterm,
        uses_embedded_state,
        worker_child_for_serve,
    )

    try:
        check_serve_options(settings, workers)
    except ServeRefused as exc:
        _fail(str(exc))
    with contextlib.ExitStack() as stack:
        stack.enter_context(clean_exit_on_sigterm())  # SIGTERM at any point unwinds the stack
        if uses_embedded_state(settings):
            # One embedded instance per data directory: checked before anything is touched.
            try:
                stack.enter_context(hold_data_dir(settings.data_dir))
            except InstanceLocked as exc:
                _fail(str(exc))
        prepare_database()
        if workers > 1 and not reload:
            _prepare_multiprocess_metrics(settings.data_dir)
        from codeatlas.core.embedded_redis import redis_for_serve

        # REDIS_URL unset: an embedded Valkey for the workers, stopped when serving ends.
        stack.enter_context(redis_for_serve(settings))
        # The local model's server, when it is the LLM provider (LLM_PROVIDER=local/auto).
        stack.enter_context(local_llm_for_serve(settings))
        # QDRANT_URL unset: the supervised worker child owns the vector store (serving.py).
        try:
            stack.enter_context(worker_child_for_serve(get_settings(), workers))
        except ServeRefused as exc:
            _fail(str(exc))
        uvicorn.run(
            "codeatlas.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers if not reload else None,
            reload=reload,
            log_config=logging_config(settings.log_level, settings.log_format),
            # X-Forwarded-For is trusted only from TRUSTED_PROXIES (codeatlas.core.ratelimit);
            # uvicorn's own rewriting would trust 127.0.0.1 regardless.
            proxy_headers=False,
            server_header=False,  # do not announce "server: uvicorn" (issue 11, finding 7)
            ws_per_message_deflate=settings.ws_per_message_deflate,
        )


def _prepare_multiprocess_metrics(data_dir: Path) -> None:
    """`/metrics` of N uvicorn workers: prometheus-client's multi-process mode, whose files
    live in a directory emptied at each start (stale files would count dead processes)."""
    import os
    import shutil

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(data_dir / "prometheus")
    shutil.rmtree(directory, ignore_errors=True)
    Path(directory).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


@migrate_app.command("upgrade")
def migrate_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Upgrade the database to a revision (default: head)."""
    from codeatlas.db import migrate
    from codeatlas.settings import get_settings

    try:
        migrate.upgrade(get_settings(), revision)
    except migrate.MigrationError as exc:
        _fail(str(exc))
    typer.echo(f"upgraded to {revision}")


# "-1" looks like an option to click; let it through as the revision argument.
@migrate_app.command("downgrade", context_settings={"ignore_unknown_options": True})
def migrate_downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base."),
) -> None:
    """Downgrade the database to a revision."""
    from codeatlas.db import migrate
    from codeatlas.settings import get_settings

    migrate.downgrade(get_settings(), revision)
    typer.echo(f"downgraded to {revision}")


@migrate_app.command("current")
def migrate_current() -> None:
    """Print the database's current revision and the code's head."""
    from codeatlas.db import migrate
    from codeatlas.settings import get_settings

    typer.echo(f"current: {migrate.current_revision(get_settings())}")
    typer.echo(f"head:    {migrate.head_revision()}")


@migrate_app.command("check")
def migrate_check() -> None:
    """Fail if the models have changes no migration covers (schema drift)."""
    from codeatlas.db import migrate
    from codeatlas.settings import get_settings

    try:
        migrate.check(get_settings())
    except migrate.MigrationError as exc:
        _fail(f"Schema drift: {exc}")
    typer.echo("no drift: models match migrations")


@app.command()
def version() -> None:
    """Print the CodeAtlas version."""
    typer.echo(__version__)


DOMAIN_CLIS = [
    "codeatlas.auth.cli",
    "codeatlas.jobs.cli",
    "codeatlas.rendering.cli",
    "codeatlas.knowledge.cli",
    "codeatlas.ops.cli",
]


def main() -> None:
    import importlib

    for module in DOMAIN_CLIS:
        importlib.import_module(module).register(app)
    # Domains that react to account activation register their hooks on import
    # (codeatlas.auth.activation): `users create-admin` must run them as the API does.
    importlib.import_module("codeatlas.projects.service")
    app(prog_name="codeatlas")


if __name__ == "__main__":
    main()
