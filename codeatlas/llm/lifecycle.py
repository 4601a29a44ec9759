"""Start-up of the LLM client: which provider, the shared client, the `llm` readiness check.

The provider is chosen once (LLM_PROVIDER, see :mod:`.config`). Under `codeatlas serve` the
local model's server is started before the API workers and its URL is exported as
LLM_BASE_URL (:mod:`.local`), so here it is just another OpenAI-compatible endpoint.
Without an LLM the app still starts; chat answers 503 LLM_NOT_CONFIGURED.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI, Request

from codeatlas.llm.client import LLMClient
from codeatlas.llm.errors import LLMNotConfigured
from codeatlas.llm.local import extra_installed
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


def resolve_provider(settings: Settings) -> str:
    """`openai`, `local` or `none` for LLM_PROVIDER=auto; the setting itself otherwise."""
    if settings.llm_provider != "auto":
        return settings.llm_provider
    if settings.llm_base_url:
        return "openai"
    return "local" if extra_installed() else "none"


def llm_check(client: LLMClient) -> Any:
    async def check() -> dict[str, Any]:
        models = await client.list_models()
        return {"model": client.model, "models": len(models)}

    return check


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    settings: Settings = app.state.settings
    app.state.llm = None
    provider = resolve_provider(settings)
    if not settings.llm_base_url or provider == "none":
        if provider == "local":
            logger.warning(
                "LLM_PROVIDER=local but no local model server runs in this process: it is "
                "started by `codeatlas serve`; chat answers 503 LLM_NOT_CONFIGURED"
            )
        else:
            logger.info("no LLM configured (LLM_BASE_URL unset): chat answers 503")
        return
    client = LLMClient(settings)
    app.state.llm = client
    stack.push_async_callback(client.aclose)
    if settings.skip_openai_health:
        logger.info("SKIP_OPENAI_HEALTH=true: the LLM is not part of readiness")
    else:
        app.state.health.register("llm", llm_check(client))
    logger.info("LLM: %s at %s", client.model, client.base_url)


def get_llm(request: Request) -> LLMClient:
    """The app's client, or 503 LLM_NOT_CONFIGURED with what to set."""
    client: LLMClient | None = getattr(request.app.state, "llm", None)
    if client is None:
        raise LLMNotConfigured()
    return client
