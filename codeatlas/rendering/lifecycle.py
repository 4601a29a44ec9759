"""Start-up and shut-down of the rendering domain: called once by the app's lifespan."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import FastAPI


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    """Create this domain's long-lived resources; register their shut-down on `stack`."""
