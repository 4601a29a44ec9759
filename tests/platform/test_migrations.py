"""5-C: Alembic is the only source of the schema; start-up migrates; drift is caught."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Column, MetaData, String, inspect

from codeatlas.db import migrate
from codeatlas.db.session import create_engine
from codeatlas.models import Base
from codeatlas.settings import Settings
from tests.conftest import BACKENDS, build_settings, free_port, make_database_url


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return make_database_url(request.param, tmp_path, "mig")


async def _tables(settings: Settings) -> set[str]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


def _env(url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(DATABASE_URL=url, DATA_DIR=str(data_dir), ENV="test", LOG_LEVEL="WARNING")
    return env


@pytest.mark.slow
async def test_serve_creates_schema_with_alembic(empty_url: str, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "codeatlas", "serve", "--port", str(port)],
        env=_env(empty_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        async with httpx.AsyncClient() as c:
            while True:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                try:
                    r = await c.get(f"http://127.0.0.1:{port}/health/ready")
                    if r.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not become ready"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    settings = build_settings(empty_url, tmp_path)
    assert {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"} <= await _tables(
        settings
    )
    assert await _current(settings) == migrate.head_revision()


async def _current(settings: Settings) -> str | None:
    import asyncio

    return await asyncio.to_thread(migrate.current_revision, settings)


def test_serve_exits_nonzero_when_migration_fails(tmp_path: Path) -> None:
    dead = f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/nothing"
    proc = subprocess.run(
        [sys.executable, "-m", "codeatlas", "serve", "--port", str(free_port())],
        env=_env(dead, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "Database migration failed, not starting" in proc.stderr


def test_drift_check_catches_model_change_without_migration(empty_url: str, tmp_path: Path) -> None:
    settings = build_settings(empty_url, tmp_path)
    migrate.upgrade(settings)
    migrate.check(settings)  # models and migrations agree

    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["users"].append_column(Column("nickname", String(40)))
    with pytest.raises(migrate.MigrationError, match="nickname"):
        migrate.check(settings, changed)


def test_downgrade_to_base_then_upgrade_to_head(empty_url: str, tmp_path: Path) -> None:
    import asyncio

    settings = build_settings(empty_url, tmp_path)
    migrate.upgrade(settings)
    migrate.downgrade(settings, "base")
    assert asyncio.run(_tables(settings)) <= {"alembic_version"}
    migrate.upgrade(settings)
    assert migrate.current_revision(settings) == migrate.head_revision()
    migrate.check(settings)


def test_revision_files_are_date_prefixed() -> None:
    versions = Path(migrate.MIGRATIONS_DIR) / "versions"
    names = sorted(p.name for p in versions.glob("*.py"))
    assert names and all(n[:8].isdigit() and n[8] == "_" for n in names), names


def test_no_create_all_in_app_code() -> None:
    root = Path(migrate.__file__).resolve().parents[1]
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "create_all(" in p.read_text() and p.name != "migrate.py"
    ]
    assert offenders == []


def test_allow_sync_db_and_placeholder_secret_refused_in_production() -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(env="production")
    with pytest.raises(ValueError, match="ALLOW_SYNC_DB"):
        Settings(env="production", secret_key="x" * 40, allow_sync_db=True)
    assert Settings(env="production", secret_key="x" * 40).env == "production"
