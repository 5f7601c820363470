"""Reads shared by the reports: experiment checks, criterion labels, trial pairing, JSON-ready values.

Everything goes through the store's public read API (``Store.read``, ``Store.read_one``) over
the documented views; nothing here knows how the store keeps its tables.
"""

from __future__ import annotations

import math
from typing import Any

from atif.errors import NotFoundError
from atif.store import Store

__all__ = ["clean", "criteria_of", "pairs_cte", "require_experiment"]


def require_experiment(store: Store, experiment: str) -> int:
    """The number of trials of ``experiment``; ``NotFoundError`` when it has none."""
    (n,) = store.read_one("SELECT count(*) FROM trials WHERE experiment = ?", [experiment])
    if not n:
        known = [r["experiment"] for r in store.read(
            "SELECT DISTINCT experiment FROM trials ORDER BY 1 LIMIT 20")]
        hint = f"; known: {', '.join(known)}" if known else "; the store holds no trials"
        raise NotFoundError(f"no trials for experiment {experiment!r}{hint}")
    return int(n)


def criteria_of(store: Store, experiment: str) -> list[str]:
    """Labels of the criteria rated in ``experiment``, sorted."""
    rows = store.read("SELECT DISTINCT criterion FROM ratings WHERE experiment = ? ORDER BY 1", [experiment])
    return [r["criterion"] for r in rows]


def pairs_cte() -> str:
    """SQL defining ``pairs`` (b_id, c_id, task_name, epoch) for parameters ``$baseline``, ``$candidate``.

    Trials pair by ``(task_name, epoch)``; several trials of one task and epoch pair in order
    of trial id. ``b`` and ``c`` hold each side's trials.
    """
    return """
        b AS (SELECT trial_id, task_name, epoch,
                     row_number() OVER (PARTITION BY task_name, epoch ORDER BY trial_id) AS k
              FROM trials WHERE experiment = $baseline),
        c AS (SELECT trial_id, task_name, epoch,
                     row_number() OVER (PARTITION BY task_name, epoch ORDER BY trial_id) AS k
              FROM trials WHERE experiment = $candidate),
        pairs AS (SELECT b.trial_id AS b_id, c.trial_id AS c_id, b.task_name, b.epoch
                  FROM b JOIN c USING (task_name, epoch, k))"""


def clean(value: Any) -> Any:
    """JSON-ready copy of ``value``: floats to 10 significant digits, NaN/inf to None, keys sorted.

    Rounding makes the JSON stable although DuckDB may sum floats in any order.
    """
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {str(k): clean(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "__float__"):  # Decimal from DuckDB
        return clean(float(value))
    return str(value)
