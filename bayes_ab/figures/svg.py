"""A matplotlib figure as SVG markup to place inline in the report: hover titles on its points, ids of its own.

Why inline, and not an ``<img>``: a browser shows an SVG element's ``<title>`` as a tooltip only when the SVG
is part of the page, so the values on hover need the markup in the document. Placing several figures in one
page then needs three things matplotlib's output does not give:

- **Ids of their own.** matplotlib numbers its groups ``line2d_1``, ``patch_1``... in every figure and names
  clip paths and markers by a hash of their content; every id of a figure gets the figure's prefix (a digest
  of its bytes), and every reference to it (``href``, ``xlink:href``, ``url(#...)``) follows.
- **No page-wide style.** The ``<style>`` matplotlib writes (``* {stroke-linejoin: round; ...}``) would apply
  to the whole page; it becomes the root's own style, which SVG children inherit.
- **Titles.** An artist given a gid by :func:`hover` gets its text: a list gives each marker (``<use>``) its own
  title, in drawing order; a single text goes on the whole artist (a bar, a curve, a band). When matplotlib drew
  fewer markers than texts (a point clipped off the canvas), the texts go on the group together, one a line.

Text comes from ElementTree, which escapes it; the SVG has no script; the whole is returned as
:class:`markupsafe.Markup` so that the report's template places it as markup while every other value stays
escaped.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence
from xml.etree import ElementTree

from markupsafe import Markup

SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"
ElementTree.register_namespace("", SVG)
ElementTree.register_namespace("xlink", XLINK)
HOVER_PREFIX = "hover-"
_REFERENCE = re.compile(r"url\(#([^)]+)\)")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def hover(artist, texts: str | Sequence[str], registry: dict[str, str | Sequence[str]]) -> None:
    """Give ``artist`` the hover ``texts`` (one per point, or one for all) when its figure is inlined."""
    gid = f"{HOVER_PREFIX}{len(registry)}"
    artist.set_gid(gid)
    registry[gid] = texts


def inline_svg(svg: bytes, titles: dict[str, str | Sequence[str]]) -> Markup:
    """matplotlib's SVG document ``svg`` as inline markup: unique ids, no page-wide style, hover titles for the
    artists named in ``titles`` (gid -> texts). The report wraps it in an element with ``role="img"`` and the
    figure's description."""
    # a name from data may hold control characters, which XML 1.0 cannot carry and matplotlib writes as they are:
    # each becomes U+FFFD (the reader sees that something was there) instead of a parse error
    root = ElementTree.fromstring(_NOT_XML.sub("\ufffd", svg.decode("utf-8")))
    prefix = "f" + hashlib.sha256(svg).hexdigest()[:10] + "-"
    parents = {child: parent for parent in root.iter() for child in parent}
    for element in list(root.iter()):
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("style", "metadata"):
            if tag == "style":
                root.set("style", " ".join(_declarations(element.text or "")))
            parents[element].remove(element)
    by_id = {}
    for element in root.iter():
        for name, value in list(element.attrib.items()):
            if name == "id":
                element.set(name, prefix + value)
                by_id[value] = element
            elif name in ("href", f"{{{XLINK}}}href") and value.startswith("#"):
                element.set(name, "#" + prefix + value[1:])
            elif "url(#" in value:
                element.set(name, _REFERENCE.sub(lambda m: f"url(#{prefix}{m.group(1)})", value))
    for gid, texts in titles.items():
        if gid in by_id:
            _title(by_id[gid], texts, parents)
    root.set("class", "figure")
    return Markup(ElementTree.tostring(root, encoding="unicode"))


def _declarations(css: str) -> list[str]:
    """The declarations of matplotlib's one ``* { ... }`` rule."""
    body = css[css.find("{") + 1:css.rfind("}")] if "{" in css else ""
    return [part.strip() + ";" for part in body.split(";") if part.strip()]


def _title(group: ElementTree.Element, texts: str | Sequence[str],
           parents: dict[ElementTree.Element, ElementTree.Element]) -> None:
    """Each drawn piece of ``group`` its own title, in order, or one title for the group (``parents``: the
    figure's child-to-parent map, read before any piece was wrapped; each piece is wrapped once)."""
    if isinstance(texts, str):
        _prepend_title(group, texts)
        return
    pieces = list(group.iter(f"{{{SVG}}}use"))      # a marker is drawn as a <use> of its shape, point by point
    if len(pieces) != len(texts):
        _prepend_title(group, "\n".join(texts))
        return
    for piece, text in zip(pieces, texts):
        parent = parents[piece]
        wrapper = ElementTree.Element(f"{{{SVG}}}g")
        _prepend_title(wrapper, text)
        index = list(parent).index(piece)
        parent.remove(piece)
        wrapper.append(piece)
        parent.insert(index, wrapper)


def _prepend_title(element: ElementTree.Element, text: str) -> None:
    title = ElementTree.Element(f"{{{SVG}}}title")
    title.text = _NOT_XML.sub("\ufffd", text)
    element.insert(0, title)


__all__ = ["hover", "inline_svg", "HOVER_PREFIX"]
