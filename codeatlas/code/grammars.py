"""The tree-sitter side of :mod:`codeatlas.code.parsing`: node helpers, the per-language
table (a query plus small hooks per language) and the per-thread grammar cache.

Adding a language means adding a row to ``_SPECS`` here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tree_sitter import Language, Node, Parser, Query

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
