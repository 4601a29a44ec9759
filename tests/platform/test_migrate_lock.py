"""5-C under concurrency: several processes migrating one empty database at once all succeed.

Without the advisory lock (`codeatlas/db/migrate_lock.py`) they race on CREATE TABLE and the
version table; with it one migrates and the others find head.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from codeatlas.db import migrate
from tests.conftest import build_settings, make_database_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_four_processes_migrating_an_empty_database_at_once_all_succeed(tmp_path: Path) -> None:
    url = make_database_url("postgresql", tmp_path, "migrate_race")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(DATABASE_URL=url, ENV="test", LOG_LEVEL="INFO")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "codeatlas", "migrate", "upgrade"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    settings = build_settings(url, tmp_path)
    assert migrate.current_revision(settings) == migrate.head_revision()
    migrate.check(settings)  # the schema is exactly the models, nothing applied twice
