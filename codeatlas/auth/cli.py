"""`codeatlas users …`: account administration from the command line."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from codeatlas.settings import Settings

users_app = typer.Typer(help="User accounts.", no_args_is_help=True)


@users_app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., prompt=True, help="E-mail address of the administrator."),
    password: str = typer.Option(
        ...,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        envvar="CODEATLAS_ADMIN_PASSWORD",
        help="Password (prompted if not given; or set CODEATLAS_ADMIN_PASSWORD).",
    ),
    full_name: str = typer.Option("", help="Display name."),
) -> None:
    """Create an active, verified administrator account (the database is migrated first)."""
    from email_validator import EmailNotValidError, validate_email

    from codeatlas.auth.errors import EmailTaken
    from codeatlas.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
    from codeatlas.cli import prepare_database
    from codeatlas.settings import get_settings

    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        _fail(f"Invalid e-mail address: {exc}")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        _fail(f"Password must be {MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters long")
    prepare_database()
    try:
        user_id = asyncio.run(_create_admin(get_settings(), email, password, full_name))
    except EmailTaken:
        _fail(f"An account with e-mail {email.lower()} already exists")
    typer.echo(f"created administrator {email.lower()} (id {user_id})")


async def _create_admin(settings: Settings, email: str, password: str, full_name: str) -> int:
    from codeatlas.auth import service
    from codeatlas.db.session import Database, atomic

    db = Database(settings)
    try:
        async with db.session() as session, atomic(session):
            user = await service.create_user(
                session, email, password, full_name=full_name, is_active=True, is_admin=True
            )
            return user.id
    finally:
        await db.dispose()


def _fail(message: str) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add this domain's commands (or sub-command groups) to the main CLI."""
    app.add_typer(users_app, name="users")
