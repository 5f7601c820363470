"""Run-to-run comparison of two experiments, paired by task and epoch, with significance.

Trials pair by ``(task_name, epoch)``; when an experiment holds several trials of the
same task and epoch they pair in order of trial id. Per criterion the pass-rate change
is tested with McNemar's exact test on the discordant pairs; reward, cost and duration
changes get a seeded paired bootstrap interval. Unpaired trials are reported, not dropped.
"""

from __future__ import annotations

from typing import Any

from atif.report.reading import clean, pairs_cte, require_experiment
from atif.report.stats import bootstrap_mean_ci, mcnemar_exact
from atif.store import Store

__all__ = ["COMPARE_SCHEMA_VERSION", "compare", "criterion_table"]

COMPARE_SCHEMA_VERSION = "1"
"""Version of the JSON comparison layout (docs/reports.md)."""

_METRICS = ("reward", "cost_usd", "duration_seconds")


def criterion_table(store: Store, baseline: str, candidate: str) -> dict[str, dict[tuple[str, str], int]]:
    """Per criterion, counts of paired verdicts ``{(baseline verdict, candidate verdict): n}``.

    Verdicts are ``YES``, ``NO``, ``UNSCORED`` or ``MISSING`` (no rating for the trial).
    Criteria rated in either experiment are included.
    """
    rows = store.read(f"""
        WITH {pairs_cte()},
        crit AS (SELECT DISTINCT criterion FROM ratings WHERE experiment IN ($baseline, $candidate))
        SELECT k.criterion, coalesce(rb.verdict, 'MISSING') AS vb, coalesce(rc.verdict, 'MISSING') AS vc,
               count(*) AS n
        FROM pairs p CROSS JOIN crit k
        LEFT JOIN ratings rb ON rb.trial_id = p.b_id AND rb.criterion = k.criterion
        LEFT JOIN ratings rc ON rc.trial_id = p.c_id AND rc.criterion = k.criterion
        GROUP BY ALL""", {"baseline": baseline, "candidate": candidate})
    out: dict[str, dict[tuple[str, str], int]] = {}
    for r in rows:
        out.setdefault(r["criterion"], {})[(r["vb"], r["vc"])] = int(r["n"])
    return out


def compare(store: Store, baseline: str, candidate: str, *, alpha: float = 0.05, seed: int = 0,
            resamples: int = 2000) -> dict[str, Any]:
    """Compare ``candidate`` against ``baseline`` on trials paired by task and epoch.

    Returns a JSON-ready dict (layout in docs/reports.md): per criterion the paired pass
    rates, their change and McNemar's exact p-value (pairs where either side is unscored
    or unrated are left out and counted); reward, cost and duration mean change with a
    ``1 - alpha`` paired bootstrap interval from ``seed``; the regressed, improved and
    mixed pairs; and the unpaired trials of each side.
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

    rows = store.read(f"""
        WITH {pairs_cte()}
        SELECT p.task_name, p.epoch, p.b_id, p.c_id,
               tb.reward AS b_reward, tc.reward AS c_reward, tb.cost_usd AS b_cost_usd, tc.cost_usd AS c_cost_usd,
               tb.duration_seconds AS b_duration_seconds, tc.duration_seconds AS c_duration_seconds
        FROM pairs p JOIN trials tb ON tb.trial_id = p.b_id JOIN trials tc ON tc.trial_id = p.c_id
        ORDER BY p.task_name, p.epoch, p.b_id""", params)

    level = 1.0 - alpha
    metrics: dict[str, Any] = {}
    for name in _METRICS:
        xs = [(r[f"b_{name}"], r[f"c_{name}"]) for r in rows if r[f"b_{name}"] is not None and r[f"c_{name}"] is not None]
        boot = bootstrap_mean_ci([c - b for b, c in xs], resamples=resamples, level=level, seed=seed)
        metrics[name] = {
            "n_pairs": boot.n,
            "baseline_mean": sum(b for b, _ in xs) / len(xs) if xs else None,
            "candidate_mean": sum(c for _, c in xs) / len(xs) if xs else None,
            "delta_mean": boot.mean,
            "ci_low": boot.ci_low,
            "ci_high": boot.ci_high,
            "significant": bool(boot.ci_low is not None and boot.ci_high is not None
                                and (boot.ci_low > 0 or boot.ci_high < 0)),
            "resamples": boot.resamples,
        }

    flips = {(r["b_id"], r["c_id"]): r for r in store.read(f"""
        WITH {pairs_cte()}
        SELECT p.b_id, p.c_id,
               list(rb.criterion ORDER BY rb.criterion) FILTER (WHERE rb.verdict = 'YES' AND rc.verdict = 'NO') AS lost,
               list(rb.criterion ORDER BY rb.criterion) FILTER (WHERE rb.verdict = 'NO' AND rc.verdict = 'YES') AS gained
        FROM pairs p JOIN ratings rb ON rb.trial_id = p.b_id
        JOIN ratings rc ON rc.trial_id = p.c_id AND rc.criterion = rb.criterion
        WHERE rb.verdict <> rc.verdict
        GROUP BY ALL""", params)}
    tasks: dict[str, list[dict[str, Any]]] = {"regressed": [], "improved": [], "mixed": []}
    for r in rows:
        f = flips.get((r["b_id"], r["c_id"]), {})
        lost = f.get("lost") or []
        gained = f.get("gained") or []
        dr = (r["c_reward"] - r["b_reward"]) if r["b_reward"] is not None and r["c_reward"] is not None else 0.0
        net = len(gained) - len(lost)
        if net < 0 or (net == 0 and dr < -1e-12):
            kind = "regressed"
        elif net > 0 or (net == 0 and dr > 1e-12):
            kind = "improved"
        elif lost or gained:
            kind = "mixed"
        else:
            continue
        tasks[kind].append({
            "task_name": r["task_name"], "epoch": r["epoch"],
            "baseline_trial_id": r["b_id"], "candidate_trial_id": r["c_id"],
            "lost": lost, "gained": gained,
            "baseline_reward": r["b_reward"], "candidate_reward": r["c_reward"],
        })

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
        "n_pairs": len(rows),
        "criteria": criteria,
        "metrics": metrics,
    })
    # The per-pair lists can hold every pair; they are plain values already, so they skip clean().
    result["tasks"] = tasks
    result["unpaired"] = {
        side: [{"epoch": u["epoch"], "task_name": u["task_name"], "trial_id": u["trial_id"]}
               for u in unpaired if u["side"] == side.split("_")[0]]
        for side in ("baseline_only", "candidate_only")
    }
    return result
