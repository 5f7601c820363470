"""Number formats shared by the Markdown and HTML renderings (percentages, dollars, counts)."""

from __future__ import annotations

__all__ = ["bar", "compact", "num", "pct", "signed", "usd"]


def pct(x: float | None, digits: int = 1) -> str:
    """``0.8123`` -> ``81.2%``; ``–`` for None."""
    return "–" if x is None else f"{x * 100:.{digits}f}%"


def num(x: float | None) -> str:
    """A number with sensible precision (two decimals from 1 to 100); ``–`` for None."""
    if x is None:
        return "–"
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 1:
        return f"{int(x):,}"
    ax = abs(x)
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def compact(x: float | None) -> str:
    """A number in at most three significant digits below 100, whole above; ``–`` for None."""
    if x is None:
        return "–"
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.3g}" if abs(x) < 100 else f"{x:,.0f}"


def usd(x: float | None) -> str:
    """US dollars with cents, more digits below a cent; ``–`` for None."""
    if x is None:
        return "–"
    return f"${x:,.2f}" if abs(x) >= 0.1 else f"${x:.3g}"


def signed(x: float | None, fmt: str = "{:+.3f}") -> str:
    """A signed number; ``–`` for None."""
    return "–" if x is None else fmt.format(x)


def bar(fraction: float | None, width: int = 12) -> str:
    """A text bar for a fraction in [0, 1]."""
    if fraction is None:
        return ""
    full = max(0, min(width, round(fraction * width)))
    return "█" * full + "░" * (width - full)
