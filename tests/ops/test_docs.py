"""The operator docs stay true: the settings reference matches the code, and every
`codeatlas` command in the run-books runs (on a fresh embedded data directory) or, where it
needs a running cluster component, at least parses."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from codeatlas.ops.settings_doc import render

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RUNBOOKS = [*sorted((DOCS / "runbooks").glob("*.md")), DOCS / "OPERATIONS.md"]
# Commands that need something this test does not start (a broker, a server, a file) are
# only checked to parse, through the sub-command's --help.
PARSE_ONLY = ("--enqueue", "serve", "backup", "restore", "$(")


def test_settings_reference_is_generated_from_the_code() -> None:
    assert (DOCS / "SETTINGS.md").read_text() == render(), (
        "regenerate: python -m codeatlas.ops.settings_doc > docs/SETTINGS.md"
    )


def runbook_commands() -> list[tuple[str, str]]:
    found = []
    for page in RUNBOOKS:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in block.splitlines():
                if re.match(r"^([A-Z_]+=\S+\s+)*codeatlas\s", line.strip()):
                    found.append((page.name, line.strip()))
    return found


COMMANDS = runbook_commands()


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "QDRANT_", "EMBEDDING_", "JOBS_", "LLM_"))
    }
    env.update(
        DATA_DIR=str(data_dir),
        SECRET_KEY="runbook-test-secret-0123456789abcdefghijklmnopq",
        ENV="test",
    )
    return env


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("runbook")
    subprocess.run(
        [sys.executable, "-m", "codeatlas", "migrate", "upgrade"],
        env=_env(directory),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return directory


def test_runbooks_have_commands() -> None:
    pages = {page for page, _ in COMMANDS}
    assert {"requeue-stuck-jobs.md", "rebuild-kb-indices.md", "db-migrations.md"} <= pages


@pytest.mark.slow
@pytest.mark.parametrize(("page", "line"), COMMANDS, ids=[c[1] for c in COMMANDS])
def test_runbook_command_works(page: str, line: str, data_dir: Path) -> None:
    words = shlex.split(line, comments=True)
    while re.match(r"^[A-Z_]+=", words[0]):
        words.pop(0)
    args = words[1:]
    if any(marker in line for marker in PARSE_ONLY):
        sub = [a for a in args if not a.startswith("-")][:1]
        args = [*sub, "--help"]
    result = subprocess.run(
        [sys.executable, "-m", "codeatlas", *args],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{page}: {line}\n{result.stdout}\n{result.stderr}"
    if args[:2] == ["migrate", "downgrade"]:  # leave the schema at head for the next ones
        subprocess.run(
            [sys.executable, "-m", "codeatlas", "migrate", "upgrade"],
            env=_env(data_dir),
            check=True,
            capture_output=True,
            timeout=300,
        )
