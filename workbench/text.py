"""Strings from files, made inert for Markdown.

Streamlit renders Markdown in ``st.markdown``/``caption``/``info``/``warning``/``error``/``success``/
``subheader``/``write`` and in widget labels (buttons, radio options, tabs, expanders, metrics). A model's
producer, doc string, input, node or layer name, an archive entry or an error message quoting one of them is
written by whoever made the file: ``![x](http://host/beacon.png)`` there would make every browser that opens
the page fetch that address, ``[click](...)`` draw a live link, ``:red[...]`` or ``$...$`` restyle the page.
Every such string goes through :func:`md` before it reaches Markdown; it then shows exactly as written.
"""

from __future__ import annotations

import html
import re
from typing import Any

# What can make Markdown more than text: links and images ([ ] < >, autolinked http:// and www. addresses,
# e-mail addresses), Streamlit's directives (":red[...]", ":material/...:" need the brackets) and $math$, raw
# HTML and entities (< &), emphasis and code (* _ ~ `), tables (|), and the backslash itself. "(", ")", "!",
# "." and "-" mean nothing without them and stay as they are, so "model.onnx (v2)" reads the same in the code.
_SPECIAL = re.compile(r"([\\`*\[\]<>|~$&@])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # "a_b" is no emphasis
_AUTOLINK = re.compile(r"(?<=[A-Za-z0-9])(:)(?=//)|(?i:(?<=\bwww)(\.))")
# Where the text starts a line: a heading, quote, list item or rule ("97.66%" or "-0.5 pp" are none of these).
_LEADING = re.compile(r"^(\s*)(?:(#{1,6}|[-+])(?=\s|$)|(-)(?=(?:\s*-){2,}\s*$)|(\d{1,9})([.)])(?=\s|$))")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def _leading(m: re.Match[str]) -> str:
    if m.group(4):
        return f"{m.group(1)}{m.group(4)}\\{m.group(5)}"
    return f"{m.group(1)}\\{m.group(2) or m.group(3)}"


def md(text: object) -> str:
    """``text`` as Markdown that renders as exactly that text: every character that could make it a link, an
    image, HTML or formatting backslash-escaped, line breaks made spaces (a line of its own could start a
    heading, list or table)."""
    out = _SPECIAL.sub(lambda m: "\\" + m.group(0), _LINE_BREAKS.sub(" ", str(text)))
    out = _AUTOLINK.sub(lambda m: "\\" + m.group(0), out)
    return _LEADING.sub(_leading, out, count=1)


def md_lines(text: object) -> str:
    """Like :func:`md`, keeping line breaks as Markdown line breaks (for a multi-line message or doc string)."""
    return "  \n".join(md(line) for line in _LINE_BREAKS.split(str(text)))


# Plotly draws text (tick labels, hover text, legend names, titles) with a few HTML-like tags of its own; of those,
# <a href> draws a live link and <span style> restyles. A figure's strings from a file are made plain text by
# writing their "<" as "&lt;", which Plotly shows as "<" without reading a tag. Our own templates keep theirs.
_PLOTLY_TAG = re.compile(r"<(?=\s*/?\s*(?:a|span)\b)", re.IGNORECASE)
_PLOTLY_TEMPLATES = frozenset({"hovertemplate", "texttemplate"})


def inert_plotly(obj: object, key: str = "") -> object:
    """A Plotly figure's dict (``fig.to_dict()``) whose strings can draw no link: every ``<a``/``<span`` tag
    written as text."""
    if isinstance(obj, str):
        return obj if key in _PLOTLY_TEMPLATES else _PLOTLY_TAG.sub("&lt;", obj)
    if isinstance(obj, dict):
        return {k: inert_plotly(v, k) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [inert_plotly(v, key) for v in obj]
    kind = getattr(getattr(obj, "dtype", None), "kind", "")
    if kind in ("O", "U", "S") and hasattr(obj, "tolist"):  # numpy arrays of strings
        return inert_plotly(obj.tolist(), key)
    return obj


def inert_figure(fig: Any) -> Any:
    """A copy of a Plotly figure whose strings can draw no link (:func:`inert_plotly`), for a page or a report."""
    import plotly.graph_objects as go

    return go.Figure(inert_plotly(fig.to_dict()))


def html_text(text: object) -> str:
    """``text`` as HTML text or a quoted attribute value that shows exactly that text: ``& < > " '`` escaped (the
    downloadable reports; JSON inside their ``<script>`` is Plotly's, which escapes ``<`` and ``/`` itself)."""
    return html.escape(str(text), quote=True)


def code(text: object) -> str:
    """``text`` as an inline Markdown code span that shows exactly that text, whatever backticks it holds: the fence
    is longer than any run of backticks inside (line breaks made spaces)."""
    s = _LINE_BREAKS.sub(" ", str(text))
    fence = "`" * (1 + max((len(r) for r in re.findall(r"`+", s)), default=0))
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"
