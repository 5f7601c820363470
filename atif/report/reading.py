"""Reads shared by the reports: experiment checks, criterion labels, trial pairing, JSON-ready values.

Everything goes through the store's public read API (``Store.read``, ``Store.read_one``) over
the documented views; nothing here knows how the store keeps its tables.
"""

from __future__ import annotations

import math
from typing import Any

from atif.errors import NotFoundError
from atif.store import Store

__all__ = ["clean", "criteria_of", "paired_verdicts_cte", "pairs_cte", "require_experiment"]


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
    """SQL defining ``pairs`` for parameters ``$baseline``, ``$candidate``.

    Trials pair by ``(task_name, epoch)``; several trials of one task and epoch pair in order
    of trial id. ``b`` and ``c`` hold each side's trials. ``pairs`` has ``b_id``, ``c_id``,
    ``task_name``, ``epoch`` and each side's ``reward``, ``cost_usd`` and ``duration_seconds``
    (``b_reward``, ``c_reward``, ...), carried along so that no read joins ``trials`` again.
    """
    return """
        b AS (SELECT trial_id, task_name, epoch, reward, cost_usd, duration_seconds,
                     row_number() OVER (PARTITION BY task_name, epoch ORDER BY trial_id) AS k
              FROM trials WHERE experiment = $baseline),
        c AS (SELECT trial_id, task_name, epoch, reward, cost_usd, duration_seconds,
                     row_number() OVER (PARTITION BY task_name, epoch ORDER BY trial_id) AS k
              FROM trials WHERE experiment = $candidate),
        pairs AS MATERIALIZED (SELECT b.trial_id AS b_id, c.trial_id AS c_id, b.task_name, b.epoch,
                         b.reward AS b_reward, c.reward AS c_reward, b.cost_usd AS b_cost_usd,
                         c.cost_usd AS c_cost_usd, b.duration_seconds AS b_duration_seconds,
                         c.duration_seconds AS c_duration_seconds
                  FROM b JOIN c USING (task_name, epoch, k))"""


def paired_verdicts_cte() -> str:
    """SQL defining ``verdicts`` (after :func:`pairs_cte`): one row per pair and criterion rated on either side.

    Columns ``b_id`` (the pair's key), ``criterion``, ``vb`` and ``vc``: each side's verdict, or
    ``MISSING`` when that side has no rating of the criterion. The two experiments' ratings are
    read in one pass and grouped by pair, so no pair is crossed with every criterion.
    """
    return """
        sides AS (SELECT b_id AS trial_id, b_id, true AS is_b FROM pairs
                  UNION ALL SELECT c_id, b_id, false FROM pairs),
        verdicts AS MATERIALIZED (
            SELECT s.b_id, r.criterion,
                   coalesce(any_value(r.verdict) FILTER (WHERE s.is_b), 'MISSING') AS vb,
                   coalesce(any_value(r.verdict) FILTER (WHERE NOT s.is_b), 'MISSING') AS vc
            FROM sides s
            JOIN (SELECT trial_id, criterion, verdict FROM ratings WHERE experiment IN ($baseline, $candidate)) r
              USING (trial_id)
            GROUP BY s.b_id, r.criterion)"""


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
