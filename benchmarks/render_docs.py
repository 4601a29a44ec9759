"""Chat-answer-like Markdown documents for the render benchmarks, reproducible from a seed.

Headings, prose with inline code and bold, 1-3 fenced code blocks (60 %: 5-60 consecutive
lines of a real standard-library Python module; else SQL / JavaScript / shell / JSON), and
sometimes a list, a table or inline maths: 0.5-8 KB each.
"""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path

_TEXT = (
    "the function returns a list of parsed symbols for each file in the project so that "
    "search can rank chunks by meaning and the index stays small when files change often "
    "because only changed chunks are embedded again and the worker retries failed jobs"
)
WORDS = _TEXT.split()

OTHER_SNIPPETS = {
    "sql": (
        "SELECT d.file_path, count(*) AS chunks\nFROM code_documents d\n"
        "JOIN code_chunks c ON c.document_id = d.id\nWHERE d.project_id = {n}\n"
        "GROUP BY d.file_path\nORDER BY chunks DESC\nLIMIT 20;\n"
    ),
    "javascript": (
        "export async function fetchFiles(projectId, cursor) {{\n"
        "  const url = `/api/v1/projects/${{projectId}}/files?cursor=${{cursor ?? ''}}`;\n"
        "  const res = await fetch(url, {{ headers: {{ Accept: 'application/json' }} }});\n"
        "  if (!res.ok) throw new Error(`HTTP ${{res.status}}`);\n"
        "  return (await res.json()).items.slice(0, {n});\n}}\n"
    ),
    "bash": (
        "#!/usr/bin/env bash\nset -euo pipefail\nfor f in src/*.py; do\n"
        '  echo "checking $f"\n  ruff check "$f" || exit {n}\ndone\n'
    ),
    "json": '{{\n  "project": {n},\n  "files": ["a.py", "b.py"],\n  "ok": true\n}}\n',
}


def _python_sources() -> list[list[str]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.stat().st_size > 4_000)[:120]
    return [p.read_text(encoding="utf-8", errors="replace").splitlines() for p in files]


PYTHON_SOURCES = _python_sources()


def _prose(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = rng.choices(WORDS, k=rng.randint(8, 20))
        if rng.random() < 0.3:
            words[rng.randrange(len(words))] = f"`{rng.choice(WORDS)}()`"
        if rng.random() < 0.2:
            words[rng.randrange(len(words))] = f"**{rng.choice(WORDS)}**"
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def _code_block(rng: random.Random) -> str:
    if rng.random() < 0.6:
        lines = rng.choice(PYTHON_SOURCES)
        start = rng.randrange(max(1, len(lines) - 60))
        body = "\n".join(lines[start : start + rng.randint(5, 60)])
        return f"```python\n{body}\n```\n"
    lang, template = rng.choice(sorted(OTHER_SNIPPETS.items()))
    return f"```{lang}\n{template.format(n=rng.randint(1, 99))}```\n"


def make_document(seed: int) -> str:
    rng = random.Random(seed)
    parts = [f"## {' '.join(rng.choices(WORDS, k=4)).title()}\n", _prose(rng, rng.randint(1, 4))]
    for _ in range(rng.randint(1, 3)):
        parts.append(_code_block(rng))
        parts.append(_prose(rng, rng.randint(1, 3)))
    if rng.random() < 0.5:
        parts.append("\n".join(f"- {_prose(rng, 1)}" for _ in range(rng.randint(2, 6))) + "\n")
    if rng.random() < 0.25:
        rows = "\n".join(f"| {rng.choice(WORDS)} | {rng.randint(1, 999)} |" for _ in range(5))
        parts.append(f"| name | value |\n|---|--:|\n{rows}\n")
    if rng.random() < 0.2:
        parts.append("The cost is $O(n \\log n)$ and the bound is $$\\sum_{i=1}^{n} i^2$$.\n")
    return "\n\n".join(parts)
