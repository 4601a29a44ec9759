"""Start-up and shut-down of the knowledge domain: called once by the app's lifespan.

Builds the embedder and the vector store from the settings (embedded Qdrant engine under
DATA_DIR/vectors when QDRANT_URL is unset, the Qdrant server otherwise), creates or checks
the collections ``kb_entries`` and ``code_chunks`` for the configured model, loads the
local model, and registers the readiness check ``vector_store``.

Nothing here stops the app from starting: a store that is down, or a collection built by
another embedding model, is logged (with the advice to run `codeatlas reindex`) and turns
search into 503s with a clear code; everything else keeps working.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI

from codeatlas.knowledge import hooks
from codeatlas.knowledge.embeddings import EmbeddingUnavailable
from codeatlas.knowledge.runtime import (
    COLLECTIONS,
    REINDEX_ADVICE,
    KnowledgeRuntime,
    configure,
    reset,
)
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


def vector_store_check(runtime: KnowledgeRuntime) -> Any:
    """Readiness: the store answers and every collection holds this model's vectors."""

    async def check() -> dict[str, Any]:
        await runtime.store().health()
        problems: list[str] = []
        for name in COLLECTIONS.values():
            state = await runtime.ensure_collection(name)
            if state.mismatch:
                problems.append(f"{name}: {state.mismatch}; {REINDEX_ADVICE}")
            elif not state.ready:
                problems.append(f"{name}: {state.error}")
        if problems:
            raise RuntimeError("; ".join(problems))
        return {
            "backend": "qdrant" if runtime.settings.qdrant_url else "qdrant-edge",
            "model": runtime.model_name,
            "dimension": runtime.dimension,
        }

    return check


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    """Create this domain's long-lived resources; register their shut-down on `stack`."""
    settings: Settings = app.state.settings
    runtime = configure(settings)
    app.state.knowledge = runtime
    hooks.install()

    async def shutdown() -> None:
        await runtime.aclose()
        reset(runtime)

    stack.push_async_callback(shutdown)
    await runtime.ensure_collections(force=True)
    if settings.embedding_provider == "local":
        try:
            await runtime.embedder().embed(["warm up"])  # load the model now, not on a request
        except EmbeddingUnavailable as exc:
            logger.error("embedding model unavailable, semantic search will answer 503: %s", exc)
    app.state.health.register("vector_store", vector_store_check(runtime))
