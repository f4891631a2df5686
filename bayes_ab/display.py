"""Jupyter display of result objects: one escaped HTML rendering for every frozen result dataclass.

Objects with a ``text()`` method show it; others show their fields as a two-column table. Values are
formatted for humans (4 significant digits) and long values are shortened. Everything is escaped.
"""

from __future__ import annotations

import html
from dataclasses import fields, is_dataclass
from typing import Any

LONGEST = 160


class HtmlRepr:
    """Mixin: ``_repr_html_`` for a result dataclass (see :func:`result_html`)."""

    def _repr_html_(self) -> str:
        return result_html(self)


def result_html(obj: Any) -> str:
    """Escaped HTML for a result object: its ``text()`` when it has one, else a table of its fields."""
    name = html.escape(type(obj).__name__)
    text = getattr(obj, "text", None)
    if callable(text):
        return f"<div><strong>{name}</strong><pre>{html.escape(text())}</pre></div>"
    if not is_dataclass(obj):
        return f"<pre>{html.escape(repr(obj))}</pre>"
    rows = "".join(f"<tr><th style='text-align:left'>{html.escape(f.name)}</th>"
                   f"<td style='text-align:left'>{html.escape(_short(getattr(obj, f.name)))}</td></tr>"
                   for f in fields(obj))
    return f"<table><caption style='text-align:left'><strong>{name}</strong></caption>{rows}</table>"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if is_dataclass(value):
        value = type(value).__name__ + "(...)"
    text = str(value)
    return text if len(text) <= LONGEST else text[:LONGEST - 1] + "…"
