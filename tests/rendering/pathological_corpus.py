"""Pathological Markdown: inputs that make naive parsers do quadratic (or worse) work.

Each is at most ~200 KB (the default RENDER_MAX_INPUT_BYTES; ``nested-lists`` is over it on
purpose). CORPUS covers nested brackets, emphasis runs, link-reference floods, deep lists and
quotes, huge tables, backtick runs, every inline terminator, linkify, math and highlighting,
each both as a flood and as the most that fits under the default limits ("-at-limit"), plus
the inputs that were slow in the last measurement. BENIGN holds ordinary documents that must
render. Shared by the test suite (`tests/rendering/test_pathological.py`: each input renders
or gets a 4xx, with a timing-free work bound) and the committed benchmark
(`benchmarks/render_pathological.py`: the < 250 ms figure).
"""

from __future__ import annotations

N = 100_000
#: just under the default size limit: the largest input an attacker may send
LIMIT = 199_000
_PROSE = "The quick brown fox jumps over the lazy dog. "


def _fill(unit: str, size: int = LIMIT) -> str:
    """``unit`` repeated to exactly ``size`` characters."""
    return (unit * (size // len(unit) + 1))[:size]


def _pad(head: str, size: int = LIMIT) -> str:
    """``head`` then plain prose paragraphs up to ``size`` characters (the cheapest filler)."""
    return head + "\n\n" + _fill(_PROSE * 20 + "\n\n", max(0, size - len(head) - 2))


def _table(rows: int, cols: int) -> str:
    head = "|" + "|".join(f"h{c}" for c in range(cols)) + "|\n"
    sep = "|" + "|".join("---" for _ in range(cols)) + "|\n"
    body = "".join("|" + "|".join("x" for _ in range(cols)) + "|\n" for _ in range(rows))
    return head + sep + body


CORPUS: dict[str, str] = {
    "open-brackets": "[" * N,
    "close-brackets": "]" * N,
    "bracket-pairs-nested": "[" * (N // 2) + "]" * (N // 2),
    "bracket-paren-open": "[a](" * (N // 4),
    "bang-brackets": "![" * (N // 2),
    "link-in-link": "[a" * (N // 2),
    "link-text-unclosed-destination": "[x](" + "(" * N,
    "angle-destination": "[a](<" * (N // 5),
    "emphasis-stars": "*" * N,
    "emphasis-alternating": "*a_" * (N // 3),
    "emphasis-open-runs": "*a " * (N // 3),
    "emphasis-underscores": "_a " * (N // 3),
    "strong-runs": "**a " * (N // 4),
    "strike-runs": "~~a " * (N // 4),
    "backtick-runs": "".join("`" * i + "a" for i in range(1, 440)),
    "backticks-unclosed": "`a" * (N // 2),
    "backtick-long-run": "`" * N,
    "link-reference-flood": "".join(f"[r{i}]: /u{i}\n" for i in range(6000))
    + "".join(f"[r{i}] " for i in range(6000)),
    "reference-definitions-unused": "[a]: /b\n" * (N // 8),
    "reference-label-long": "[" + "a" * 999 + "]: /u\n" + ("[" + "a" * 999 + "] ") * 150,
    "nested-lists": "".join("  " * i + "- a\n" for i in range(1000)),
    "nested-lists-flat": "- " * (N // 2),
    "nested-quotes": ">" * N,
    "nested-quotes-lines": "".join(">" * i + " a\n" for i in range(600)),
    "huge-table": _table(4000, 10),
    "wide-table": _table(2, 5000),
    "table-many-pipes": "|a|\n|-|\n" + "|" * N,
    "html-entities": "&amp;" * (N // 5),
    "numeric-entities": "&#" * (N // 2),
    "autolinks-open": "<a" * (N // 2),
    "autolinks-many": "<http://a.b> " * (N // 13),
    "linkify-urls": "www.a.com " * (N // 10),
    "linkify-emails": "a@b.co " * (N // 7),
    "math-dollars": "$" * N,
    "math-dollar-pairs": "$a$ " * (N // 4),
    "fence-unclosed": "```\n" + "a\n" * (N // 2),
    "fences-many": "```py\nx\n```\n" * (N // 12),
    "headings": "# a\n" * (N // 4),
    "setext": "a\n=\n" * (N // 4),
    "hard-breaks": "a  \n" * (N // 4),
    "backslashes": "\\" * N,
    "indented-code": "    a\n" * (N // 6),
    "mixed-delimiters": "*_`[" * (N // 4),
    "task-lists": "- [ ] a\n" * (N // 8),
    "unicode-combining": "a" + "\u0301" * (N // 2),
    # --- at the size limit: every inline terminator markdown-it stops at (issue 11, round 2)
    "colons-200k": _fill(":"),
    "terminators-200k": _fill("a:a-a+a=a%a^a{a}a#a"),
    "pipes-200k": _fill("a|"),
    "greater-than-200k": _fill("a>"),
    "double-quotes-200k": _fill('"'),
    "lt-200k": _fill("a<"),
    # linkify: a long pending text before "://" (a scheme regex over it), fuzzy hosts
    "linkify-scheme-pending": _fill("a" * 600 + "://", 299 * 603),
    "linkify-fuzzy-hosts": _fill("a.b"),
    "linkify-prose-20k": _fill("see example.com or a.b.c. ", 20_000),
    # the most of each costly class that fits under the default limits, padded with prose
    "emphasis-at-limit": _pad(_fill("*a ", 3 * 9_000)),
    "brackets-at-limit": _pad("[" * 3_000),
    "images-at-limit": _pad("![" * 1_500),
    "backticks-at-limit": _pad("".join("`" * i + "a" for i in range(1, 120))),
    "lines-at-limit": _pad(_fill("a" * 39 + "\n", 40 * 3_000)),
    "headings-at-limit": _pad("# a\n" * 3_000),
    "ordered-list-at-limit": _pad("1. " + "a" * 37 + "\n" * 1 + ("1. " + "a" * 37 + "\n") * 2_999),
    "task-list-at-limit": _pad("- [ ] a\n" * 1_500),
    "nested-quotes-at-limit": _pad((">" * 19 + " " + "a" * 40 + "\n") * 500),
    "table-2-cols-at-limit": _pad(_table(2_000, 2)),
    "table-10-cols-at-limit": _pad(_table(300, 10)),
    "reference-definitions-at-limit": _pad("".join(f"[r{i}]: /u{i}\n" for i in range(1_500))),
    "math-formulas-at-limit": _pad("$" + "{" * 1000 + "x" + "}" * 1000 + "$\n\n" * 1),
    "math-many-small": _pad("$x^2$ " * 1_000),
    "fence-unclosed-200k": "```\n" + _fill("a\n"),
    "fence-in-math-block": "$$\n```\n$$\n" + _fill("*a ", 150_000),
    "fence-info-with-backtick": "```a`b\n" + _fill("*a ", 150_000),
    "fence-in-list-item": "- a\n\n  ```\n" + _fill("*a ", 150_000),
    "highlight-ruby": "".join(
        "```ruby\n" + "def f(x) = x.map { |y| y * 2 }\n" * 60 + "```\n" for _ in range(100)
    ),
    # loading a lexer the first time costs up to 150 ms (scala): 99 fences, rare languages
    "highlight-rare-languages": "".join(
        f"```{lang}\nx = 1\n```\n"
        for lang in (
            "cobol",
            "ada",
            "abap",
            "apl",
            "awk",
            "boo",
            "ceylon",
            "chapel",
            "crystal",
            "cypher",
            "d",
            "eiffel",
            "factor",
            "fancy",
            "gap",
            "gosu",
            "hy",
            "idris",
            "io",
            "j",
            "lasso",
            "limbo",
            "mask",
            "modula2",
            "monkey",
            "mosel",
            "nesc",
            "nit",
            "ooc",
            "pike",
            "pony",
            "rebol",
            "red",
            "sarl",
            "smalltalk",
            "snobol",
            "tcl",
            "vala",
            "whiley",
            "x10",
            "xtend",
            "zephir",
            "befunge",
        )
        * 2
    ),
    "highlight-many-languages": "".join(
        f"```{lang}\n" + "int main(void){ int x = 3; return x; }\n" * 40 + "```\n"
        for lang in ("c", "rust", "bash", "perl", "yaml", "javascript") * 15
    ),
}

#: Documents people write: each must render (200), however close to the size limit.
BENIGN: dict[str, str] = {
    "benign-prose-190k": _fill(_PROSE * 20 + "\n\n", 190_000),
    "benign-code-block-90k": "```python\n"
    + "def f(x):\n    return [x * 2 for _ in range(3)]\n" * 2000
    + "```\n",
    # dense Markdown (every construct each 3 lines): ~12 KB is what RENDER_MAX_WORK allows
    "benign-mixed-12k": (
        "# Title\n\nSome *emphasis*, `code`, a [link](https://example.com) and "
        "www.example.org.\n\n- item one\n- item two\n  - nested\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n> a quote\n\n"
        "```python\nprint('hi')\n```\n\nMath $x^2$ here.\n\n"
    )
    * 60,
}
