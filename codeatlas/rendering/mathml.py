"""``$…$`` / ``$$…$$`` math of :mod:`codeatlas.rendering.core`, converted server-side to
MathML by latex2mathml and paid from the render's work budget."""

import html
import re
from collections.abc import Callable, Sequence
from typing import Any
from xml.etree.ElementTree import Element, tostring

from latex2mathml.converter import convert_to_element
from markdown_it.renderer import RendererProtocol
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

# --------------------------------------------------------------------------- math

# latex2mathml expands \def/\newcommand macros with a depth cap but no size cap,
# so a chain of doubling macros is an exponential-output bomb: refuse them.
#: Longest single formula sent to latex2mathml.
MAX_MATH_CHARS = 4_000
_MACRO_DEFINITION_RE = re.compile(
    r"\\(?:[egx]?def|(?:re)?newcommand|providecommand|let|DeclareMathOperator)(?![A-Za-z])"
)


def _math_error(latex: str) -> str:
    return f'<span class="math-error">{html.escape(latex, quote=False)}</span>'


def _fix_text(element: Element) -> None:
    """Turn latex2mathml's pre-encoded text back into plain strings.

    latex2mathml stores entities such as ``&#x0002B;`` as literal text and then
    un-escapes its whole serialised output, which lets ``\\text{<b>}`` or a bare
    ``&`` through as markup.  Decoding per node and letting ElementTree escape on
    serialisation gives well-formed, correctly escaped MathML instead.
    """
    for node in element.iter():
        if node.text:
            node.text = html.unescape(node.text)
        if node.tail:
            node.tail = html.unescape(node.tail)
        for name, value in node.attrib.items():
            node.attrib[name] = html.unescape(value)


def _latex_to_mathml(latex: str, display_mode: bool) -> str:
    if len(latex) > MAX_MATH_CHARS or _MACRO_DEFINITION_RE.search(latex):
        return _math_error(latex)
    try:
        element = convert_to_element(latex, display="block" if display_mode else "inline")
    except Exception:  # noqa: BLE001 - any converter failure degrades to source text
        # latex2mathml raises a variety of exception types (its own, IndexError,
        # RecursionError, ...) on malformed input; none should fail the render.
        return _math_error(latex)
    _fix_text(element)
    return tostring(element, encoding="unicode", short_empty_elements=False)


def _make_math_renderer() -> Callable[[str, dict[str, Any]], str]:
    # dollarmath's renderer hook gets no env, so the per-document budget is applied
    # in a render rule wrapper (_wrap_math_rule) and this just converts.
    def render(content: str, meta: dict[str, Any]) -> str:
        return _latex_to_mathml(content, bool(meta.get("display_mode")))

    return render


# Rules stored on a renderer are already bound to it (add_render_rule binds them).
_BoundRule = Callable[[Sequence[Token], int, OptionsDict, EnvType], str]
_RenderRule = Callable[[RendererProtocol, Sequence[Token], int, OptionsDict, EnvType], str]
