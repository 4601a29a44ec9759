"""Pure source-code parsing pipeline: language detection, symbols, imports, chunks.

This module owns everything between "bytes of a file" and "search-ready chunks":

* :func:`detect_language` / :func:`is_binary` decide whether and how a file is parsed;
* :func:`parse_source` runs tree-sitter (grammars bundled offline by
  ``tree_sitter_language_pack``) to extract :class:`Symbol` definitions and import
  strings, then cuts the file into :class:`Chunk` objects along symbol boundaries.

It is deliberately free of I/O, database and network access so that indexing workers
can call it from any thread and tests can exercise it with plain strings. It never
raises on bad input: unknown languages, grammar failures and syntax errors all degrade
to plain line-window chunks.

Language detection lives in :mod:`codeatlas.code.languages`; per-language behaviour in
the ``_SPECS`` table of :mod:`codeatlas.code.grammars` (a tree-sitter query plus a few
small hooks) rather than in branching code, so adding a language means adding a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tree_sitter import Node, Query, QueryCursor

from codeatlas.code.grammars import (
    _CLASSLIKE,
    _CONTAINERS,
    _SPECS,
    MAX_PARSE_BYTES,
    _end_line,
    _LanguageSpec,
    _parser,
    _text,
    _type_name,
    supported_languages,
)
from codeatlas.code.languages import detect_language, is_binary

__all__ = [
    "Chunk",
    "ParseResult",
    "Symbol",
    "detect_language",
    "is_binary",
    "parse_source",
    "supported_languages",
]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Symbol:
    """A named definition. Lines are 1-based and inclusive.

    ``parent`` is the *name* of the logically enclosing symbol: the class for methods,
    the enclosing function for nested functions, the receiver type for Go methods and
    the implemented type for Rust ``impl`` blocks.
    """

    name: str
    kind: str
    start_line: int
    end_line: int
    parent: str | None


@dataclass(frozen=True, slots=True)
class Chunk:
    """A contiguous run of source lines (1-based, inclusive) ready for indexing.

    ``kind`` is ``"header"`` (lines before the first top-level symbol), ``"symbol"``
    (all or part of a definition; ``symbol`` holds its dotted qualified name) or
    ``"window"`` (code between symbols, or any code when no symbols are known).
    """

    index: int
    start_line: int
    end_line: int
    text: str
    symbol: str | None
    kind: str


@dataclass(frozen=True, slots=True)
class ParseResult:
    language: str | None
    symbols: list[Symbol]
    imports: list[str]
    chunks: list[Chunk]
    error: str | None


# ------------------------------------------------------------------------ extraction


@dataclass(slots=True)
class _Def:
    """A definition under construction (mutable: the symbol tree is built afterwards)."""

    node: Node
    name: str
    kind: str
    priority: int
    explicit_parent: str | None
    start_line: int
    end_line: int
    chunk_start: int = 0
    chunk_end: int = 0
    parent: _Def | None = None
    qualname: str = ""
    children: list[_Def] = field(default_factory=list)


def _extract(
    root: Node, query: Query, spec: _LanguageSpec, lines: list[str]
) -> tuple[list[_Def], list[str]]:
    by_node: dict[tuple[int, int, str], _Def] = {}
    module_nodes: list[Node] = []
    for pattern, captures in QueryCursor(query).matches(root):
        for module in captures.get("module", ()):
            module_nodes.append(module)
        def_capture = next((c for c in captures if c.startswith("def.")), None)
        if def_capture is None:
            continue
        node = captures[def_capture][0]
        key = (node.start_byte, node.end_byte, node.type)
        previous = by_node.get(key)
        if previous is not None and previous.priority <= pattern:
            continue
        parent_node = node.parent
        if parent_node is not None and parent_node.type in spec.absorbed_by:
            continue
        kind = def_capture[4:]
        explicit_parent: str | None = None
        name_nodes = captures.get("name")
        if name_nodes:
            name_node = name_nodes[0]
            name = _type_name(name_node) if def_capture in spec.type_named else _text(name_node)
            name = name.strip().strip("\"'")
        elif spec.name_hook is not None:
            hooked_name, explicit_parent = spec.name_hook(node)
            name = hooked_name or ""
        else:
            name = ""
        if not name:
            continue
        if spec.parent_hook is not None:
            explicit_parent = spec.parent_hook(node) or explicit_parent
        if explicit_parent and kind == "function":
            kind = "method"
        if spec.kind_hook is not None:
            kind = spec.kind_hook(node, kind)
        by_node[key] = _Def(
            node=node,
            name=name,
            kind=kind,
            priority=pattern,
            explicit_parent=explicit_parent,
            start_line=node.start_point.row + 1,
            end_line=_end_line(node),
        )

    defs = sorted(by_node.values(), key=lambda d: (d.node.start_byte, -d.node.end_byte))
    _link_parents(defs)
    _assign_chunk_spans(defs, spec, lines)

    module_nodes.sort(key=lambda n: n.start_byte)
    imports: list[str] = []
    seen: set[str] = set()
    for module in module_nodes:
        for value in spec.module_hook(module):
            if value not in seen:
                seen.add(value)
                imports.append(value)
    return defs, imports


def _link_parents(defs: list[_Def]) -> None:
    """Nest definitions by byte containment (``defs`` sorted by start, then widest)."""
    stack: list[_Def] = []
    for d in defs:
        while stack and stack[-1].node.end_byte < d.node.end_byte:
            stack.pop()
        while stack and d.node.start_byte >= stack[-1].node.end_byte:
            stack.pop()
        parent = stack[-1] if stack else None
        d.parent = parent
        if parent is not None:
            parent.children.append(d)
            if d.kind == "function" and parent.kind in _CLASSLIKE:
                d.kind = "method"
        scope = d.explicit_parent or (parent.qualname if parent is not None else None)
        d.qualname = f"{scope}.{d.name}" if scope else d.name
        stack.append(d)


def _assign_chunk_spans(defs: list[_Def], spec: _LanguageSpec, lines: list[str]) -> None:
    """Widen each definition's line span to its decorators/export and doc comments."""
    outers: list[Node] = []
    groups: dict[tuple[int, int], list[_Def]] = {}
    for d in defs:
        outer = d.node
        while outer.parent is not None and outer.parent.type in spec.wrappers:
            outer = outer.parent
        outers.append(outer)
        groups.setdefault((outer.start_byte, outer.end_byte), []).append(d)

    for d, outer in zip(defs, outers, strict=True):
        group = groups[(outer.start_byte, outer.end_byte)]
        if len(group) > 1:
            # One wrapper holding several definitions (`type ( A ...; B ... )`, `let a=..,
            # b=..`): the first member takes the opening lines, the last the closing ones.
            start = outer.start_point.row + 1 if d is group[0] else d.start_line
            end = _end_line(outer) if d is group[-1] else d.end_line
        else:
            start, end = outer.start_point.row + 1, _end_line(outer)
        start = min(start, _leading_start(outer, spec, lines, start))
        d.chunk_start, d.chunk_end = start, max(end, d.end_line)


def _leading_start(outer: Node, spec: _LanguageSpec, lines: list[str], start: int) -> int:
    node = outer
    while (prev := node.prev_sibling) is not None and prev.type in spec.leading:
        row = prev.start_point.row
        # Only comments that start their own line and touch the definition belong to it;
        # a trailing `x = 1  # note` stays with the code it annotates.
        if _end_line(prev) < start - 1 or lines[row][: prev.start_point.column].strip():
            break
        start = row + 1
        node = prev
    return start


# -------------------------------------------------------------------------- chunking


class _Chunker:
    """Accumulates chunks in document order; sizes are clamped to sane minimums."""

    def __init__(self, lines: list[str], max_lines: int, window_lines: int, overlap: int) -> None:
        self.lines = lines
        self.max_lines = max(1, max_lines)
        self.window_lines = max(1, window_lines)
        self.overlap = max(0, overlap)
        self.chunks: list[Chunk] = []

    def _blank(self, line: int) -> bool:
        return not self.lines[line - 1].strip()

    def emit(
        self, start: int, end: int, symbol: str | None, kind: str, *, size: int, trim: bool
    ) -> None:
        """Emit [start, end] as overlapping windows of at most ``size`` lines."""
        if trim:
            while start <= end and self._blank(start):
                start += 1
            while end >= start and self._blank(end):
                end -= 1
        if start > end:
            return
        # Overlap must leave a step of at least one line or the loop would not advance.
        overlap = min(self.overlap, size - 1)
        window_start = start
        while True:
            window_end = min(window_start + size - 1, end)
            self.chunks.append(
                Chunk(
                    index=len(self.chunks),
                    start_line=window_start,
                    end_line=window_end,
                    text="\n".join(self.lines[window_start - 1 : window_end]),
                    symbol=symbol,
                    kind=kind,
                )
            )
            if window_end >= end:
                return
            window_start = window_end - overlap + 1

    def region(self, start: int, end: int, members: list[_Def], owner: _Def | None) -> None:
        """Cover [start, end]: a chunk per member definition plus chunks for the gaps.

        Gaps belong to ``owner`` when splitting a large container (its signature, fields
        and closing brace), otherwise they are file-level header/window code.
        """
        cursor = start
        first_gap = True
        for member in members:
            member_start = max(member.chunk_start, cursor)
            member_end = min(member.chunk_end, end)
            if member_end < member_start:
                # Shares lines with an earlier definition (e.g. two on one line): covered.
                continue
            self._gap(cursor, member_start - 1, owner, is_header=first_gap)
            first_gap = False
            self._definition(member, member_start, member_end)
            cursor = member_end + 1
        self._gap(cursor, end, owner, is_header=False)

    def _gap(self, start: int, end: int, owner: _Def | None, *, is_header: bool) -> None:
        if owner is not None:
            self.emit(start, end, owner.qualname, "symbol", size=self.max_lines, trim=True)
        else:
            kind = "header" if is_header else "window"
            self.emit(start, end, None, kind, size=self.window_lines, trim=True)

    def _definition(self, d: _Def, start: int, end: int) -> None:
        if end - start + 1 > self.max_lines and d.kind in _CONTAINERS and d.children:
            self.region(start, end, d.children, d)
        else:
            self.emit(start, end, d.qualname, "symbol", size=self.max_lines, trim=False)

    def windows(self) -> list[Chunk]:
        self.emit(1, len(self.lines), None, "window", size=self.window_lines, trim=True)
        return self.chunks


# ------------------------------------------------------------------------- entry point


def parse_source(
    text: str,
    language: str | None,
    *,
    max_chunk_lines: int = 80,
    overlap_lines: int = 10,
    window_lines: int = 60,
) -> ParseResult:
    """Extract symbols and imports from ``text`` and chunk it along symbol boundaries.

    Never raises. Languages without a symbol table (or ``None``) get plain line windows
    with ``error=None``; if the grammar or parser fails, the same windows are returned
    with ``error`` explaining why. Syntax errors in the source are not failures:
    tree-sitter recovers and whatever definitions it still recognises are used.
    """
    lines = text.split("\n")
    if not text.strip():
        return ParseResult(language, [], [], [], None)

    chunker = _Chunker(lines, max_chunk_lines, window_lines, overlap_lines)

    def fallback(error: str | None) -> ParseResult:
        chunker.chunks.clear()
        return ParseResult(language, [], [], chunker.windows(), error)

    spec = _SPECS.get(language) if language is not None else None
    if language is None or spec is None:
        return fallback(None)
    source = text.encode("utf-8", "replace")
    if len(source) > MAX_PARSE_BYTES:
        return fallback(f"syntax parsing skipped: {len(source)} bytes exceeds {MAX_PARSE_BYTES}")
    try:
        parser, query = _parser(language)
        tree = parser.parse(source)
    except Exception as exc:  # noqa: BLE001 - any grammar/binding failure must degrade
        return fallback(f"{language} parser unavailable: {type(exc).__name__}: {exc}")
    try:
        defs, imports = _extract(tree.root_node, query, spec, lines)
        chunker.region(1, len(lines), [d for d in defs if d.parent is None], None)
    except Exception as exc:  # noqa: BLE001 - a bug here must not lose the file
        return fallback(f"{language} symbol extraction failed: {type(exc).__name__}: {exc}")

    symbols = [
        Symbol(
            name=d.name,
            kind=d.kind,
            start_line=d.start_line,
            end_line=d.end_line,
            parent=d.explicit_parent or (d.parent.name if d.parent is not None else None),
        )
        for d in defs
    ]
    return ParseResult(language, symbols, imports, chunker.chunks, None)
