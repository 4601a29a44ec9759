"""Pathological Markdown: inputs that make naive parsers do quadratic (or worse) work.

Each is at most ~200 KB (the default RENDER_MAX_INPUT_BYTES). Shared by the test suite
(`tests/rendering/test_pathological.py`: each input renders or gets a 4xx) and the committed
benchmark (`benchmarks/render_pathological.py`: the < 250 ms figure).
"""

from __future__ import annotations

N = 100_000


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
}
