"""Start-up of the metrics domain: statement timing on this process's engine and the
scrape-time sources. Other domains add a source with ``app.state.metrics_hooks.append``."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event

from codeatlas.metrics.collect import DEFAULT_HOOKS
from codeatlas.metrics.registry import DB_QUERY_DURATION, DB_SLOW_QUERIES


def instrument_engine(engine: Any, slow_after: float) -> None:
    """Time every statement of ``engine`` (a sync Engine; the async one's ``sync_engine``)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn: Any, *_: Any) -> None:
        conn.info.setdefault("codeatlas_query_start", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(conn: Any, *_: Any) -> None:
        starts = conn.info.get("codeatlas_query_start")
        if not starts:
            return
        elapsed = time.perf_counter() - starts.pop()
        DB_QUERY_DURATION.observe(elapsed)
        if elapsed > slow_after:
            DB_SLOW_QUERIES.inc()

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        conn = context.connection
        if conn is not None and conn.info.get("codeatlas_query_start"):
            conn.info["codeatlas_query_start"].pop()


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    settings = app.state.settings
    app.state.metrics_hooks = list(DEFAULT_HOOKS)
    if settings.metrics_enabled:
        instrument_engine(app.state.db.engine.sync_engine, settings.metrics_slow_query_seconds)
