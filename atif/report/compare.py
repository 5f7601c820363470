"""Run-to-run comparison of two experiments, paired by task and epoch, with significance.

Trials pair by ``(task_name, epoch)``; when an experiment holds several trials of the
same task and epoch they pair in order of trial id. Per criterion the pass-rate change
is tested with McNemar's exact test on the discordant pairs; reward, cost and duration
changes get a seeded paired bootstrap interval. Unpaired trials are reported, not dropped.
"""

from __future__ import annotations

import math
from typing import Any

from atif.report.reading import clean, paired_verdicts_cte, pairs_cte, require_experiment
from atif.report.stats import bootstrap_mean_ci, mcnemar_exact
from atif.store import Store

__all__ = ["COMPARE_SCHEMA_VERSION", "compare", "criterion_table"]

COMPARE_SCHEMA_VERSION = "1"
"""Version of the JSON comparison layout (docs/reports.md)."""

_METRICS = ("reward", "cost_usd", "duration_seconds")


def criterion_table(store: Store, baseline: str, candidate: str) -> dict[str, dict[tuple[str, str], int]]:
    """Per criterion, counts of paired verdicts ``{(baseline verdict, candidate verdict): n}``.

    Verdicts are ``YES``, ``NO``, ``UNSCORED`` or ``MISSING`` (no rating for the trial).
    Criteria rated in either experiment are included; a pair rated on neither side counts
    as ``(MISSING, MISSING)``.
    """
    params = {"baseline": baseline, "candidate": candidate}
    rows = store.read(f"""
        WITH {pairs_cte()}, {paired_verdicts_cte()}
        SELECT criterion, vb, vc, count(*) AS n FROM verdicts GROUP BY ALL""", params)
    n_pairs = store.read(f"WITH {pairs_cte()} SELECT count(*) AS n FROM pairs", params)[0]["n"]
    labels = [r["criterion"] for r in store.read(
        "SELECT DISTINCT criterion FROM ratings WHERE experiment IN ($baseline, $candidate)", params)]
    out: dict[str, dict[tuple[str, str], int]] = {label: {} for label in labels}
    for r in rows:
        out[r["criterion"]][(r["vb"], r["vc"])] = int(r["n"])
    for table in out.values():
        neither = int(n_pairs) - sum(table.values())
        if neither:
            table[("MISSING", "MISSING")] = neither
    return out


def paired_metric(columns: dict[str, Any], name: str) -> tuple[Any, Any]:
    """Baseline and candidate values of metric ``name`` over the pairs where both sides have one."""
    import numpy as np

    b, c = columns[f"b_{name}"], columns[f"c_{name}"]
    keep = ~(np.ma.getmaskarray(b) | np.ma.getmaskarray(c))
    return np.ma.getdata(b)[keep].astype(np.float64), np.ma.getdata(c)[keep].astype(np.float64)


def compare(store: Store, baseline: str, candidate: str, *, alpha: float = 0.05, seed: int = 0,
            resamples: int = 2000, max_listed: int | None = None) -> dict[str, Any]:
    """Compare ``candidate`` against ``baseline`` on trials paired by task and epoch.

    Returns a JSON-ready dict (layout in docs/reports.md): per criterion the paired pass
    rates, their change and McNemar's exact p-value (pairs where either side is unscored
    or unrated are left out and counted); reward, cost and duration mean change with a
    ``1 - alpha`` paired bootstrap interval from ``seed``; the regressed, improved and
    mixed pairs; and the unpaired trials of each side.

    ``max_listed`` keeps the first that many pairs of each kind (in task order) in ``tasks``;
    ``task_counts`` always has the totals. The per-pair values are read as columns
    (:meth:`Store.read_columns`) and only the listed pairs become Python objects, so with
    ``max_listed`` memory stays bounded however many pairs there are.
    """
    require_experiment(store, baseline)
    require_experiment(store, candidate)
    params = {"baseline": baseline, "candidate": candidate}

    criteria: dict[str, Any] = {}
    for label, table in sorted(criterion_table(store, baseline, candidate).items()):
        yy = table.get(("YES", "YES"), 0)
        yn = table.get(("YES", "NO"), 0)
        ny = table.get(("NO", "YES"), 0)
        nn = table.get(("NO", "NO"), 0)
        n = yy + yn + ny + nn
        total = sum(table.values())
        unscored = sum(v for (vb, vc), v in table.items() if "UNSCORED" in (vb, vc))
        p = mcnemar_exact(yn, ny)
        criteria[label] = {
            "n_pairs": n,
            "baseline_pass_rate": (yy + yn) / n if n else None,
            "candidate_pass_rate": (yy + ny) / n if n else None,
            "delta": (ny - yn) / n if n else None,
            "both_yes": yy,
            "both_no": nn,
            "regressed": yn,
            "improved": ny,
            "p_value": p,
            "significant": bool(n and p < alpha),
            "excluded_unscored": unscored,
            "excluded_missing": total - n - unscored,
        }

    columns = store.read_columns(f"""
        WITH {pairs_cte()}
        SELECT {", ".join(f"b_{m}, c_{m}" for m in _METRICS)} FROM pairs""", params)
    n_pairs = len(columns["b_reward"])
    level = 1.0 - alpha
    metrics: dict[str, Any] = {}
    for name in _METRICS:
        b, c = paired_metric(columns, name)
        boot = bootstrap_mean_ci(c - b, resamples=resamples, level=level, seed=seed)
        metrics[name] = {
            "n_pairs": boot.n,
            "baseline_mean": math.fsum(b.tolist()) / len(b) if len(b) else None,
            "candidate_mean": math.fsum(c.tolist()) / len(c) if len(c) else None,
            "delta_mean": boot.mean,
            "ci_low": boot.ci_low,
            "ci_high": boot.ci_high,
            "significant": bool(boot.ci_low is not None and boot.ci_high is not None
                                and (boot.ci_low > 0 or boot.ci_high < 0)),
            "resamples": boot.resamples,
            "interval": boot.method,
        }
    del columns

    # Classified in SQL: only the pairs that changed come back, in task order.
    changed = store.read(f"""
        WITH {pairs_cte()}, {paired_verdicts_cte()},
        flips AS (
            SELECT b_id,
                   list(criterion ORDER BY criterion) FILTER (WHERE vb = 'YES' AND vc = 'NO') AS lost,
                   list(criterion ORDER BY criterion) FILTER (WHERE vb = 'NO' AND vc = 'YES') AS gained
            FROM verdicts WHERE vb IN ('YES', 'NO') AND vc IN ('YES', 'NO') AND vb <> vc
            GROUP BY b_id
        ), scored AS (
            SELECT p.task_name, p.epoch, p.b_id, p.c_id, p.b_reward, p.c_reward,
                   coalesce(f.lost, []) AS lost, coalesce(f.gained, []) AS gained,
                   len(coalesce(f.gained, [])) - len(coalesce(f.lost, [])) AS net,
                   coalesce(p.c_reward - p.b_reward, 0.0) AS dr
            FROM pairs p LEFT JOIN flips f USING (b_id)
        ), kinds AS (
            SELECT *, CASE WHEN net < 0 OR (net = 0 AND dr < -1e-12) THEN 'regressed'
                           WHEN net > 0 OR (net = 0 AND dr > 1e-12) THEN 'improved'
                           WHEN len(lost) > 0 OR len(gained) > 0 THEN 'mixed' END AS kind
            FROM scored
        )
        SELECT kind, task_name, epoch, b_id, c_id, lost, gained, b_reward, c_reward,
               count(*) OVER (PARTITION BY kind) AS n_kind
        FROM kinds WHERE kind IS NOT NULL
        QUALIFY $max_listed IS NULL OR row_number() OVER (PARTITION BY kind ORDER BY task_name, epoch, b_id) <= $max_listed
        ORDER BY task_name, epoch, b_id""", {**params, "max_listed": max_listed})
    tasks: dict[str, list[dict[str, Any]]] = {"regressed": [], "improved": [], "mixed": []}
    task_counts = dict.fromkeys(tasks, 0)
    for r in changed:
        task_counts[r["kind"]] = int(r["n_kind"])
        tasks[r["kind"]].append({
            "task_name": r["task_name"], "epoch": r["epoch"],
            "baseline_trial_id": r["b_id"], "candidate_trial_id": r["c_id"],
            "lost": r["lost"], "gained": r["gained"],
            "baseline_reward": r["b_reward"], "candidate_reward": r["c_reward"],
        })
    del changed

    unpaired = store.read(f"""
        WITH {pairs_cte()}
        SELECT 'baseline' AS side, task_name, epoch, trial_id FROM b WHERE trial_id NOT IN (SELECT b_id FROM pairs)
        UNION ALL
        SELECT 'candidate' AS side, task_name, epoch, trial_id FROM c WHERE trial_id NOT IN (SELECT c_id FROM pairs)
        ORDER BY side, task_name, epoch, trial_id""", params)

    result: dict[str, Any] = clean({
        "schema_version": COMPARE_SCHEMA_VERSION,
        "kind": "compare",
        "baseline": baseline,
        "candidate": candidate,
        "pairing": "task_name+epoch",
        "alpha": alpha,
        "seed": seed,
        "n_pairs": n_pairs,
        "criteria": criteria,
        "metrics": metrics,
    })
    # The per-pair lists can hold every pair; they are plain values already, so they skip clean().
    result["tasks"] = tasks
    result["task_counts"] = task_counts
    result["unpaired"] = {
        side: [{"epoch": u["epoch"], "task_name": u["task_name"], "trial_id": u["trial_id"]}
               for u in unpaired if u["side"] == side.split("_")[0]]
        for side in ("baseline_only", "candidate_only")
    }
    return result
