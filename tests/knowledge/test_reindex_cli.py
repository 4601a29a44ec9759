"""`codeatlas reindex` as a real process: it rebuilds a collection of another model, and it
refuses clearly while a server holds the embedded store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest

from codeatlas.db.session import Database
from codeatlas.knowledge.embeddings import LOCAL_MODEL_NAME
from codeatlas.knowledge.runtime import CODE_COLLECTION, KB_COLLECTION
from codeatlas.knowledge.vector_store import EdgeVectorStore, SearchFilter
from codeatlas.settings import Settings
from tests.knowledge.conftest import INLINE, Team, start_kit
from tests.knowledge.test_unavailable import _collection_of_another_model


async def _reindex(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=settings.resolved_database_url,
        DATA_DIR=str(settings.data_dir),
        ENV="test",
        LOG_LEVEL="WARNING",
    )
    # In a thread: a blocking wait would freeze the test's event loop, where a live app's
    # job relay may hold SQLite's write lock the command then waits for.
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "codeatlas", "reindex", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
async def test_reindex_command_rebuilds_and_refuses_while_served(
    app_factory: Any, db: Database, team: Team
) -> None:
    settings = db.settings
    await _collection_of_another_model(settings.resolved_vector_store_path)
    h = team.headers(team.owner)
    async for kit in start_kit(app_factory(**INLINE)):
        for title in ("Deploys", "Backups"):
            body = {"title": title, "content": f"{title} are described here."}
            assert (
                await kit.client.post("/api/v1/knowledge/entries", json=body, headers=h)
            ).is_success
            await kit.drain()
        # The server holds the embedded store: the command says so instead of waiting.
        busy = await _reindex(settings)
        assert busy.returncode == 1, busy.stdout + busy.stderr
        assert "Stop it first" in busy.stderr

    done = await _reindex(settings)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "re-indexed kb_entries: 2 sources" in done.stdout
    assert "re-indexed code_chunks: 0 sources" in done.stdout

    store = EdgeVectorStore(settings.resolved_vector_store_path)
    try:
        await store.create_index_if_missing(KB_COLLECTION, 384, model_name=LOCAL_MODEL_NAME)
        await store.create_index_if_missing(CODE_COLLECTION, 384, model_name=LOCAL_MODEL_NAME)
        points = await store.list_points(KB_COLLECTION, SearchFilter())
        assert {p["title"] for p in points.values()} == {"Deploys", "Backups"}
        assert {p["kind"] for p in points.values()} == {"entry"}
    finally:
        await store.close()

    bad = await _reindex(settings, "--collection", "nope")
    assert bad.returncode == 2 and "unknown collection" in bad.stderr
