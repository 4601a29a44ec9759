"""Markdown → safe HTML rendering core (pure, no I/O).

This module owns turning user/assistant Markdown into HTML that can be inserted
into a page without further escaping:

* CommonMark (markdown-it-py) plus tables, strikethrough, GitHub task lists and,
  when the optional ``linkify-it-py`` package is importable, bare-URL linkify;
* fenced code highlighted server-side by Pygments into CSS classes
  (:func:`stylesheet` returns the matching CSS);
* ``$…$`` / ``$$…$$`` math converted server-side to MathML by latex2mathml;
* ``mermaid`` fences passed through as escaped text for client-side rendering
  (the client must run mermaid with ``securityLevel: "strict"``);
* a final nh3 (ammonia) sanitising pass with an explicit allowlist;
* bounded work (input size cap, nesting cap, per-block/per-document budgets);
* cache keys and the render cache live in :mod:`codeatlas.rendering.cache`, the nh3 pass in
  :mod:`codeatlas.rendering.sanitize`, LaTeX → MathML in :mod:`codeatlas.rendering.mathml`.

Security model: raw HTML is disabled in the Markdown parser, so every tag in the
intermediate HTML comes from this module or from latex2mathml.  The nh3 pass is
defence in depth against bugs in either of those, not the primary barrier.
"""

from __future__ import annotations

import gc
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML, RendererProtocol
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pydantic import BaseModel, ConfigDict
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from codeatlas.rendering.complexity import W_HIGHLIGHT, W_MATH, budgets, measure
from codeatlas.rendering.mathml import _BoundRule, _make_math_renderer, _math_error, _RenderRule
from codeatlas.rendering.sanitize import ALLOWED_URL_SCHEMES, sanitize_html

__all__ = [
    "MAX_INPUT_BYTES",
    "RENDERER_VERSION",
    "RenderLimits",
    "RenderOptions",
    "RenderResult",
    "RenderTooLarge",
    "link_is_safe",
    "linkify_available",
    "render_markdown",
    "sanitize_html",
    "stylesheet",
]

# --------------------------------------------------------------------------- limits

#: Hard cap on input size (UTF-8 bytes).  The API maps RenderTooLarge to 413.
MAX_INPUT_BYTES = 200_000
#: markdown-it nesting cap.  Deeper structure is not parsed further; it bounds the
#: work done on inputs such as 10k nested ``>`` and keeps the DOM shallow.
MAX_NESTING = 20
#: Characters of fenced code highlighted per document (RENDER_MAX_HIGHLIGHT_CHARS); a block
#: that does not fit in what is left is emitted as plain escaped text. Pygments' regex lexers
#: are the slowest step: 1-10 µs per character (ruby, c), so 150 000 took ~1.8 s (issue 11).
MAX_HIGHLIGHT_TOTAL_CHARS = 10_000
#: Documents longer than this (characters) are rendered without bare-URL linkify
#: (RENDER_LINKIFY_MAX_CHARS): linkify-it's unicode regexes cost ~1.5 µs per character.
MAX_LINKIFY_CHARS = 10_000
#: Formulas converted per document; the rest are emitted as escaped source.
MAX_MATH_EXPRESSIONS = 500
#: Characters of formulas converted per document (RENDER_MAX_MATH_CHARS); the rest are
#: emitted as escaped source. latex2mathml costs ~2-5 µs per character.
MAX_MATH_TOTAL_CHARS = 10_000
#: Estimated work (≈ µs of CPU) per document (RENDER_MAX_WORK, see complexity.py).
MAX_WORK = 100_000
#: Distinct fence languages listed in RenderResult.code_languages.
MAX_REPORTED_LANGUAGES = 50

# Bump when the produced HTML changes for the same input; it is part of the cache
# key together with the versions of the libraries that shape the output.
_RENDER_FORMAT = "2"


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


RENDERER_VERSION = "codeatlas-render/{};{}".format(
    _RENDER_FORMAT,
    ",".join(
        f"{dist}={_dist_version(dist)}"
        for dist in (
            "markdown-it-py",
            "mdit-py-plugins",
            "linkify-it-py",
            "Pygments",
            "latex2mathml",
            "nh3",
        )
    ),
)

try:  # optional: linkify-it-py powers bare-URL autolinking in markdown-it.
    import linkify_it  # noqa: F401

    _LINKIFY_AVAILABLE = True
except ImportError:  # degrade: CommonMark <https://…> autolinks still work.
    _LINKIFY_AVAILABLE = False


def linkify_available() -> bool:
    """Whether bare URLs can be autolinked (``linkify-it-py`` is installed)."""
    return _LINKIFY_AVAILABLE


# --------------------------------------------------------------------------- public types


class RenderTooLarge(Exception):
    """The input exceeds the renderer's size limit (maps to HTTP 413)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"markdown input is {size} bytes; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


class RenderOptions(BaseModel):
    """Feature switches for one render.  Frozen and hashable (used as a cache key)."""

    # strict: `"linkify": 0` is a type error, not False (issue 11, fuzzing)
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    highlight: bool = True
    math: bool = True
    mermaid: bool = True
    linkify: bool = True


class RenderResult(BaseModel):
    """Sanitised HTML plus what the client needs to know about it."""

    model_config = ConfigDict(frozen=True)

    html: str
    #: Normalised languages of fenced code blocks, first-seen order, no duplicates,
    #: at most MAX_REPORTED_LANGUAGES (mermaid blocks rendered as diagrams are
    #: reported via ``has_mermaid`` only).
    code_languages: list[str]
    has_math: bool
    has_mermaid: bool


_DEFAULT_OPTIONS = RenderOptions()


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Per-document bounds on the expensive steps (settings RENDER_MAX_INPUT_BYTES,
    RENDER_MAX_HIGHLIGHT_CHARS, RENDER_LINKIFY_MAX_CHARS, RENDER_MAX_MATH_CHARS).

    Over a bound the step degrades (plain code, no bare-URL links, formula as source)
    instead of failing. Each optional step also gets at most what ``max_work`` leaves after
    parsing (:func:`codeatlas.rendering.complexity.budgets`), so pre-scan plus these bounds
    keep every accepted input under the time target (issue 11).
    """

    max_bytes: int = MAX_INPUT_BYTES
    highlight_chars: int = MAX_HIGHLIGHT_TOTAL_CHARS
    linkify_chars: int = MAX_LINKIFY_CHARS
    math_chars: int = MAX_MATH_TOTAL_CHARS
    #: RENDER_MAX_WORK: the optional steps are paid from what parsing leaves of it
    max_work: int = MAX_WORK


_DEFAULT_LIMITS = RenderLimits()

# --------------------------------------------------------------------------- code fences

_LANG_RE = re.compile(r"[a-z0-9][a-z0-9_+#.-]{0,31}")
_FORMATTER = HtmlFormatter(nowrap=True)


def _normalise_lang(info: str) -> str:
    """First word of a fence info string, or "" if it is not a plausible language.

    It ends up in a class attribute, so only a conservative charset is accepted.
    """
    word = html.unescape(info).strip().split(maxsplit=1)[0].lower() if info.strip() else ""
    # "{python}" and "language-python" are common spellings of the same thing.
    word = word.strip("{}.")
    word = word.removeprefix("language-")
    return word if _LANG_RE.fullmatch(word) else ""


#: Languages that are highlighted; other fences stay plain (with their language-* class).
#: Loading a Pygments lexer costs 2-150 ms the first time in a process (scala: 150 ms), so
#: a document naming many rare languages would blow the time budget (issue 11): these are
#: loaded once in the background when a renderer starts (:func:`warm_up`).
HIGHLIGHT_LANGUAGES = frozenset(
    {
        "python", "py", "python3", "py3", "pycon", "javascript", "js", "jsx", "typescript",
        "ts", "tsx", "json", "yaml", "toml", "ini", "xml", "html", "css",
        "scss", "bash", "sh", "shell", "zsh", "console", "shell-session", "powershell",
        "ps1", "sql", "postgresql", "c", "cpp", "c++", "csharp", "c#", "cs",
        "java", "kotlin", "go", "golang", "rust", "rs", "ruby", "rb", "php", "swift",
        "scala", "haskell", "hs", "lua", "perl", "r", "dart", "elixir", "erlang", "clojure",
        "docker", "dockerfile", "make", "makefile", "cmake", "nginx", "diff",
        "markdown", "md", "rst", "latex", "tex", "graphql", "protobuf", "proto", "terraform",
        "hcl", "text", "objective-c", "objc", "julia", "matlab", "fortran", "zig", "nim",
        "ocaml", "fsharp", "vb.net", "groovy", "jinja", "django", "http",
    }
)  # fmt: skip


@lru_cache(maxsize=256)
def _lexer_for(lang: str) -> Lexer | None:
    if lang not in HIGHLIGHT_LANGUAGES:
        return None
    try:
        # stripnl=False: keep leading blank lines exactly as the author wrote them.
        return get_lexer_by_name(lang, stripnl=False)
    except ClassNotFound:
        return None


@lru_cache(maxsize=1)
def warm_up() -> None:
    """Load every lexer of HIGHLIGHT_LANGUAGES (once per process; later calls are free).

    Then move what the process holds so far out of the cyclic garbage collector's sight
    (``gc.freeze``): the lexers' state tables are tens of thousands of long-lived objects that
    every full collection would traverse, a 60-70 ms stall of whichever render triggered it
    (measured with benchmarks/render_pathological.py, issue 11). Reference counting still frees
    frozen objects; only cycles among them are never collected.
    """
    for lang in sorted(HIGHLIGHT_LANGUAGES):
        _lexer_for(lang)
    gc.collect()
    gc.freeze()


@dataclass
class _RenderState:
    """Per-render mutable state, passed through markdown-it's ``env``."""

    options: RenderOptions
    highlight_budget: int = MAX_HIGHLIGHT_TOTAL_CHARS
    math_budget: int = MAX_MATH_EXPRESSIONS
    math_chars_budget: int = MAX_MATH_TOTAL_CHARS
    #: what RENDER_MAX_WORK leaves after parsing, spent on highlighting and math in order
    work_left: float = float(MAX_WORK)
    # dict as an insertion-ordered set: O(1) membership on documents with
    # thousands of fences.
    code_languages: dict[str, None] = field(default_factory=dict)
    has_math: bool = False
    has_mermaid: bool = False


_ENV_KEY = "codeatlas_render_state"


def _state(env: EnvType) -> _RenderState:
    state = env[_ENV_KEY]
    assert isinstance(state, _RenderState)
    return state


def _render_fence(
    self: RendererProtocol,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    token = tokens[idx]
    state = _state(env)
    lang = _normalise_lang(token.info)
    source = token.content

    if lang == "mermaid" and state.options.mermaid:
        state.has_mermaid = True
        return f'<pre class="mermaid">{html.escape(source, quote=False)}</pre>\n'

    if lang and len(state.code_languages) < MAX_REPORTED_LANGUAGES:
        state.code_languages.setdefault(lang, None)
    code_class = f' class="language-{lang}"' if lang else ""

    lexer = _lexer_for(lang) if lang and state.options.highlight else None
    cost = len(source) * W_HIGHLIGHT
    if lexer is not None and len(source) <= state.highlight_budget and cost <= state.work_left:
        state.highlight_budget -= len(source)
        state.work_left -= cost
        body = pygments_highlight(source, lexer, _FORMATTER)
        return f'<pre class="highlight"><code{code_class}>{body}</code></pre>\n'
    return f"<pre><code{code_class}>{html.escape(source, quote=False)}</code></pre>\n"


def stylesheet(style: str = "default") -> str:
    """CSS for the Pygments token classes used inside ``pre.highlight``.

    Raises ``ValueError`` for an unknown Pygments style name.
    """
    try:
        formatter = HtmlFormatter(style=style)
    except ClassNotFound as exc:
        raise ValueError(f"unknown Pygments style: {style!r}") from exc
    css = str(formatter.get_style_defs(".highlight"))
    # Keep only rules scoped to .highlight: Pygments also emits a global
    # ``pre { … }`` rule and line-number rules that we never generate markup for.
    return "\n".join(line for line in css.splitlines() if line.startswith(".highlight")) + "\n"


# --------------------------------------------------------------------------- math


def _wrap_math_rule(rule: _BoundRule) -> _RenderRule:
    def wrapped(
        self: RendererProtocol,
        tokens: Sequence[Token],
        idx: int,
        options: OptionsDict,
        env: EnvType,
    ) -> str:
        state = _state(env)
        state.has_math = True
        token = tokens[idx]
        cost = len(token.content) * W_MATH
        if (
            state.math_budget <= 0
            or len(token.content) > state.math_chars_budget
            or cost > state.work_left
        ):
            tag = "span" if token.type == "math_inline" else "div"
            return f'<{tag} class="math">{_math_error(token.content.strip())}</{tag}>'
        state.math_budget -= 1
        state.math_chars_budget -= len(token.content)
        state.work_left -= cost
        return rule(tokens, idx, options, env)

    return wrapped


# --------------------------------------------------------------------------- tables

_ALIGN_RE = re.compile(r"text-align:\s*(left|right|center)")


def _table_align_rule(state: StateCore) -> None:
    """Replace markdown-it's ``style="text-align:…"`` on th/td with a class.

    ``style`` attributes are not allowed through the sanitiser; a class keeps the
    alignment information for the page stylesheet.
    """
    for token in state.tokens:
        if token.type not in ("th_open", "td_open"):
            continue
        style = token.attrGet("style")
        if style is None:
            continue
        token.attrs.pop("style", None)
        match = _ALIGN_RE.search(str(style))
        if match:
            token.attrJoin("class", f"align-{match.group(1)}")


# --------------------------------------------------------------------------- task lists

# GFM: "[ ]", "[x]" or "[X]" followed by whitespace at the start of a list item.
_TASK_RE = re.compile(r"\[([ xX])\][ \t\n\v\f\r]+")


def _tasklists_rule(state: StateCore) -> None:
    """GitHub task lists, same markup as ``mdit_py_plugins.tasklists``.

    Reimplemented because the plugin looks up each item's parent list by scanning
    backwards, which is quadratic: 20k ``- [ ] x`` lines took ~35 s.  Here one
    pass keeps a stack of open lists.
    """
    tokens = state.tokens
    open_lists: list[Token] = []
    for i, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            open_lists.append(token)
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            if open_lists:
                open_lists.pop()
        elif (
            token.type == "inline"
            and i >= 2
            and tokens[i - 1].type == "paragraph_open"
            and tokens[i - 2].type == "list_item_open"
            and token.children
            and token.children[0].type == "text"
        ):
            match = _TASK_RE.match(token.content)
            first = token.children[0]
            # The text child must start with the marker too (not, say, a link
            # whose label happens to be "x").
            if match is None or not first.content.startswith(match.group(0)[:3]):
                continue
            checked = ' checked="checked"' if match.group(1) != " " else ""
            checkbox = Token("html_inline", "", 0)
            checkbox.content = (
                f'<input class="task-list-item-checkbox"{checked} disabled="disabled" '
                'type="checkbox">'
            )
            first.content = first.content[3:]
            token.content = token.content[3:]
            token.children.insert(0, checkbox)
            tokens[i - 2].attrSet("class", "task-list-item")
            if open_lists:
                open_lists[-1].attrSet("class", "contains-task-list")


# --------------------------------------------------------------------------- links

_URL_SCHEME_RE = re.compile(r"([a-z][a-z0-9+.\-]*):")
# Browsers ignore tab/newline anywhere in a URL and trim C0 controls and spaces.
_URL_NOISE_RE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")


def link_is_safe(url: str) -> bool:
    """Whether a link/image URL is http(s), mailto or scheme-less (relative).

    Stricter than markdown-it's default (which allows ``data:image/*`` and every
    scheme it does not know): entity and percent encodings are undone first, so
    ``&#106;avascript:`` or ``javascript%3A`` cannot reach anything that might
    decode the URL once more (a client-side re-render, a copy-paste).
    """
    decoded = url
    for _ in range(4):
        step = unquote(html.unescape(decoded))
        if step == decoded:
            break
        decoded = step
    else:  # still changing after several rounds: deliberately obfuscated
        return False
    match = _URL_SCHEME_RE.match(_URL_NOISE_RE.sub("", decoded).lower())
    return match is None or match.group(1) in ALLOWED_URL_SCHEMES


class _MarkdownIt(MarkdownIt):
    def validateLink(self, url: str) -> bool:  # markdown-it's hook (camelCase upstream)
        return link_is_safe(url)


# --------------------------------------------------------------------------- parser


@lru_cache(maxsize=16)
def _markdown_it(options: RenderOptions) -> MarkdownIt:
    """One configured parser per option combination (instances are reusable)."""
    linkify = options.linkify and _LINKIFY_AVAILABLE
    md = _MarkdownIt(
        "commonmark",
        {
            # Raw HTML is rendered as text; see the module docstring.
            "html": False,
            "linkify": linkify,
            "typographer": False,
            "maxNesting": MAX_NESTING,
        },
    )
    md.enable(["table", "strikethrough"])
    if linkify:
        md.enable("linkify")
    # After text_join so a list item's leading text is one token.
    md.core.ruler.push("codeatlas_tasklists", _tasklists_rule)
    if options.math:
        md.use(
            dollarmath_plugin,
            # No labels: they emit id= attributes (DOM clobbering) and anchors.
            allow_labels=False,
            # "$5 and $10" and "$ 5 $" are prices, not maths.
            allow_space=False,
            allow_digits=False,
            double_inline=True,
            renderer=_make_math_renderer(),
        )
        renderer = md.renderer
        assert isinstance(renderer, RendererHTML)
        for name in ("math_inline", "math_inline_double", "math_block"):
            md.add_render_rule(name, _wrap_math_rule(renderer.rules[name]))
    md.core.ruler.push("codeatlas_table_align", _table_align_rule)
    md.add_render_rule("fence", _render_fence)
    return md


def render_markdown(
    text: str,
    options: RenderOptions | None = None,
    *,
    max_bytes: int | None = None,
    limits: RenderLimits = _DEFAULT_LIMITS,
) -> RenderResult:
    """Render Markdown to sanitised HTML, within ``limits``.

    Raises :class:`RenderTooLarge` when ``text`` is over ``max_bytes`` (default
    ``limits.max_bytes``) UTF-8 bytes.
    """
    if max_bytes is None:
        max_bytes = limits.max_bytes
    # A str never has more characters than UTF-8 bytes, so an over-long string is
    # rejected before paying for the encode.
    if len(text) > max_bytes:
        raise RenderTooLarge(len(text.encode("utf-8", "surrogatepass")), max_bytes)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise RenderTooLarge(size, max_bytes)

    opts = options or _DEFAULT_OPTIONS
    # The optional steps get what the work budget leaves after parsing; the result is a
    # function of (text, options, limits) alone, so it stays cacheable.
    budget = budgets(measure(text), max_work=limits.max_work, linkify_chars=limits.linkify_chars)
    parse_opts = opts
    if opts.linkify and not budget.linkify:
        parse_opts = opts.model_copy(update={"linkify": False})
    md = _markdown_it(parse_opts)
    state = _RenderState(
        options=opts,
        highlight_budget=limits.highlight_chars,
        math_chars_budget=limits.math_chars,
        work_left=budget.work_left,
    )
    raw = md.render(text, {_ENV_KEY: state})
    return RenderResult(
        html=sanitize_html(raw),
        code_languages=list(state.code_languages),
        has_math=state.has_math,
        has_mermaid=state.has_mermaid,
    )
