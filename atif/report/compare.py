"""Run-to-run comparison of two experiments, paired by task and epoch, with significance.

Trials pair by ``(task_name, epoch)``; when an experiment holds several trials of the
same task and epoch they pair in order of trial id. Per criterion the pass-rate change
is tested with McNemar's exact test on the discordant pairs; reward, cost and duration
changes get a seeded paired bootstrap interval. Unpaired trials are reported, not dropped.
"""

from __future__ import annotations

from typing import Any

from atif.report.reading import clean, paired_verdicts_cte, pairs_cte, require_experiment
from atif.report.stats import bootstrap_mean_ci, mcnemar_exact
from atif.store import Store

__all__ = ["COMPARE_SCHEMA_VERSION", "compare", "criterion_table"]

COMPARE_SCHEMA_VERSION = "1"
"""Version of the JSON comparison layout (docs/reports.md)."""

_METRICS = ("reward", "cost_usd", "duration_seconds")


_TABLE_SQL = """
    (SELECT list({'criterion': criterion, 'vb': vb, 'vc': vc, 'n': n})
     FROM (SELECT criterion, vb, vc, count(*) AS n FROM verdicts GROUP BY ALL)) AS verdict_counts,
    (SELECT count(*) FROM pairs) AS n_pairs,
    (SELECT list(DISTINCT criterion) FROM ratings WHERE experiment IN ($baseline, $candidate)) AS labels"""


def _table(row: dict[str, Any]) -> dict[str, dict[tuple[str, str], int]]:
    """The criterion table from a row holding :data:`_TABLE_SQL`'s columns."""
    out: dict[str, dict[tuple[str, str], int]] = {label: {} for label in row["labels"] or []}
    for r in row["verdict_counts"] or []:
        out[r["criterion"]][(r["vb"], r["vc"])] = int(r["n"])
    for table in out.values():
        neither = int(row["n_pairs"]) - sum(table.values())
        if neither:
            table[("MISSING", "MISSING")] = neither
    return out


def criterion_table(store: Store, baseline: str, candidate: str) -> dict[str, dict[tuple[str, str], int]]:
    """Per criterion, counts of paired verdicts ``{(baseline verdict, candidate verdict): n}``.

    Verdicts are ``YES``, ``NO``, ``UNSCORED`` or ``MISSING`` (no rating for the trial).
    Criteria rated in either experiment are included; a pair rated on neither side counts
    as ``(MISSING, MISSING)``.
    """
    (row,) = store.read(f"WITH {pairs_cte()}, {paired_verdicts_cte()} SELECT {_TABLE_SQL}",
                        {"baseline": baseline, "candidate": candidate})
    return _table(row)


def table_and_reward_changes(store: Store, baseline: str, candidate: str, *,
                             missing_as_zero: bool) -> tuple[dict[str, dict[tuple[str, str], int]], Any]:
    """:func:`criterion_table` and the paired reward changes (candidate - baseline), in one query.

    Pairs whose baseline has no reward are left out; a candidate without one counts as 0 when
    ``missing_as_zero``, else the pair is left out too.
    """
    cand = "coalesce(c_reward, 0.0)" if missing_as_zero else "c_reward"
    (row,) = store.read(f"""
        WITH {pairs_cte()}, {paired_verdicts_cte()}
        SELECT {_TABLE_SQL},
               (SELECT list({cand} - b_reward) FROM pairs
                WHERE b_reward IS NOT NULL AND {cand} IS NOT NULL) AS reward_changes""",
        {"baseline": baseline, "candidate": candidate})
    return _table(row), as_array(row["reward_changes"])


def as_array(values: list[float] | None) -> Any:
    """A float64 array of a list read from DuckDB (None: no values)."""
    import numpy as np

    return np.asarray(values or [], dtype=np.float64)


def compare(store: Store, baseline: str, candidate: str, *, alpha: float = 0.05, seed: int = 0,
            resamples: int = 2000, max_listed: int | None = None) -> dict[str, Any]:
    """Compare ``candidate`` against ``baseline`` on trials paired by task and epoch.

    Returns a JSON-ready dict (layout in docs/reports.md): per criterion the paired pass
    rates, their change and McNemar's exact p-value (pairs where either side is unscored
    or unrated are left out and counted); reward, cost and duration mean change with a
    ``1 - alpha`` paired bootstrap interval from ``seed``; the regressed, improved and
    mixed pairs; and the unpaired trials of each side.

    ``max_listed`` keeps the first that many pairs of each kind (in task order) in ``tasks``;
    ``task_counts`` always has the totals. Everything is one query, so the pairs and their
    verdicts are computed once; per-pair metric values come back as one list per metric, and
    only the listed pairs become Python objects, so with ``max_listed`` memory stays bounded
    by a few numbers per pair.
    """
    require_experiment(store, baseline)
    require_experiment(store, candidate)
    params = {"baseline": baseline, "candidate": candidate, "max_listed": max_listed}
    metric_sql = ",\n".join(
        f"""(SELECT {{'diffs': list(c_{m} - b_{m}), 'b': avg(b_{m}), 'c': avg(c_{m})}} FROM pairs
             WHERE b_{m} IS NOT NULL AND c_{m} IS NOT NULL) AS m_{m}""" for m in _METRICS)
    (row,) = store.read(f"""
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
        ), listed AS (
            SELECT *, row_number() OVER (PARTITION BY kind ORDER BY task_name, epoch, b_id) AS rank
            FROM kinds WHERE kind IS NOT NULL
        )
        SELECT {_TABLE_SQL},
            {metric_sql},
            (SELECT list({{'kind': kind, 'n': n}}) FROM (SELECT kind, count(*) AS n FROM listed GROUP BY kind))
                AS task_counts,
            (SELECT list({{'kind': kind, 'task_name': task_name, 'epoch': epoch, 'baseline_trial_id': b_id,
                           'candidate_trial_id': c_id, 'lost': lost, 'gained': gained,
                           'baseline_reward': b_reward, 'candidate_reward': c_reward}}
                         ORDER BY task_name, epoch, b_id)
             FROM listed WHERE $max_listed IS NULL OR rank <= $max_listed) AS changed,
            (SELECT list({{'side': side, 'task_name': task_name, 'epoch': epoch, 'trial_id': trial_id}}
                         ORDER BY side, task_name, epoch, trial_id)
             FROM (SELECT 'baseline' AS side, task_name, epoch, trial_id FROM b
                   WHERE trial_id NOT IN (SELECT b_id FROM pairs)
                   UNION ALL
                   SELECT 'candidate' AS side, task_name, epoch, trial_id FROM c
                   WHERE trial_id NOT IN (SELECT c_id FROM pairs))) AS unpaired""", params)

    criteria: dict[str, Any] = {}
    for label, table in sorted(_table(row).items()):
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

    level = 1.0 - alpha
    metrics: dict[str, Any] = {}
    for name in _METRICS:
        m = row[f"m_{name}"]
        boot = bootstrap_mean_ci(as_array(m["diffs"]), resamples=resamples, level=level, seed=seed)
        metrics[name] = {
            "n_pairs": boot.n,
            "baseline_mean": m["b"],
            "candidate_mean": m["c"],
            "delta_mean": boot.mean,
            "ci_low": boot.ci_low,
            "ci_high": boot.ci_high,
            "significant": bool(boot.ci_low is not None and boot.ci_high is not None
                                and (boot.ci_low > 0 or boot.ci_high < 0)),
            "resamples": boot.resamples,
            "interval": boot.method,
        }
        m["diffs"] = None

    tasks: dict[str, list[dict[str, Any]]] = {"regressed": [], "improved": [], "mixed": []}
    task_counts = dict.fromkeys(tasks, 0)
    for k in row["task_counts"] or []:
        task_counts[k["kind"]] = int(k["n"])
    for t in row["changed"] or []:
        tasks[t.pop("kind")].append(t)
    unpaired = row["unpaired"] or []

    result: dict[str, Any] = clean({
        "schema_version": COMPARE_SCHEMA_VERSION,
        "kind": "compare",
        "baseline": baseline,
        "candidate": candidate,
        "pairing": "task_name+epoch",
        "alpha": alpha,
        "seed": seed,
        "n_pairs": int(row["n_pairs"]),
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
