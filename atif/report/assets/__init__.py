"""The HTML report's package data: ``report.css``, ``report.js`` and the Jinja page templates.

Files are read with ``importlib.resources`` (so they work from a wheel or a zip) and rendered
by one Jinja environment with autoescaping on every value. Escaping is ``html.escape`` with
quotes, the same for every page. Only our own CSS, script and pre-encoded data blocks are
marked safe (:func:`trusted`).
"""

from __future__ import annotations

import base64
import hashlib
import html
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

if TYPE_CHECKING:
    import jinja2

from atif.report.formatting import compact, pct, usd

__all__ = ["CSS", "JS", "render_page", "trusted"]


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


CSS = _read("report.css")
"""The page stylesheet, inlined into every page."""

JS = _read("report.js")
"""The page script, inlined into every page and allowed by the CSP through its hash."""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
_CSP = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'")


def trusted(text: str) -> Markup:
    """``text`` marked as markup of our own, inserted without escaping."""
    return Markup(text)


def _escape(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def _load(name: str) -> str | None:
    try:
        return _read(name)
    except FileNotFoundError:
        return None


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # here: a markdown or JSON report never renders a page

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        autoescape=True,
        finalize=_escape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(pct=pct, usd=usd, compact=compact, thousands=lambda n: f"{n:,}", f1=lambda x: f"{x:.1f}")
    return env


def render_page(template: str, *, title: str, subtitle: str, data_json: str, blobs: list[str],
                **context: Any) -> str:
    """Render the page ``template`` with the shared head (CSP, CSS), data blocks and script.

    ``data_json`` must already be safe inside a ``<script>`` element (no ``<``, ``>``, ``&``);
    ``blobs`` are base64 text.
    """
    return _environment().get_template(template).render(
        title=title, subtitle=subtitle, csp=trusted(_CSP), css=trusted(CSS), js=trusted(JS),
        data_json=trusted(data_json), blobs=blobs, **context,
    )
