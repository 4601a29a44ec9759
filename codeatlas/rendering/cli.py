"""Command-line commands of the rendering domain, attached to `codeatlas` by :func:`register`."""

from __future__ import annotations

import typer


def render_svc(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8080, help="Port to bind."),
    workers: int = typer.Option(1, help="Number of uvicorn worker processes."),
) -> None:
    """Serve render-svc: POST /render/markdown, /health/live, /health/ready (4-A).

    Point the API's RENDER_ENDPOINT at it. It needs no database and no Redis.
    """
    import uvicorn

    from codeatlas.core.logging import configure_logging, logging_config
    from codeatlas.settings import get_settings

    try:
        settings = get_settings()
    except ValueError as exc:
        typer.secho(f"Invalid settings: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        "codeatlas.rendering.svc:create_svc_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logging_config(settings.log_level, settings.log_format),
        server_header=False,  # do not announce "server: uvicorn"
    )


def register(app: typer.Typer) -> None:
    """Add this domain's commands (or sub-command groups) to the main CLI."""
    app.command("render-svc")(render_svc)
