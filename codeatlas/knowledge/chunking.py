"""Cutting knowledge-base entries into pieces to embed, and the text each piece is embedded as.

Entries are prose (Markdown, notes, runbooks). A piece is a run of whole paragraphs up to
``max_chars``; a paragraph longer than that is cut at line ends, and a single line longer
than that at ``max_chars``. Every piece knows its first and last line (1-based) so a search
result and a context citation can point at ``entry#L12-L30``.

Hand-written rather than a text-splitter library because we need the line span of every
piece, which the common splitters do not report, and the rule is a dozen lines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Piece:
    index: int
    start_line: int
    end_line: int
    text: str


def _paragraphs(lines: list[str]) -> list[tuple[int, int]]:
    """``(first, last)`` 0-based line spans of the blank-line separated paragraphs."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for i, line in enumerate(lines):
        if line.strip():
            if start is None:
                start = i
        elif start is not None:
            spans.append((start, i - 1))
            start = None
    if start is not None:
        spans.append((start, len(lines) - 1))
    return spans


def split_entry(content: str, max_chars: int) -> list[Piece]:
    """The pieces of ``content``; empty content gives no pieces."""
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    lines = content.splitlines()
    # (start line, end line, text) units no longer than max_chars, in order.
    units: list[tuple[int, int, str]] = []
    for first, last in _paragraphs(lines):
        text = "\n".join(lines[first : last + 1])
        if len(text) <= max_chars:
            units.append((first, last, text))
            continue
        for i in range(first, last + 1):
            line = lines[i]
            for start in range(0, max(1, len(line)), max_chars):
                units.append((i, i, line[start : start + max_chars]))

    pieces: list[Piece] = []
    cur: list[tuple[int, int, str]] = []
    size = 0

    def flush() -> None:
        nonlocal cur, size
        if cur:
            text = "\n\n".join(u[2] for u in cur)
            pieces.append(Piece(len(pieces), cur[0][0] + 1, cur[-1][1] + 1, text))
        cur, size = [], 0

    for unit in units:
        extra = len(unit[2]) + (2 if cur else 0)
        if cur and size + extra > max_chars:
            flush()
            extra = len(unit[2])
        cur.append(unit)
        size += extra
    flush()
    return pieces


def entry_embed_text(title: str, piece_text: str) -> str:
    """What an entry piece is embedded as: the title gives every piece its topic."""
    return f"{title.strip()}\n\n{piece_text}"


def code_embed_text(path: str, symbol: str | None, text: str) -> str:
    """What a code chunk is embedded as: path and symbol name carry much of its meaning."""
    header = path if not symbol else f"{path} {symbol}"
    return f"{header}\n{text}"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
