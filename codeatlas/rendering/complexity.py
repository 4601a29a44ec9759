"""A cheap pre-scan that refuses Markdown whose render would be slow, before it is parsed.

markdown-it's cost is not only proportional to the size: each punctuation mark the inline
parser stops at costs ~2-8 µs (every inline rule is tried), a ``[`` ~15-30 µs (link-label
scans), a ``|`` ~20 µs (table cells), a block line 10-50 µs, a highlighted character of code
~1-10 µs (Pygments lexers), a linkified character ~1.5 µs (linkify-it's unicode regexes).
``"[" * 100000`` took 6 s (issue 11, finding 3).

The scan is a few linear passes in C (``str.count``, one regex over fence lines) that
estimate the render's CPU cost in **work units (1 unit ≈ 1 µs of CPU on the reference
machine, see docs/benchmarks.md)** from the counts of what makes rendering expensive, with
the per-item weights below (measured by ``benchmarks/render_pathological.py``; each weight
is at or above the worst measured cost of its class). Over ``RENDER_MAX_WORK`` units, over
``RENDER_MAX_INLINE_MARKS`` marks or over ``RENDER_MAX_LINES`` lines outside fenced code:
422 ``MARKDOWN_TOO_COMPLEX``, with the counts in ``details``.

Highlighting, bare-URL linkify and math conversion are not refused: the renderer pays for them
from what ``RENDER_MAX_WORK`` leaves after parsing (:func:`budgets`), each at most its own
setting, and leaves code plain, URLs unlinked or formulas as source past that.

Fenced code is exempt from the mark and line counts (it is highlighted, not inline-parsed)
only where markdown-it is sure to agree that it is fenced: an opening fence at column 0 with
a valid info string, and no ``$$`` math block anywhere that could swallow a fence line.
Anything else is counted as if it were Markdown, so a mis-detection can only over-estimate.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from codeatlas.errors import AppError

if TYPE_CHECKING:
    from codeatlas.settings import Settings

#: Characters markdown-it's inline parser stops at (its terminator set), plus ``|`` of table
#: cells. Newlines are counted as lines instead.
MARKS = "*+#_:@>`-[%$&!=<]\\~^{}|"
_FENCE_LINE = re.compile(r"^( {0,3})(`{3,}|~{3,})([^\n]*)$", re.MULTILINE)
# Measured (benchmarks/render_pathological.py): each linkify candidate and each code fence
# costs far more than its characters, so they keep bounds of their own.
MAX_LINK_CANDIDATES = 300
MAX_FENCE_LINES = 200

# Work units (≈ µs of CPU on the reference machine) per counted item.
W_BYTE = 0.1  # every character: scanning, escaping, sanitising
W_LINE = 35.0  # a non-blank line outside fenced code (list item, heading, table row ...)
W_FENCED_LINE = 2.5  # a line inside fenced code (the fence rule only looks for its end)
W_MARK = 8.0  # a punctuation mark outside fenced code (every inline rule is tried)
W_BRACKET = 30.0  # extra for "[" (link label scans, "![" images)
W_PIPE = 20.0  # extra for "|" (a table cell: its own inline parse)
W_DOLLAR = 40.0  # extra for "$" (a formula converted by latex2mathml)
W_EMPHASIS = 10.0  # extra for "*", "_" and "~" (delimiter runs, balanced pairwise)
W_QUOTE = 0.6  # a '"' (escaped to &quot;, re-parsed by the sanitiser)
# What the renderer may spend on the optional steps comes out of what the budget leaves
# (core.render_markdown): per highlighted character, linkified character, formula character.
W_HIGHLIGHT = 12.0
W_LINKIFY = 5.0
W_MATH = 5.0


class MarkdownTooComplex(AppError):
    status_code = 422
    error_code = "MARKDOWN_TOO_COMPLEX"
    message = "Markdown too complex to render"


@dataclass(frozen=True, slots=True)
class ComplexityLimits:
    """The bounds applied by :func:`check_complexity` (from settings, see ``from_settings``)."""

    max_marks: int = 10_000
    max_lines: int = 5_000
    max_work: int = 100_000

    @classmethod
    def from_settings(cls, settings: Settings) -> ComplexityLimits:
        return cls(
            max_marks=settings.render_max_inline_marks,
            max_lines=settings.render_max_lines,
            max_work=settings.render_max_work,
        )


@dataclass(frozen=True, slots=True)
class Complexity:
    """What the pre-scan counted and the estimated work (units ≈ µs of CPU) of parsing and
    sanitising; highlighting, linkify and math are paid from what ``max_work`` leaves."""

    chars: int
    lines: int  # non-blank lines outside fenced code
    fenced_lines: int
    fenced_chars: int
    marks: int  # outside fenced code
    brackets: int
    pipes: int
    dollars: int
    emphasis: int
    quotes: int
    links: int
    fences: int
    work: int


def _fenced_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of fenced code content that markdown-it is sure to see as code."""
    if "$$" in text:  # a math block can contain a fence line: excuse nothing
        return []
    spans: list[tuple[int, int]] = []
    opening: re.Match[str] | None = None
    for found in _FENCE_LINE.finditer(text):
        indent, marker, rest = found.groups()
        if opening is None:
            # column 0 only: an indented fence may belong to a list item that a later
            # unindented line ends (the fence with it); a backtick fence's info string
            # may not hold a backtick (then it is no fence at all).
            if indent or (marker[0] == "`" and "`" in rest):
                continue
            opening = found
        elif (
            marker[0] == opening.group(2)[0]
            and len(marker) >= len(opening.group(2))
            and not rest.strip()
        ):
            spans.append((opening.end() + 1, found.start()))
            opening = None
    if opening is not None:  # unclosed: code to the end
        spans.append((min(opening.end() + 1, len(text)), len(text)))
    return spans


def measure(text: str) -> Complexity:
    """Count what makes rendering expensive; linear, C-speed passes only."""
    if "\r" in text:  # markdown-it normalises line endings the same way
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    chars = len(text)
    links = text.count("www.") + text.count("://") + text.count("@")
    fences = len(_FENCE_LINE.findall(text))

    def counts(start: int, end: int) -> list[int]:
        newlines = text.count("\n", start, end)
        blank = text.count("\n\n", start, end)
        return [
            newlines - blank + 1,
            sum(text.count(ch, start, end) for ch in MARKS),
            text.count("[", start, end),
            text.count("|", start, end),
            text.count("$", start, end),
            sum(text.count(ch, start, end) for ch in "*_~"),
            text.count('"', start, end),
            end - start,
        ]

    total = counts(0, chars)
    fenced = [0] * len(total)
    # past the fence bound the input is refused anyway: no need to find the spans
    for start, end in _fenced_spans(text) if 0 < fences <= MAX_FENCE_LINES else []:
        fenced = [a + b for a, b in zip(fenced, counts(start, end), strict=True)]
    lines, marks, brackets, pipes, dollars, emphasis, quotes, _ = (
        a - b for a, b in zip(total, fenced, strict=True)
    )
    lines = max(lines, 0)
    fenced_lines, fenced_chars = fenced[0], fenced[-1]
    work = (
        W_BYTE * chars
        + W_LINE * lines
        + W_FENCED_LINE * fenced_lines
        + W_MARK * marks
        + W_BRACKET * brackets
        + W_PIPE * pipes
        + W_DOLLAR * dollars
        + W_EMPHASIS * emphasis
        + W_QUOTE * quotes
    )
    return Complexity(
        chars=chars,
        lines=lines,
        fenced_lines=fenced_lines,
        fenced_chars=fenced_chars,
        marks=marks,
        brackets=brackets,
        pipes=pipes,
        dollars=dollars,
        emphasis=emphasis,
        quotes=quotes,
        links=links,
        fences=fences,
        work=int(work),
    )


@dataclass(frozen=True, slots=True)
class Budgets:
    """What one render may spend on its optional steps (see :func:`budgets`)."""

    linkify: bool
    #: work units left for highlighting and math, spent in document order
    work_left: float


def budgets(found: Complexity, *, max_work: int, linkify_chars: int) -> Budgets:
    """What ``max_work`` leaves after parsing, for linkify, then highlighting and math.

    Linkify is a parse option, so it is decided first: a document of at most
    ``linkify_chars`` characters is linkified if the budget pays for every character. What is
    left is spent by the renderer on code blocks (``W_HIGHLIGHT`` a character) and formulas
    (``W_MATH``) in document order; one that does not fit is left plain. Deterministic (a
    function of the text and the settings), so a result stays cacheable.
    """
    left = float(max(0, max_work - found.work))
    linkify = found.chars <= linkify_chars and found.chars * W_LINKIFY <= left
    if linkify:
        left -= found.chars * W_LINKIFY
    return Budgets(linkify=linkify, work_left=left)


def check_complexity(text: str, limits: ComplexityLimits) -> Complexity:
    """Raise :class:`MarkdownTooComplex` (422) when ``text`` is over any bound."""
    found = measure(text)
    if found.links > MAX_LINK_CANDIDATES or found.fences > MAX_FENCE_LINES:
        raise MarkdownTooComplex(
            f"Markdown has {found.links} link candidates and {found.fences} code fence "
            f"lines; the limits are {MAX_LINK_CANDIDATES} and {MAX_FENCE_LINES}",
            details={**asdict(found), "max_links": MAX_LINK_CANDIDATES},
        )
    if found.marks > limits.max_marks or found.lines > limits.max_lines:
        raise MarkdownTooComplex(
            f"Markdown has {found.marks} punctuation marks and {found.lines} lines outside "
            f"code blocks; the limits are {limits.max_marks} and {limits.max_lines}",
            details={
                **asdict(found),
                "max_marks": limits.max_marks,
                "max_lines": limits.max_lines,
            },
        )
    if found.work > limits.max_work:
        raise MarkdownTooComplex(
            f"Markdown would take about {found.work} work units to render (characters, "
            f"lines, marks, brackets, table cells, formulas weighted by cost); the limit is "
            f"{limits.max_work}",
            details={**asdict(found), "max_work": limits.max_work},
        )
    return found
