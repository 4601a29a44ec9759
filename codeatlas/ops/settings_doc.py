"""Writes docs/SETTINGS.md from the Settings model: every environment variable, its default
and its description, so the reference never drifts from the code (a test compares them).

    python -m codeatlas.ops.settings_doc > docs/SETTINGS.md
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic_core import PydanticUndefined

from codeatlas.settings import Settings

HEADER = """# Settings reference

Every setting is an environment variable (or a line in `.env`; `CODEATLAS_ENV_FILE` picks
another file). Generated from `codeatlas.settings.Settings` by
`python -m codeatlas.ops.settings_doc > docs/SETTINGS.md`; `tests/ops/test_docs.py` fails when
this page and the code disagree.

| variable | default | meaning |
|---|---|---|
"""


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "(required)"
    if value is None or value == "" or value == []:
        return "(unset)"
    text = str(value)
    if "secret" in str(field.description or "").lower() and isinstance(value, str):
        return "(a placeholder)" if len(text) > 20 else f"`{text}`"
    return f"`{text}`"


def render() -> str:
    rows = []
    for name, field in sorted(Settings.model_fields.items()):
        meaning = " ".join(str(field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{name.upper()}` | {_default(field)} | {meaning} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
