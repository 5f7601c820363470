"""Page rendering: one Jinja environment over the app's templates and the HTML report's macros.

Autoescaping is on for every value and nothing from the store is ever marked safe. The
report's ``charts.html`` (the pass-rate chart with Wilson intervals, histograms) is reused as
it is; the number formats are the report's own.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2

from atif.report import compact, pct, usd

__all__ = ["asset", "render", "url"]

_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def url(path: str, **params: Any) -> str:
    """``path`` with the non-empty ``params`` as its query string (page 0 and part 0 are the default)."""
    kept = {k: v for k, v in params.items() if v not in (None, "", False)}
    return path + ("?" + urlencode(kept) if kept else "")


def _secs(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x / 60:.1f} min" if x >= 120 else f"{x:.1f} s"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([
            jinja2.PackageLoader("atif.serve", "templates"),
            jinja2.PackageLoader("atif.report", "assets"),
        ]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["url"] = url
    env.filters.update(pct=pct, usd=usd, compact=compact, secs=_secs, thousands=lambda n: f"{n:,}",
                       f1=lambda x: f"{x:.1f}")
    return env


def render(template: str, **context: Any) -> str:
    """The page ``template`` rendered with ``context`` (every value escaped)."""
    return _environment().get_template(template).render(**context)


@cache
def asset(name: str) -> tuple[bytes, str] | None:
    """A static file (``serve.css``, ``serve.js``, or the report's ``report.css``) and its media type."""
    suffix = name[name.rfind("."):] if "." in name else ""
    if suffix not in _STATIC_TYPES or "/" in name:
        return None
    folder = resources.files("atif.report").joinpath("assets") if name == "report.css" \
        else resources.files("atif.serve").joinpath("static")
    try:
        return folder.joinpath(name).read_bytes(), _STATIC_TYPES[suffix]
    except (FileNotFoundError, IsADirectoryError):
        return None
