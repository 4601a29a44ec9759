"""`codeatlas doctor`: check the configuration and every dependency, say what is wrong and
how to fix it. Each check is independent and bounded by a timeout, so one dead dependency
never hides the others."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from codeatlas.settings import Settings

CHECK_SECONDS = 5.0
MIN_FREE_BYTES = 1 << 30


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""


Check = Callable[[Settings], Awaitable[Finding]]


async def check_database(settings: Settings) -> Finding:
    from codeatlas.db import migrate
    from codeatlas.db.session import Database

    db = Database(settings)
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        return Finding(
            "database",
            False,
            f"{db.dialect} unreachable: {type(exc).__name__}",
            "check DATABASE_URL and that the server is up (pg_isready)",
        )
    finally:
        await db.dispose()
    current = await asyncio.to_thread(migrate.current_revision, settings)
    head = migrate.head_revision()
    if current != head:
        return Finding(
            "database",
            False,
            f"schema at {current or 'nothing'}, code expects {head}",
            "run `codeatlas migrate upgrade` (serve does it unless MIGRATE_ON_START=false)",
        )
    return Finding("database", True, f"{db.dialect}, schema at head ({head})")


async def check_redis(settings: Settings) -> Finding:
    if not settings.redis_url:
        return Finding(
            "redis", True, "REDIS_URL unset: `codeatlas serve` starts an embedded Valkey"
        )
    from codeatlas.core.redis_client import create_redis

    client = create_redis(settings)
    assert client is not None
    try:
        await client.ping()
        info = await client.info("memory")
    except (RedisError, OSError) as exc:
        return Finding(
            "redis", False, f"unreachable: {type(exc).__name__}", "check REDIS_URL (redis-cli ping)"
        )
    finally:
        await client.aclose()
    return Finding("redis", True, f"ping ok, {info.get('used_memory_human', '?')} used")


async def check_vector_store(settings: Settings) -> Finding:
    if not settings.qdrant_url:
        return Finding("vector_store", True, "embedded Qdrant engine under DATA_DIR")
    headers = {"api-key": settings.qdrant_api_key} if settings.qdrant_api_key else {}
    try:
        async with httpx.AsyncClient(timeout=CHECK_SECONDS, headers=headers) as client:
            response = await client.get(settings.qdrant_url.rstrip("/") + "/collections")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return Finding(
            "vector_store",
            False,
            f"Qdrant at QDRANT_URL unreachable: {type(exc).__name__}",
            "check QDRANT_URL / QDRANT_API_KEY",
        )
    return Finding("vector_store", True, "Qdrant server answers")


async def check_llm(settings: Settings) -> Finding:
    base = getattr(settings, "llm_base_url", None)
    if not base:
        return Finding("llm", True, "no LLM_BASE_URL: chat answers 503 LLM_NOT_CONFIGURED")
    key = getattr(settings, "llm_api_key", None) or ""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        async with httpx.AsyncClient(timeout=CHECK_SECONDS, headers=headers) as client:
            response = await client.get(str(base).rstrip("/") + "/models")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return Finding(
            "llm",
            False,
            f"GET /models failed: {type(exc).__name__}",
            "check LLM_BASE_URL and LLM_API_KEY",
        )
    return Finding("llm", True, "GET /models ok")


async def check_render(settings: Settings) -> Finding:
    if not settings.render_endpoint:
        return Finding("render", True, "in-process renderer (RENDER_ENDPOINT unset)")
    try:
        async with httpx.AsyncClient(timeout=CHECK_SECONDS) as client:
            response = await client.get(settings.render_endpoint.rstrip("/") + "/health/ready")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return Finding(
            "render",
            False,
            f"render-svc not ready: {type(exc).__name__}",
            "start `codeatlas render-svc` or unset RENDER_ENDPOINT",
        )
    return Finding("render", True, "render-svc ready")


async def check_data_dir(settings: Settings) -> Finding:
    return await asyncio.to_thread(_data_dir_finding, Path(settings.data_dir))


def _data_dir_finding(directory: Path) -> Finding:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".doctor-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Finding(
            "data_dir", False, f"{directory} not writable: {exc.strerror}", "fix DATA_DIR's owner"
        )
    free = shutil.disk_usage(directory).free
    if free < MIN_FREE_BYTES:
        return Finding(
            "data_dir", False, f"only {free >> 20} MiB free under {directory}", "free disk space"
        )
    return Finding("data_dir", True, f"{directory.resolve()} writable, {free >> 30} GiB free")


async def check_secret(settings: Settings) -> Finding:
    from codeatlas.settings import PLACEHOLDER_SECRETS

    if settings.secret_key in PLACEHOLDER_SECRETS or len(settings.secret_key) < 32:
        return Finding(
            "secret_key",
            False,
            "SECRET_KEY is a placeholder or shorter than 32 characters",
            "unset it (a random key is kept in DATA_DIR) or set a long random value",
        )
    return Finding("secret_key", True, "set")


CHECKS: list[Check] = [
    check_data_dir,
    check_secret,
    check_database,
    check_redis,
    check_vector_store,
    check_llm,
    check_render,
]


async def run_checks(settings: Settings) -> list[Finding]:
    async def bounded(check: Check) -> Finding:
        name = check.__name__.removeprefix("check_")
        try:
            return await asyncio.wait_for(check(settings), CHECK_SECONDS * 2)
        except TimeoutError:
            return Finding(name, False, "timed out", "the dependency does not answer")

    return list(await asyncio.gather(*(bounded(c) for c in CHECKS)))
