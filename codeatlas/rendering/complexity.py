"""A cheap pre-scan that refuses Markdown whose parse would be slow, before it is parsed.

markdown-it's cost is not only proportional to the size: unmatched brackets, emphasis and
backtick runs, link-reference floods and many small blocks each add work per mark
(``"[" * 100000`` took 6 s). The scan is one linear pass in C (``str.count`` / ``splitlines``)
and bounds what the parser may see: at most RENDER_MAX_INLINE_MARKS punctuation marks and
RENDER_MAX_LINES lines outside fenced code (fenced code is highlighted, not inline-parsed,
so a long code block stays allowed). Over either bound: 422 ``MARKDOWN_TOO_COMPLEX``.
The resulting worst cases are measured by ``benchmarks/render_pathological.py``.
"""

from __future__ import annotations

import re

from codeatlas.errors import AppError

MARKS = "[]*_`<&$|~!\\"
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FENCE_LINES = re.compile(r"^ {0,3}(?:`{3,}|~{3,})", re.MULTILINE)
# Measured (benchmarks/render_pathological.py): each linkify candidate and each highlighted
# code block costs far more than a mark, so they have bounds of their own.
MAX_LINK_CANDIDATES = 300
MAX_FENCE_LINES = 200


class MarkdownTooComplex(AppError):
    status_code = 422
    error_code = "MARKDOWN_TOO_COMPLEX"
    message = "Markdown too complex to render"


def _outside_fences(text: str) -> tuple[int, int]:
    """(lines, marks) outside fenced code blocks."""
    lines = marks = 0
    fence: str | None = None
    for line in text.splitlines():
        found = _FENCE.match(line)
        if fence is None:
            if found:
                fence = found.group(1)[0] * len(found.group(1))
                continue
            lines += 1
            marks += sum(line.count(ch) for ch in MARKS)
        elif found and found.group(1)[0] == fence[0] and len(found.group(1)) >= len(fence):
            fence = None
    return lines, marks


def check_complexity(text: str, max_marks: int, max_lines: int) -> None:
    # Fast path: a short text cannot be over any bound.
    if len(text) <= min(max_marks, max_lines, MAX_LINK_CANDIDATES, MAX_FENCE_LINES):
        return
    links = text.count("www.") + text.count("://") + text.count("@")
    fences = len(_FENCE_LINES.findall(text))
    if links > MAX_LINK_CANDIDATES or fences > MAX_FENCE_LINES:
        raise MarkdownTooComplex(
            f"Markdown has {links} link candidates and {fences} code fence lines; the limits "
            f"are {MAX_LINK_CANDIDATES} and {MAX_FENCE_LINES}",
            details={"links": links, "fences": fences},
        )
    # Whole-text counts first (C loops): most inputs are decided without the line loop.
    marks = sum(text.count(ch) for ch in MARKS)
    lines = text.count("\n") + 1
    if marks <= max_marks and lines <= max_lines:
        return
    if "```" in text or "~~~" in text:  # only fenced code can excuse the excess
        lines, marks = _outside_fences(text)
    if marks > max_marks or lines > max_lines:
        raise MarkdownTooComplex(
            f"Markdown has {marks} punctuation marks and {lines} lines outside code blocks; "
            f"the limits are {max_marks} and {max_lines}",
            details={
                "marks": marks,
                "lines": lines,
                "max_marks": max_marks,
                "max_lines": max_lines,
            },
        )
