"""The final nh3 (ammonia) pass of :mod:`codeatlas.rendering.core`: an explicit allowlist
of tags, attributes and URL schemes (defence in depth; raw HTML is off in the parser)."""

import nh3

# --------------------------------------------------------------------------- sanitiser

_MATHML_TAGS = frozenset(
    {
        "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub",
        "msubsup", "mfrac", "msqrt", "mroot", "mover", "munder", "munderover",
        "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose",
        "merror", "mfenced", "semantics", "annotation",
    }
)  # fmt: skip
# Presentation attributes latex2mathml emits.  Deliberately absent: href (MathML
# links, e.g. from \href), style/mathcolor/mathbackground (\style, \color), id.
_MATHML_ATTRIBUTES = frozenset(
    {
        "xmlns", "display", "mathvariant", "stretchy", "fence", "form", "accent",
        "accentunder", "separator", "separators", "largeop", "movablelimits",
        "symmetric", "minsize", "maxsize", "lspace", "rspace", "width", "height",
        "depth", "voffset", "linethickness", "columnalign", "columnlines",
        "rowlines", "rowalign", "columnspacing", "rowspacing", "displaystyle",
        "scriptlevel", "notation", "open", "close", "bevelled",
    }
)  # fmt: skip
_HTML_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul",
        "ol", "li", "pre", "code", "span", "div", "em", "strong", "del", "s", "a",
        "img", "table", "thead", "tbody", "tr", "th", "td", "input",
    }
)  # fmt: skip
ALLOWED_TAGS: frozenset[str] = _HTML_TAGS | _MATHML_TAGS
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "span": {"class"},
    "pre": {"class"},
    "div": {"class"},
    "ol": {"start"},
    # Task lists: the plugin marks up ul/li/input with classes.
    "ul": {"class"},
    "li": {"class"},
    "input": {"class"},
    # Column alignment, rewritten from markdown-it's style= (see _table_align_rule).
    "th": {"class"},
    "td": {"class"},
    **{tag: set(_MATHML_ATTRIBUTES) for tag in _MATHML_TAGS},
}
# Only a disabled checkbox may survive as an <input>: type/checked/disabled are
# value-restricted (type=text/hidden etc. are dropped) and then type=checkbox and
# disabled are forced, so not even a bare <input> text box can get through.
_INPUT_ATTRIBUTE_VALUES: dict[str, dict[str, set[str]]] = {
    "input": {
        "type": {"checkbox"},
        "checked": {"checked", ""},
        "disabled": {"disabled", ""},
    }
}
_FORCED_ATTRIBUTE_VALUES: dict[str, dict[str, str]] = {
    "input": {"type": "checkbox", "disabled": "disabled"},
}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Dropped together with their content (nh3 keeps the text of other removed tags).
_CLEAN_CONTENT_TAGS = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "xmp",
     "noembed", "noframes", "textarea", "select", "title", "svg"}
)  # fmt: skip


def sanitize_html(fragment: str) -> str:
    """Clean an HTML fragment with the renderer's allowlist (tags, attributes, URLs)."""
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(_CLEAN_CONTENT_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        tag_attribute_values=_INPUT_ATTRIBUTE_VALUES,
        set_tag_attribute_values=_FORCED_ATTRIBUTE_VALUES,
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )
