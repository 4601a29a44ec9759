"""Tests for codeatlas.code.parsing against real tree-sitter grammars and real sources."""

from __future__ import annotations

import ast
import importlib.util
import itertools
import random
import textwrap
import threading
from pathlib import Path

import pytest

from codeatlas.code import parsing
from codeatlas.code.parsing import (
    Chunk,
    ParseResult,
    Symbol,
    detect_language,
    is_binary,
    parse_source,
    supported_languages,
)

# ----------------------------------------------------------------------------- helpers


def _sym(result: ParseResult, name: str, parent: str | None = None) -> Symbol:
    matches = [s for s in result.symbols if s.name == name and s.parent == parent]
    assert len(matches) == 1, (name, parent, result.symbols)
    return matches[0]


def _triples(result: ParseResult) -> set[tuple[str, str, str | None]]:
    return {(s.name, s.kind, s.parent) for s in result.symbols}


def _assert_chunks_cover(text: str, chunks: list[Chunk]) -> None:
    lines = text.split("\n")
    covered: set[int] = set()
    for position, chunk in enumerate(chunks):
        assert chunk.index == position
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines)
        assert chunk.text == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        assert chunk.kind in {"header", "symbol", "window"}
        covered.update(range(chunk.start_line, chunk.end_line + 1))
    missing = [n for n, line in enumerate(lines, 1) if line.strip() and n not in covered]
    assert not missing, f"uncovered non-blank lines: {missing[:10]}"


def _package_files(package: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations is not None
    files: list[Path] = []
    for location in spec.submodule_search_locations:
        files.extend(sorted(Path(location).rglob("*.py")))
    assert files
    return files


# ------------------------------------------------------------------ language snippets

PYTHON_SRC = '''\
"""Inventory service."""
from __future__ import annotations

import os
import logging.handlers as lh
from . import models
from ..core.db import Session, engine

LOG = lh.MemoryHandler(10)


# Registry of stock items.
@dataclass
class Inventory(Base):
    """Stock keeper."""

    def add(self, sku: str) -> None:
        def _normalise(value: str) -> str:
            return value.strip()

        self.items.append(_normalise(sku))

    @property
    async def total(self) -> int:
        return len(self.items)

    class Meta:
        table = "inventory"


def main() -> None:
    import json

    print(json.dumps({}))
'''


def test_python_symbols_imports_and_chunks() -> None:
    result = parse_source(PYTHON_SRC, "python")
    assert result.error is None
    assert result.language == "python"
    assert result.imports == [
        "__future__",
        "os",
        "logging.handlers",
        ".",
        "..core.db",
        "json",
    ]
    assert _triples(result) == {
        ("Inventory", "class", None),
        ("add", "method", "Inventory"),
        ("_normalise", "function", "add"),
        ("total", "method", "Inventory"),
        ("Meta", "class", "Inventory"),
        ("main", "function", None),
    }
    inventory = _sym(result, "Inventory")
    assert (inventory.start_line, inventory.end_line) == (14, 28)
    add = _sym(result, "add", "Inventory")
    assert (add.start_line, add.end_line) == (17, 21)
    total = _sym(result, "total", "Inventory")
    assert (total.start_line, total.end_line) == (24, 25)  # `async def` line, not decorator

    kinds = [(c.kind, c.symbol, c.start_line, c.end_line) for c in result.chunks]
    # Header holds docstring/imports/globals; symbol chunks swallow decorators and the
    # comment directly above the class.
    assert kinds == [
        ("header", None, 1, 9),
        ("symbol", "Inventory", 12, 28),
        ("symbol", "main", 31, 34),
    ]
    assert result.chunks[1].text.startswith("# Registry of stock items.\n@dataclass\nclass")
    _assert_chunks_cover(PYTHON_SRC, result.chunks)


JS_SRC = """\
'use strict'
import React, { useState } from "react";
import "./styles.css";
export { helper } from './helpers.js';
const path = require('path');

/** Renders a counter. */
export default function Counter({ start }) {
  const [n, setN] = useState(start);
  const increment = () => setN(n + 1);
  return <button onClick={increment}>{n}</button>;
}

export class Store extends Base {
  #items = [];
  onChange = (evt) => { this.emit(evt); };
  constructor(name) {
    super(name);
  }
  static create() {
    return new Store('default');
  }
}

module.exports.load = async function (file) {
  const mod = await import('./plugins/' + file);
  return import("lazy-dep");
};
"""


def test_javascript_symbols_imports() -> None:
    result = parse_source(JS_SRC, "javascript")
    assert result.error is None
    assert result.imports == ["react", "./styles.css", "./helpers.js", "path", "lazy-dep"]
    assert _triples(result) == {
        ("Counter", "function", None),
        ("increment", "function", "Counter"),
        ("Store", "class", None),
        ("onChange", "method", "Store"),
        ("constructor", "method", "Store"),
        ("create", "method", "Store"),
        ("load", "function", None),
    }
    counter = _sym(result, "Counter")
    assert (counter.start_line, counter.end_line) == (8, 12)
    store = _sym(result, "Store")
    assert (store.start_line, store.end_line) == (14, 23)
    create = _sym(result, "create", "Store")
    assert (create.start_line, create.end_line) == (20, 22)
    chunk = next(c for c in result.chunks if c.symbol == "Counter")
    # The JSDoc comment and the `export default` wrapper belong to the function chunk.
    assert (chunk.start_line, chunk.end_line) == (7, 12)
    _assert_chunks_cover(JS_SRC, result.chunks)


TS_SRC = """\
import type { Request } from "express";
import * as fs from 'node:fs';
import legacy = require("legacy-lib");

export interface Repo<T> {
  find(id: string): Promise<T>;
}

export type Id = string | number;

enum Level { Low, High }

export abstract class BaseRepo<T> implements Repo<T> {
  protected cache = new Map<string, T>();
  abstract find(id: string): Promise<T>;
  clear(): void {
    this.cache.clear();
  }
}

namespace Utils {
  export function slug(s: string): string {
    return s.toLowerCase();
  }
}

export const handler = async (req: Request): Promise<void> => {
  await fs.promises.readFile(req.path);
};
"""


def test_typescript_symbols_imports() -> None:
    result = parse_source(TS_SRC, "typescript")
    assert result.error is None
    assert result.imports == ["express", "node:fs", "legacy-lib"]
    assert _triples(result) == {
        ("Repo", "interface", None),
        ("find", "method", "Repo"),
        ("Id", "type", None),
        ("Level", "enum", None),
        ("BaseRepo", "class", None),
        ("find", "method", "BaseRepo"),
        ("clear", "method", "BaseRepo"),
        ("Utils", "module", None),
        ("slug", "function", "Utils"),
        ("handler", "function", None),
    }
    base = _sym(result, "BaseRepo")
    assert (base.start_line, base.end_line) == (13, 19)
    clear = _sym(result, "clear", "BaseRepo")
    assert (clear.start_line, clear.end_line) == (16, 18)
    handler = _sym(result, "handler")
    assert (handler.start_line, handler.end_line) == (27, 29)
    _assert_chunks_cover(TS_SRC, result.chunks)


TSX_SRC = """\
import React from "react";
import { Button } from "@/components/ui/button";

type Props = { label: string };

export function Toolbar({ label }: Props) {
  return <div className="bar"><Button>{label}</Button></div>;
}

export const Empty: React.FC = () => <span />;
"""


def test_tsx_symbols() -> None:
    assert detect_language("src/Toolbar.tsx") == "tsx"
    result = parse_source(TSX_SRC, "tsx")
    assert result.error is None
    assert result.imports == ["react", "@/components/ui/button"]
    assert _triples(result) == {
        ("Props", "type", None),
        ("Toolbar", "function", None),
        ("Empty", "function", None),
    }
    assert (_sym(result, "Toolbar").start_line, _sym(result, "Toolbar").end_line) == (6, 8)


GO_SRC = """\
// Package cache provides an LRU cache.
package cache

import (
	"container/list"
	stdsync "sync"
)

import "errors"

// ErrMiss is returned on a miss.
var ErrMiss = errors.New("miss")

type (
	Key   string
	Entry struct {
		key Key
	}
)

// Cache is an LRU cache.
type Cache[V any] struct {
	mu    stdsync.Mutex
	items *list.List
}

type Getter interface {
	Get(k Key) (any, error)
}

// Get returns a cached value.
func (c *Cache[V]) Get(k Key) (V, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	return zero, ErrMiss
}

func (e Entry) String() string { return string(e.key) }

func New[V any]() *Cache[V] {
	return &Cache[V]{items: list.New()}
}
"""


def test_go_symbols_imports() -> None:
    result = parse_source(GO_SRC, "go")
    assert result.error is None
    assert result.imports == ["container/list", "sync", "errors"]
    assert _triples(result) == {
        ("Key", "type", None),
        ("Entry", "struct", None),
        ("Cache", "struct", None),
        ("Getter", "interface", None),
        ("Get", "method", "Cache"),
        ("String", "method", "Entry"),
        ("New", "function", None),
    }
    get = _sym(result, "Get", "Cache")
    assert (get.start_line, get.end_line) == (32, 37)
    cache = _sym(result, "Cache")
    assert (cache.start_line, cache.end_line) == (22, 25)
    get_chunk = next(c for c in result.chunks if c.symbol == "Cache.Get")
    assert (get_chunk.start_line, get_chunk.end_line) == (31, 37)  # doc comment included
    _assert_chunks_cover(GO_SRC, result.chunks)


JAVA_SRC = """\
package com.example.orders;

import java.util.List;
import java.util.concurrent.*;
import static java.util.Objects.requireNonNull;

/**
 * Order service.
 */
public class OrderService implements Service {
    private final List<Order> orders;

    public OrderService(List<Order> orders) {
        this.orders = requireNonNull(orders);
    }

    @Override
    public int count() {
        return orders.size();
    }

    public enum Status { OPEN, CLOSED; boolean done() { return this == CLOSED; } }

    interface Listener {
        void onOrder(Order o);
    }

    record Line(String sku, int qty) {}
}
"""


def test_java_symbols_imports() -> None:
    result = parse_source(JAVA_SRC, "java")
    assert result.error is None
    assert result.imports == [
        "java.util.List",
        "java.util.concurrent.*",
        "java.util.Objects.requireNonNull",
    ]
    assert _triples(result) == {
        ("OrderService", "class", None),
        ("OrderService", "method", "OrderService"),
        ("count", "method", "OrderService"),
        ("Status", "enum", "OrderService"),
        ("done", "method", "Status"),
        ("Listener", "interface", "OrderService"),
        ("onOrder", "method", "Listener"),
        ("Line", "record", "OrderService"),
    }
    service = _sym(result, "OrderService")
    assert (service.start_line, service.end_line) == (10, 29)
    count = _sym(result, "count", "OrderService")
    assert (count.start_line, count.end_line) == (17, 20)  # annotation is part of the method
    chunk = next(c for c in result.chunks if c.symbol == "OrderService")
    assert chunk.start_line == 7  # Javadoc travels with the class
    _assert_chunks_cover(JAVA_SRC, result.chunks)


RUST_SRC = """\
use std::collections::HashMap;
use std::io::{self, Read as _, Write};
use crate::config::*;
extern crate serde;

/// A key-value store.
#[derive(Debug, Default)]
pub struct Store<K> {
    map: HashMap<K, String>,
}

pub trait Backend {
    fn load(&self) -> io::Result<()>;
    fn name(&self) -> &str {
        "backend"
    }
}

impl<K: std::hash::Hash + Eq> Store<K> {
    pub fn new() -> Self {
        Self { map: HashMap::new() }
    }
}

impl Backend for Store<String> {
    fn load(&self) -> io::Result<()> {
        Ok(())
    }
}

pub enum Mode { Fast, Safe }

mod tests {
    fn helper() {}
}

fn main() {
    fn nested() {}
    nested();
}
"""


def test_rust_symbols_imports() -> None:
    result = parse_source(RUST_SRC, "rust")
    assert result.error is None
    assert result.imports == [
        "std::collections::HashMap",
        "std::io::self",
        "std::io::Read",
        "std::io::Write",
        "crate::config::*",
        "serde",
    ]
    assert _triples(result) == {
        ("Store", "struct", None),
        ("Backend", "trait", None),
        ("load", "method", "Backend"),
        ("name", "method", "Backend"),
        ("Store", "impl", None),
        ("new", "method", "Store"),
        ("load", "method", "Store"),
        ("Mode", "enum", None),
        ("tests", "module", None),
        ("helper", "function", "tests"),
        ("main", "function", None),
        ("nested", "function", "main"),
    }
    new = _sym(result, "new", "Store")
    assert (new.start_line, new.end_line) == (20, 22)
    struct_chunk = next(c for c in result.chunks if c.symbol == "Store")
    assert (struct_chunk.start_line, struct_chunk.end_line) == (6, 10)  # doc + attribute
    _assert_chunks_cover(RUST_SRC, result.chunks)


C_SRC = """\
#include <stdio.h>
#include <stdlib.h>
#include "list.h"

#define CAP 16

/* A singly linked node. */
struct node {
    int value;
    struct node *next;
};

typedef struct {
    struct node *head;
    size_t len;
} list_t;

enum color { RED, GREEN };

static struct node *node_new(int value) {
    struct node *n = malloc(sizeof *n);
    n->value = value;
    return n;
}

int main(int argc, char **argv) {
    list_t l = {0};
    printf("%d\\n", argc);
    return 0;
}
"""


def test_c_symbols_imports() -> None:
    result = parse_source(C_SRC, "c")
    assert result.error is None
    assert result.imports == ["stdio.h", "stdlib.h", "list.h"]
    assert _triples(result) == {
        ("node", "struct", None),
        ("list_t", "struct", None),
        ("color", "enum", None),
        ("node_new", "function", None),
        ("main", "function", None),
    }
    node_new = _sym(result, "node_new")
    assert (node_new.start_line, node_new.end_line) == (20, 24)
    main = _sym(result, "main")
    assert (main.start_line, main.end_line) == (26, 30)
    assert next(c for c in result.chunks if c.symbol == "node").start_line == 7
    _assert_chunks_cover(C_SRC, result.chunks)


CPP_SRC = """\
#include <vector>
#include <memory>
#include "shape.hpp"

namespace geo {

class Shape {
 public:
  virtual ~Shape() = default;
  virtual double area() const = 0;
  int id() const { return id_; }

 private:
  int id_ = 0;
};

struct Point { double x, y; };

template <typename T>
T clamp(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

}  // namespace geo

double Circle::area() const {
  return 3.14159 * r_ * r_;
}

int main() {
  std::vector<std::unique_ptr<geo::Shape>> shapes;
  return static_cast<int>(shapes.size());
}
"""


def test_cpp_symbols_imports() -> None:
    result = parse_source(CPP_SRC, "cpp")
    assert result.error is None
    assert result.imports == ["vector", "memory", "shape.hpp"]
    assert _triples(result) == {
        ("geo", "namespace", None),
        ("Shape", "class", "geo"),
        ("~Shape", "method", "Shape"),
        ("area", "method", "Shape"),
        ("id", "method", "Shape"),
        ("Point", "struct", "geo"),
        ("clamp", "function", "geo"),
        ("area", "method", "Circle"),
        ("main", "function", None),
    }
    shape = _sym(result, "Shape", "geo")
    assert (shape.start_line, shape.end_line) == (7, 15)
    clamp = _sym(result, "clamp", "geo")
    assert (clamp.start_line, clamp.end_line) == (20, 22)
    out_of_class = _sym(result, "area", "Circle")
    assert (out_of_class.start_line, out_of_class.end_line) == (26, 28)
    _assert_chunks_cover(CPP_SRC, result.chunks)


# --------------------------------------------------------------------- real sources


@pytest.mark.parametrize("package", ["starlette", "httpx", "pydantic"])
def test_real_python_packages_match_ast_and_are_covered(package: str) -> None:
    checked = 0
    for path in _package_files(package):
        text = path.read_text(encoding="utf-8")
        result = parse_source(text, detect_language(str(path)))
        assert result.error is None, path
        _assert_chunks_cover(text, result.chunks)
        expected = sorted(
            (node.name, node.lineno)
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        )
        got = sorted((s.name, s.start_line) for s in result.symbols)
        assert got == expected, path
        for symbol in result.symbols:
            assert symbol.start_line <= symbol.end_line
        checked += 1
    assert checked > 5


def test_real_c_sources_are_covered() -> None:
    spec = importlib.util.find_spec("mypyc")
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("mypyc not installed")
    runtime = Path(next(iter(spec.submodule_search_locations))) / "lib-rt"
    files = sorted(runtime.glob("*.[ch]"))
    if not files:
        pytest.skip("mypyc lib-rt sources not shipped")
    functions = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        result = parse_source(text, detect_language(str(path), text[:4096].encode()))
        assert result.error is None
        _assert_chunks_cover(text, result.chunks)
        functions += sum(1 for s in result.symbols if s.kind == "function")
    assert functions > 50


# ------------------------------------------------------------------------- chunking


def test_long_function_split_into_overlapping_windows() -> None:
    body = "\n".join(f"    total += {i}" for i in range(200))
    text = f"import math\n\n\ndef big():\n    total = 0\n{body}\n    return total\n"
    result = parse_source(text, "python", max_chunk_lines=50, overlap_lines=10)
    big = _sym(result, "big")
    assert (big.start_line, big.end_line) == (4, 206)
    pieces = [c for c in result.chunks if c.symbol == "big"]
    assert all(c.kind == "symbol" for c in pieces)
    assert pieces[0].start_line == 4
    assert pieces[-1].end_line == 206
    for previous, current in itertools.pairwise(pieces):
        assert current.start_line == previous.end_line - 10 + 1  # exactly 10 lines overlap
    assert all(c.end_line - c.start_line + 1 <= 50 for c in pieces)
    assert result.chunks[0].kind == "header"
    _assert_chunks_cover(text, result.chunks)


def test_large_class_is_split_into_methods() -> None:
    methods = "\n\n".join(
        textwrap.indent(
            f"def m{i}(self):\n" + "\n".join(f"    x = {j}" for j in range(8)) + "\n    return x",
            "    ",
        )
        for i in range(12)
    )
    text = f'class Big:\n    """Many methods."""\n\n    limit = 3\n\n{methods}\n\n\nrest = 1\n'
    result = parse_source(text, "python", max_chunk_lines=40)
    by_symbol = [(c.symbol, c.kind) for c in result.chunks]
    assert by_symbol[0] == ("Big", "symbol")  # class line, docstring and attributes
    assert result.chunks[0].text.startswith("class Big:")
    assert [s for s, _ in by_symbol[1:13]] == [f"Big.m{i}" for i in range(12)]
    assert by_symbol[-1] == (None, "window")  # trailing module code is not lost
    assert result.chunks[-1].text == "rest = 1"
    _assert_chunks_cover(text, result.chunks)


def test_small_class_stays_whole() -> None:
    text = "class A:\n    def f(self):\n        return 1\n\n    def g(self):\n        return 2\n"
    result = parse_source(text, "python")
    assert [(c.kind, c.symbol, c.start_line, c.end_line) for c in result.chunks] == [
        ("symbol", "A", 1, 6)
    ]


def test_code_between_symbols_becomes_window_chunk() -> None:
    text = "def a():\n    pass\n\nCONST = 1\nOTHER = 2\n\ndef b():\n    pass\n"
    result = parse_source(text, "python")
    assert [(c.kind, c.symbol, c.start_line, c.end_line) for c in result.chunks] == [
        ("symbol", "a", 1, 2),
        ("window", None, 4, 5),
        ("symbol", "b", 7, 8),
    ]


# ----------------------------------------------------------------------- fallbacks


def test_unknown_language_falls_back_to_windows() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 151)) + "\n"
    result = parse_source(text, None, window_lines=60, overlap_lines=10)
    assert result.symbols == [] and result.imports == [] and result.error is None
    assert [(c.start_line, c.end_line, c.kind) for c in result.chunks] == [
        (1, 60, "window"),
        (51, 110, "window"),
        (101, 150, "window"),
    ]
    _assert_chunks_cover(text, result.chunks)

    # A detected language without a symbol table behaves the same.
    ruby = parse_source("def hi\n  puts 'hi'\nend\n", "ruby")
    assert ruby.error is None and ruby.symbols == []
    assert [(c.start_line, c.end_line) for c in ruby.chunks] == [(1, 3)]
    assert "ruby" not in supported_languages()


def test_grammar_load_failure_reports_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A table row pointing at a grammar that does not exist exercises the real failure
    # path of tree_sitter_language_pack.get_language.
    monkeypatch.setitem(
        parsing._SPECS, "klingon", parsing._LanguageSpec(grammar="klingon", query="")
    )
    text = "qapla'\n\nbatlh\n"
    result = parse_source(text, "klingon")
    assert result.error is not None and "klingon parser unavailable" in result.error
    assert result.symbols == [] and result.imports == []
    assert [(c.start_line, c.end_line, c.kind) for c in result.chunks] == [(1, 3, "window")]


def test_oversized_source_skips_syntax_parsing() -> None:
    text = "def f():\n    return 1\n" + "# padding line\n" * (parsing.MAX_PARSE_BYTES // 15 + 1)
    result = parse_source(text, "python", window_lines=5000)
    assert result.error is not None and "exceeds" in result.error
    assert result.symbols == []
    _assert_chunks_cover(text, result.chunks)


@pytest.mark.parametrize("text", ["", "\n\n   \n", "\t\n"])
def test_empty_files_have_no_chunks(text: str) -> None:
    for language in (None, "python", "go"):
        result = parse_source(text, language)
        assert result.chunks == [] and result.symbols == [] and result.error is None


def test_syntax_error_still_yields_chunks_and_symbols() -> None:
    text = (
        "import os\n\n"
        "def good():\n    return 1\n\n"
        "def broken(:\n    return (\n\n"
        "class Later:\n    def ok(self):\n        return 2\n"
    )
    result = parse_source(text, "python")
    assert result.error is None
    names = {s.name for s in result.symbols}
    assert "good" in names
    assert result.imports == ["os"]
    _assert_chunks_cover(text, result.chunks)


@pytest.mark.parametrize("language", [*sorted(supported_languages()), None, "ruby"])
def test_garbage_never_raises(language: str | None) -> None:
    rng = random.Random(1234)
    samples = [
        bytes(rng.randrange(256) for _ in range(4000)).decode("utf-8", "replace"),
        "\x00\x01\x02{{{{((((\n" * 50,
        "}" * 3000,
        "class " * 500 + "\n" + "def (" * 300,
        "\ud800 lone surrogate \udfff\n" * 5,
        "\r\n".join(["int main() {", "  return 0;", "}"]),
        "x" * 100_000,
    ]
    for text in samples:
        result = parse_source(text, language, max_chunk_lines=20, overlap_lines=5)
        assert isinstance(result, ParseResult)
        _assert_chunks_cover(text, result.chunks)


def test_degenerate_chunk_parameters() -> None:
    text = "def f():\n" + "\n".join(f"    a = {i}" for i in range(30)) + "\n"
    result = parse_source(text, "python", max_chunk_lines=1, overlap_lines=5, window_lines=0)
    assert all(c.start_line == c.end_line for c in result.chunks)
    _assert_chunks_cover(text, result.chunks)


def test_parsing_is_thread_safe() -> None:
    sources = [
        (PYTHON_SRC, "python"),
        (GO_SRC, "go"),
        (RUST_SRC, "rust"),
        (TS_SRC, "typescript"),
        (CPP_SRC, "cpp"),
    ]
    expected = [parse_source(text, lang) for text, lang in sources]
    failures: list[str] = []

    def worker(seed: int) -> None:
        order = list(range(len(sources)))
        random.Random(seed).shuffle(order)
        for _ in range(20):
            for i in order:
                if parse_source(*sources[i]) != expected[i]:
                    failures.append(sources[i][1])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# ----------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a/b/app.py", "python"),
        ("web/index.MJS", "javascript"),
        ("lib.cjs", "javascript"),
        ("view.jsx", "javascript"),
        ("svc.ts", "typescript"),
        ("ui.tsx", "tsx"),
        ("main.go", "go"),
        ("Main.java", "java"),
        ("lib.rs", "rust"),
        ("x.c", "c"),
        ("x.h", "c"),
        ("x.cc", "cpp"),
        ("x.hpp", "cpp"),
        ("C:\\src\\x.cxx", "cpp"),
        ("Gemfile", "ruby"),
        ("Dockerfile", "dockerfile"),
        ("config.yml", "yaml"),
        ("README.md", "markdown"),
        ("pyproject.toml", "toml"),
        ("schema.sql", "sql"),
        ("noext", None),
        (".bashrc", None),
        ("archive.tar.gz", None),
    ],
)
def test_detect_language_by_extension(path: str, expected: str | None) -> None:
    assert detect_language(path) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"#!/usr/bin/env python3\nprint(1)\n", "python"),
        (b"#!/usr/bin/python3.11 -u\n", "python"),
        (b"#!/usr/bin/env -S node --experimental\n", "javascript"),
        (b"#!/bin/sh\nset -e\n", "bash"),
        (b"#!/usr/bin/env bash\n", "bash"),
        (b"#!/usr/bin/ruby -w\n", "ruby"),
        (b"#!/usr/bin/perl\n", "perl"),
        (b"#!/usr/bin/env FOO=1 python\n", "python"),
        (b"#!\n", None),
        (b"#!/usr/bin/env\n", None),
        (b"print('no shebang')\n", None),
    ],
)
def test_detect_language_by_shebang(head: bytes, expected: str | None) -> None:
    assert detect_language("bin/tool", head) == expected


def test_detect_language_extension_wins_over_shebang() -> None:
    assert detect_language("run.js", b"#!/usr/bin/env python\n") == "javascript"


def test_cpp_header_detected_from_content() -> None:
    assert detect_language("shape.h", b"#pragma once\nnamespace geo {\nclass A {};\n}\n") == "cpp"
    assert detect_language("list.h", b"#pragma once\nstruct node { int v; };\n") == "c"


def test_is_binary() -> None:
    assert not is_binary(b"")
    assert not is_binary(b"print('hello')\n")
    assert not is_binary("naïve café ünïcode\n".encode())
    assert not is_binary("caf\xe9 latin-1 source\n".encode("latin-1"))
    assert is_binary(b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 100)
    assert is_binary(bytes(range(1, 32)) * 200)
    # A multi-byte character split by the 8 KiB sample boundary is still text.
    assert not is_binary(b"a" * 8191 + "é".encode())
    # NUL beyond the sampled prefix is not looked at.
    assert not is_binary(b"a" * 9000 + b"\x00")
