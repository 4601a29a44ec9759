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

Per-language behaviour lives in the ``_SPECS`` table (a tree-sitter query plus a few
small hooks) rather than in branching code, so adding a language means adding a row.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from tree_sitter import Language, Node, Parser, Query, QueryCursor

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


# ------------------------------------------------------------------ language detection

_EXTENSIONS: dict[str, str] = {
    "py": "python", "pyi": "python", "pyw": "python",
    "js": "javascript", "mjs": "javascript", "cjs": "javascript", "jsx": "javascript",
    "ts": "typescript", "mts": "typescript", "cts": "typescript",
    "tsx": "tsx",
    "go": "go",
    "java": "java",
    "rs": "rust",
    "c": "c", "h": "c",
    "cpp": "cpp", "cc": "cpp", "cxx": "cpp", "c++": "cpp",
    "hpp": "cpp", "hh": "cpp", "hxx": "cpp", "h++": "cpp", "ipp": "cpp", "tpp": "cpp",
    "rb": "ruby", "rake": "ruby", "gemspec": "ruby",
    "php": "php",
    "cs": "csharp",
    "kt": "kotlin", "kts": "kotlin",
    "swift": "swift",
    "scala": "scala", "sc": "scala",
    "sh": "bash", "bash": "bash", "zsh": "bash", "ksh": "bash",
    "pl": "perl", "pm": "perl",
    "lua": "lua",
    "r": "r",
    "dart": "dart",
    "ex": "elixir", "exs": "elixir",
    "erl": "erlang", "hrl": "erlang",
    "hs": "haskell",
    "ml": "ocaml", "mli": "ocaml",
    "clj": "clojure", "cljs": "clojure",
    "vue": "vue", "svelte": "svelte",
    "proto": "proto",
    "md": "markdown", "markdown": "markdown", "rst": "rst",
    "json": "json", "jsonc": "json",
    "yaml": "yaml", "yml": "yaml",
    "toml": "toml",
    "ini": "ini", "cfg": "ini",
    "xml": "xml",
    "sql": "sql",
    "html": "html", "htm": "html",
    "css": "css", "scss": "scss",
    "tf": "hcl", "hcl": "hcl",
}  # fmt: skip

_FILENAMES: dict[str, str] = {
    "dockerfile": "dockerfile",
    "makefile": "make",
    "gnumakefile": "make",
    "cmakelists.txt": "cmake",
    "gemfile": "ruby",
    "rakefile": "ruby",
    "vagrantfile": "ruby",
    "jenkinsfile": "groovy",
}

# Interpreter (version suffix stripped) -> language, for extension-less scripts.
_INTERPRETERS: dict[str, str] = {
    "python": "python", "pypy": "python",
    "node": "javascript", "nodejs": "javascript", "bun": "javascript",
    "deno": "typescript", "ts-node": "typescript", "tsx": "typescript",
    "bash": "bash", "sh": "bash", "dash": "bash", "zsh": "bash", "ksh": "bash", "ash": "bash",
    "ruby": "ruby",
    "perl": "perl",
    "php": "php",
    "lua": "lua",
    "rscript": "r",
}  # fmt: skip

_INTERPRETER_VERSION = re.compile(r"[\d.]+$")
# `.h` is shared by C and C++; these constructs cannot appear in a C header, so seeing
# one early is a cheap and reliable signal to use the C++ grammar instead.
_CPP_HEADER_HINT = re.compile(
    rb"^\s*(?:namespace\b|template\s*<|class\s+\w+[^;]*[{:]|(?:public|private|protected)\s*:"
    rb"|using\s+namespace\b|#include\s*<[a-z_]+>\s*$)",
    re.MULTILINE,
)


def detect_language(path: str, head: bytes | None = None) -> str | None:
    """Guess the language of ``path`` from its extension, then from a shebang in ``head``.

    ``head`` is optional leading file content (a few hundred bytes suffice); it is also
    used to tell C++ headers from C headers. Returns a lowercase name or ``None``.
    """
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    lowered = name.lower()
    if "." in lowered.lstrip("."):
        ext = lowered.rsplit(".", 1)[1]
        language = _EXTENSIONS.get(ext)
        if language is not None:
            if ext == "h" and head and _CPP_HEADER_HINT.search(head[:16384]):
                return "cpp"
            return language
    by_name = _FILENAMES.get(lowered)
    if by_name is not None:
        return by_name
    if head:
        return _language_from_shebang(head)
    return None


def _language_from_shebang(head: bytes) -> str | None:
    if not head.startswith(b"#!"):
        return None
    first_line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    tokens = first_line.split()
    if not tokens:
        return None
    program = tokens[0].rsplit("/", 1)[-1]
    if program == "env":
        # `env -S python3 -u` / `env FOO=1 node`: the interpreter is the first operand.
        operands = [t for t in tokens[1:] if not t.startswith("-") and "=" not in t]
        if not operands:
            return None
        program = operands[0].rsplit("/", 1)[-1]
    program = _INTERPRETER_VERSION.sub("", program.lower())
    return _INTERPRETERS.get(program)


# Bytes that plain text never contains: C0 controls except whitespace/backspace/escape,
# plus DEL. Deleting everything else with bytes.translate counts them at C speed.
_NON_TEXT = bytes([*range(0x00, 0x08), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_KEEP_NON_TEXT = bytes(b for b in range(256) if b not in _NON_TEXT)
_ASCII = bytes(range(0x80))


def is_binary(data: bytes) -> bool:
    """Heuristically decide whether ``data`` is binary (not worth indexing as text).

    Looks at the first 8 KiB only: any NUL byte, or more than 5 % control bytes, means
    binary. Invalid UTF-8 alone does not (Latin-1 source exists); it counts as binary
    only when most of the sample is non-ASCII.
    """
    sample = data[:8192]
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    if len(sample.translate(None, _KEEP_NON_TEXT)) > len(sample) * 0.05:
        return True
    try:
        sample.decode("utf-8")
        return False
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the 8 KiB boundary is not evidence of binary.
        if exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return False
    return len(sample.translate(None, _ASCII)) > len(sample) * 0.30


# ---------------------------------------------------------------- tree-sitter helpers


def _text(node: Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", "replace")


def _end_line(node: Node) -> int:
    """1-based inclusive end line; a node ending at column 0 ends on the previous line."""
    end = node.end_point
    if end.column == 0 and end.row > node.start_point.row:
        return end.row
    return end.row + 1


_TYPE_WRAPPERS = frozenset(
    {
        "generic_type", "template_type", "pointer_type", "reference_type",
        "qualified_type", "scoped_type_identifier", "qualified_identifier",
        "scoped_identifier", "parenthesized_type", "array_type", "slice_type",
        "abstract_type", "dynamic_type", "bounded_type",
    }
)  # fmt: skip


def _type_name(node: Node) -> str:
    """Bare type name: ``*pkg.Point[T]`` -> ``Point``, ``Vec<T>`` -> ``Vec``."""
    current = node
    for _ in range(16):
        if current.type not in _TYPE_WRAPPERS:
            break
        nxt = current.child_by_field_name("name") or current.child_by_field_name("type")
        if nxt is None:
            named = current.named_children
            nxt = named[0] if named else None
        if nxt is None:
            break
        current = nxt
    return _text(current)


def _go_receiver(node: Node) -> str | None:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return None
    for param in receiver.named_children:
        type_node = param.child_by_field_name("type")
        if type_node is not None:
            return _type_name(type_node) or None
    return None


_C_NAME_LEAVES = frozenset(
    {"identifier", "field_identifier", "operator_name", "destructor_name", "type_identifier"}
)


def _c_declarator_name(node: Node) -> tuple[str | None, str | None]:
    """Name and class scope of a C/C++ function from its (possibly nested) declarator.

    C declarators nest (``int (*f(void))(int)``, ``Foo::Bar::baz``), so the name is found
    by following ``declarator`` fields down to a leaf; a ``qualified_identifier`` on the
    way contributes the innermost scope, used as the parent of out-of-class methods.
    """
    current = node.child_by_field_name("declarator")
    scope: str | None = None
    for _ in range(32):
        if current is None:
            return None, scope
        kind = current.type
        if kind in _C_NAME_LEAVES:
            return _text(current), scope
        if kind == "qualified_identifier":
            scope_node = current.child_by_field_name("scope")
            if scope_node is not None:
                scope = _type_name(scope_node)
            current = current.child_by_field_name("name")
            continue
        if kind == "template_function":
            current = current.child_by_field_name("name")
            continue
        nxt = current.child_by_field_name("declarator")
        if nxt is None:
            named = current.named_children
            nxt = named[0] if named else None
        current = nxt
    return None, scope


def _c_typedef_kind(node: Node, kind: str) -> str:
    # `typedef struct {...} name_t;` is how C names most structs; report the struct kind.
    if node.type != "type_definition":
        return kind
    type_node = node.child_by_field_name("type")
    if type_node is not None and type_node.child_by_field_name("body") is not None:
        return {
            "struct_specifier": "struct",
            "union_specifier": "union",
            "enum_specifier": "enum",
            "class_specifier": "class",
        }.get(type_node.type, kind)
    return kind


def _strip_quotes(node: Node) -> list[str]:
    value = _text(node).strip().strip("\"'`<>")
    return [value] if value else []


_JAVA_IMPORT = re.compile(r"^\s*import\s+(?:static\s+)?(.*?)\s*;?\s*$", re.DOTALL)


def _java_import(node: Node) -> list[str]:
    # The declaration node is captured whole because `.*` is a sibling token of the name.
    match = _JAVA_IMPORT.match(_text(node))
    value = re.sub(r"\s+", "", match.group(1)) if match else ""
    return [value] if value else []


def _plain(node: Node) -> list[str]:
    value = re.sub(r"\s+", "", _text(node))
    return [value] if value else []


def _rust_use(node: Node, prefix: str = "") -> list[str]:
    """Expand a Rust ``use`` tree: ``std::{io, fmt::Write as W}`` -> two paths."""
    kind = node.type
    if kind == "scoped_use_list":
        path = node.child_by_field_name("path")
        inner = node.child_by_field_name("list")
        path_text = "".join(_plain(path)) if path is not None else ""
        new_prefix = f"{prefix}{path_text}::" if path_text else prefix
        return _rust_use(inner, new_prefix) if inner is not None else []
    if kind == "use_list":
        out: list[str] = []
        for child in node.named_children:
            out.extend(_rust_use(child, prefix))
        return out
    if kind == "use_as_clause":
        path = node.child_by_field_name("path")
        return _rust_use(path, prefix) if path is not None else []
    return [prefix + value for value in _plain(node)]


# ------------------------------------------------------------------- language table


NameHook = Callable[[Node], tuple[str | None, str | None]]
KindHook = Callable[[Node, str], str]
ModuleHook = Callable[[Node], list[str]]


@dataclass(frozen=True, slots=True)
class _LanguageSpec:
    """How to read one grammar.

    The query uses three capture conventions: ``@def.<kind>`` marks a definition node,
    ``@name`` its name node (optional when ``name_hook`` can derive it) and ``@module``
    a node whose text is an imported module (normalised by ``module_hook``).
    When several patterns capture the same node, the earliest pattern wins, so specific
    patterns (e.g. Go struct type) are listed before generic ones.
    """

    grammar: str
    query: str
    # Parents that only decorate a definition (decorators, `export`, `template<>`): the
    # chunk for the definition is widened to include them.
    wrappers: frozenset[str] = frozenset()
    # Preceding siblings that belong to the next definition (doc comments, attributes).
    leading: frozenset[str] = frozenset({"comment"})
    # A definition whose parent node has one of these types is represented by that parent.
    absorbed_by: frozenset[str] = frozenset()
    # Name (and explicit scope) for definitions without a usable @name capture.
    name_hook: NameHook | None = None
    # Explicit logical parent that is not the syntactic ancestor (Go receivers).
    parent_hook: Callable[[Node], str | None] | None = None
    kind_hook: KindHook | None = None
    module_hook: ModuleHook = _strip_quotes
    # Capture names whose @name node should be reduced to a bare type name.
    type_named: frozenset[str] = frozenset()


_PYTHON_QUERY = """
(function_definition name: (identifier) @name) @def.function
(class_definition name: (identifier) @name) @def.class
(import_statement name: (dotted_name) @module)
(import_statement name: (aliased_import name: (dotted_name) @module))
(import_from_statement module_name: (_) @module)
(future_import_statement "__future__" @module)
"""

_JS_COMMON_QUERY = """
(function_declaration name: (_) @name) @def.function
(generator_function_declaration name: (_) @name) @def.function
(class_declaration name: (_) @name) @def.class
(method_definition name: (_) @name) @def.method
(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @def.function
(variable_declarator name: (identifier) @name value: (class)) @def.class
(pair
  key: [(property_identifier) (string)] @name
  value: [(arrow_function) (function_expression) (generator_function)]) @def.function
(assignment_expression
  left: (member_expression property: (property_identifier) @name)
  right: [(arrow_function) (function_expression) (generator_function)]) @def.function
(import_statement source: (string (string_fragment) @module))
(export_statement source: (string (string_fragment) @module))
(call_expression
  function: (identifier) @_require
  arguments: (arguments . (string (string_fragment) @module))
  (#eq? @_require "require"))
(call_expression
  function: (import)
  arguments: (arguments . (string (string_fragment) @module)))
"""

_JS_QUERY = (
    _JS_COMMON_QUERY
    + """
(field_definition
  property: (_) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @def.method
"""
)

_TS_QUERY = (
    _JS_COMMON_QUERY
    + """
(abstract_class_declaration name: (_) @name) @def.class
(interface_declaration name: (_) @name) @def.interface
(type_alias_declaration name: (_) @name) @def.type
(enum_declaration name: (_) @name) @def.enum
(internal_module name: (_) @name) @def.module
(module name: (_) @name) @def.module
(abstract_method_signature name: (_) @name) @def.method
(method_signature name: (_) @name) @def.method
(public_field_definition
  name: (_) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @def.method
(import_require_clause source: (string (string_fragment) @module))
"""
)

_GO_QUERY = """
(function_declaration name: (identifier) @name) @def.function
(method_declaration name: (field_identifier) @name) @def.method
(type_spec name: (type_identifier) @name type: (struct_type)) @def.struct
(type_spec name: (type_identifier) @name type: (interface_type)) @def.interface
(type_spec name: (type_identifier) @name) @def.type
(type_alias name: (type_identifier) @name) @def.type
(import_spec path: (_) @module)
"""

_JAVA_QUERY = """
(class_declaration name: (identifier) @name) @def.class
(interface_declaration name: (identifier) @name) @def.interface
(enum_declaration name: (identifier) @name) @def.enum
(record_declaration name: (identifier) @name) @def.record
(annotation_type_declaration name: (identifier) @name) @def.interface
(method_declaration name: (identifier) @name) @def.method
(constructor_declaration name: (identifier) @name) @def.method
(compact_constructor_declaration name: (identifier) @name) @def.method
(import_declaration) @module
"""

_RUST_QUERY = """
(function_item name: (identifier) @name) @def.function
(function_signature_item name: (identifier) @name) @def.function
(struct_item name: (type_identifier) @name) @def.struct
(union_item name: (type_identifier) @name) @def.union
(enum_item name: (type_identifier) @name) @def.enum
(trait_item name: (type_identifier) @name) @def.trait
(impl_item type: (_) @name) @def.impl
(mod_item name: (identifier) @name) @def.module
(type_item name: (type_identifier) @name) @def.type
(macro_definition name: (identifier) @name) @def.macro
(use_declaration argument: (_) @module)
(extern_crate_declaration name: (identifier) @module)
"""

_C_COMMON_QUERY = """
(function_definition) @def.function
(struct_specifier name: (_) @name body: (_)) @def.struct
(union_specifier name: (_) @name body: (_)) @def.union
(enum_specifier name: (_) @name body: (_)) @def.enum
(type_definition declarator: (type_identifier) @name) @def.type
(preproc_include path: (_) @module)
"""

_CPP_QUERY = (
    _C_COMMON_QUERY
    + """
(class_specifier name: (_) @name body: (_)) @def.class
(namespace_definition name: (_) @name) @def.namespace
(alias_declaration name: (type_identifier) @name) @def.type
(field_declaration declarator: (function_declarator)) @def.method
(field_declaration declarator: (pointer_declarator declarator: (function_declarator))) @def.method
(field_declaration declarator: (reference_declarator (function_declarator))) @def.method
(declaration declarator: (function_declarator declarator: (qualified_identifier))) @def.method
"""
)


def _c_name(node: Node) -> tuple[str | None, str | None]:
    if node.type in ("function_definition", "field_declaration", "declaration"):
        return _c_declarator_name(node)
    return None, None


_C_LEADING = frozenset({"comment"})

_JS_WRAPPERS = frozenset(
    {"export_statement", "lexical_declaration", "variable_declaration", "expression_statement"}
)

_SPECS: dict[str, _LanguageSpec] = {
    "python": _LanguageSpec(
        grammar="python",
        query=_PYTHON_QUERY,
        wrappers=frozenset({"decorated_definition"}),
        module_hook=_plain,
    ),
    "javascript": _LanguageSpec(
        grammar="javascript",
        query=_JS_QUERY,
        wrappers=_JS_WRAPPERS,
    ),
    "typescript": _LanguageSpec(
        grammar="typescript",
        query=_TS_QUERY,
        wrappers=_JS_WRAPPERS | {"ambient_declaration"},
    ),
    "tsx": _LanguageSpec(
        grammar="tsx",
        query=_TS_QUERY,
        wrappers=_JS_WRAPPERS | {"ambient_declaration"},
    ),
    "go": _LanguageSpec(
        grammar="go",
        query=_GO_QUERY,
        wrappers=frozenset({"type_declaration"}),
        parent_hook=_go_receiver,
    ),
    "java": _LanguageSpec(
        grammar="java",
        query=_JAVA_QUERY,
        leading=frozenset({"line_comment", "block_comment"}),
        module_hook=_java_import,
    ),
    "rust": _LanguageSpec(
        grammar="rust",
        query=_RUST_QUERY,
        leading=frozenset({"line_comment", "block_comment", "attribute_item"}),
        module_hook=_rust_use,
        type_named=frozenset({"def.impl"}),
    ),
    "c": _LanguageSpec(
        grammar="c",
        query=_C_COMMON_QUERY,
        leading=_C_LEADING,
        absorbed_by=frozenset({"type_definition"}),
        name_hook=_c_name,
        kind_hook=_c_typedef_kind,
    ),
    "cpp": _LanguageSpec(
        grammar="cpp",
        query=_CPP_QUERY,
        wrappers=frozenset({"template_declaration"}),
        leading=_C_LEADING,
        absorbed_by=frozenset({"type_definition"}),
        name_hook=_c_name,
        kind_hook=_c_typedef_kind,
        type_named=frozenset({"def.class", "def.struct"}),
    ),
}

# Kinds whose functions are methods, and kinds that may be split into their members.
_CLASSLIKE = frozenset({"class", "struct", "interface", "enum", "trait", "impl", "union", "record"})
_CONTAINERS = _CLASSLIKE | {"module", "namespace"}

# Above this size tree-sitter work is skipped: generated/minified blobs parse slowly and
# their "symbols" are worthless for search, while line windows still index them.
MAX_PARSE_BYTES = 2_000_000


def supported_languages() -> frozenset[str]:
    """Languages for which :func:`parse_source` extracts symbols and imports."""
    return frozenset(_SPECS)


# ---------------------------------------------------------------- grammar caching

_cache_lock = threading.Lock()
_compiled: dict[str, tuple[Language, Query]] = {}
# tree-sitter parsers are stateful and not safe to share, so each worker thread gets its
# own; languages and compiled queries are immutable and shared.
_thread_state = threading.local()


def _language_and_query(language: str) -> tuple[Language, Query]:
    cached = _compiled.get(language)  # lock-free fast path: dict reads are atomic
    if cached is not None:
        return cached
    with _cache_lock:
        cached = _compiled.get(language)
        if cached is None:
            # Imported lazily so a broken/missing grammar bundle degrades to line windows
            # (reported in ParseResult.error) instead of breaking `import codeatlas.code`.
            from tree_sitter_language_pack import get_language

            spec = _SPECS[language]
            lang = get_language(spec.grammar)  # type: ignore[arg-type]
            cached = (lang, Query(lang, spec.query))
            _compiled[language] = cached
        return cached


def _parser(language: str) -> tuple[Parser, Query]:
    parsers: dict[str, Parser] | None = getattr(_thread_state, "parsers", None)
    if parsers is None:
        parsers = {}
        _thread_state.parsers = parsers
    lang, query = _language_and_query(language)
    parser = parsers.get(language)
    if parser is None:
        parser = Parser(lang)
        parsers[language] = parser
    return parser, query


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
