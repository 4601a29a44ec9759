"""Gluing search results into one context for an LLM prompt, with citations (checklist 4-B).

The context is a sequence of blocks separated by a blank line; each block is a citation
header ``[n] <source>`` and the piece's text. Rules:

* ``max_context_length`` counts characters (``len()``, Unicode code points): the context is
  never longer, whatever the lengths involved; the separators and headers count too.
* Results are taken best first. A piece whose text repeats one already taken (same text, or
  the same source with overlapping lines) is skipped: deduplicated.
* The first piece that does not fit whole is cut at a line end (or, if no line end is
  close, at the limit) and marked with ``…``, then the context ends. A piece is only cut if
  at least :data:`MIN_PARTIAL` characters of its text fit; otherwise the context stops
  before it — unless nothing was taken yet, then whatever fits of the first block is given,
  so a tiny limit still returns the start of the best result rather than nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from codeatlas.knowledge.search import Hit

SEPARATOR = "\n\n"
ELLIPSIS = "…"
MIN_PARTIAL = 80


@dataclass(frozen=True, slots=True)
class Cited:
    marker: int
    hit: Hit
    truncated: bool


def header(marker: int, hit: Hit) -> str:
    lines = f"lines {hit.start_line}-{hit.end_line}"
    if hit.kind == "entry":
        return f'[{marker}] entry {hit.source_id} "{hit.title}" ({lines})'
    return f"[{marker}] {hit.path}:{hit.start_line}-{hit.end_line}"


def _cut(text: str, room: int) -> str:
    """At most ``room`` characters of ``text`` ending in the ellipsis, at a line end if close."""
    if room <= 0:
        return ""
    if len(text) <= room:
        return text
    if room <= len(ELLIPSIS):
        return text[:room]
    budget = room - len(ELLIPSIS)
    newline = text.rfind("\n", 0, budget + 1)
    end = newline if newline >= budget // 2 else budget
    return text[:end].rstrip("\n") + ELLIPSIS


def _fingerprint(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def build_context(hits: Sequence[Hit], max_length: int) -> tuple[str, list[Cited]]:
    """``(context, citations)`` with ``len(context) <= max_length``."""
    if max_length < 1:
        raise ValueError("max_length must be >= 1")
    parts: list[str] = []
    cited: list[Cited] = []
    used = 0
    seen_text: set[str] = set()
    spans: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for hit in hits:
        fingerprint = _fingerprint(hit.text)
        taken = spans.get((hit.kind, hit.source_id), [])
        overlaps = any(s <= hit.end_line and hit.start_line <= e for s, e in taken)
        if fingerprint in seen_text or overlaps:
            continue
        marker = len(cited) + 1
        head = header(marker, hit) + "\n"
        sep = SEPARATOR if parts else ""
        whole = sep + head + hit.text
        if used + len(whole) <= max_length:
            parts.append(whole)
            used += len(whole)
            cited.append(Cited(marker, hit, truncated=False))
            seen_text.add(fingerprint)
            spans.setdefault((hit.kind, hit.source_id), []).append((hit.start_line, hit.end_line))
            continue
        room = max_length - used - len(sep) - len(head)
        if room >= MIN_PARTIAL:
            parts.append(sep + head + _cut(hit.text, room))
            cited.append(Cited(marker, hit, truncated=True))
        elif not parts:
            # Not even the header fits with a useful piece of text: the start of the block.
            parts.append(_cut(head + hit.text, max_length))
            cited.append(Cited(marker, hit, truncated=True))
        break
    context = "".join(parts)
    if len(context) > max_length:  # pragma: no cover - guarded by construction above
        raise AssertionError("context longer than max_length")
    return context, cited
