"""Start-up and shut-down of the auth domain: called once by the app's lifespan."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import FastAPI

from codeatlas.auth.mail import build_mailer


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    """The mailer of account e-mail (SMTP or the log), on ``app.state.mailer``."""
    app.state.mailer = build_mailer(app.state.settings)
