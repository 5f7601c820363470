"""Run-to-run comparison of two experiments, paired by task and epoch, with significance.

Trials pair by ``(task_name, epoch)``; when an experiment holds several trials of the
same task and epoch they pair in order of trial id. Per criterion the pass-rate change
is tested with McNemar's exact test on the discordant pairs; reward, cost and duration
changes get a seeded paired bootstrap interval. Unpaired trials are reported, not dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from atif.report.reading import clean, require_experiment
from atif.report.stats import bootstrap_counted_ci, mcnemar_exact
from atif.store import Store

__all__ = ["COMPARE_SCHEMA_VERSION", "DEFAULT_MAX_LISTED", "compare", "criterion_table", "iter_compare_lists"]

COMPARE_SCHEMA_VERSION = "1"
"""Version of the JSON comparison layout (docs/reports.md)."""

DEFAULT_MAX_LISTED = 100
"""Changed pairs (and unpaired trials) listed per kind unless told otherwise; the totals are always given."""

_METRICS = ("reward", "cost_usd", "duration_seconds")
_VERDICTS = ("MISSING", "YES", "NO", "UNSCORED")
"""Verdict codes of the pairing query: a pair's verdicts are ``4 * baseline code + candidate code``."""
_LOST, _GAINED = 4 * 1 + 2, 4 * 2 + 1
_KINDS = ("regressed", "improved", "mixed")


def _pairing_sql() -> str:
    """CTEs pairing the trials of ``$baseline`` and ``$candidate`` and coding their verdicts.

    Read from the store's base tables with only the columns used: the ``trials`` view joins every
    trial to its trajectory and task, and the ``ratings`` view every rating to its trial, which
    costs more than all the rest at a million pairs. Trials pair by ``(task_name, epoch)``; a
    group holding one trial on each side (the usual case) pairs by a hash join, and only groups
    holding several pair by trial-id order, so no query sorts every trial. ``pairs`` numbers its
    rows (``p``); ``verdicts`` has, per pair and criterion, ``v = 4 * baseline code + candidate
    code`` (codes: index in :data:`_VERDICTS`), and per criterion the unpaired ratings counted
    under negative ``p``: ``-(4 * side + code)`` with side 1 baseline, 2 candidate.
    """
    side = """(SELECT trial_id, trial_key, task_name, epoch, reward, cost_usd, duration_seconds
               FROM trial_data WHERE experiment = ${0})"""
    group = """(SELECT task_name, epoch, count(*) AS n, any_value(trial_id) AS trial_id, any_value(trial_key) AS trial_key,
                       any_value(reward) AS reward,
                       any_value(cost_usd) AS cost_usd, any_value(duration_seconds) AS duration_seconds
                FROM {0} GROUP BY task_name, epoch)"""
    several = """(SELECT t.trial_id, t.trial_key, task_name, epoch, t.reward, t.cost_usd, t.duration_seconds, several.{1} AS other_n,
                         row_number() OVER (PARTITION BY task_name, epoch ORDER BY t.trial_id) AS k
                  FROM {0} t JOIN several USING (task_name, epoch))"""
    cols = """b.trial_id AS b_id, c.trial_id AS c_id, b.trial_key AS b_key, c.trial_key AS c_key, task_name, epoch, b.reward AS b_reward, c.reward AS c_reward,
              b.cost_usd AS b_cost_usd, c.cost_usd AS c_cost_usd, b.duration_seconds AS b_duration_seconds,
              c.duration_seconds AS c_duration_seconds"""
    return f"""
        bt AS {side.format("baseline")},
        ct AS {side.format("candidate")},
        bg AS MATERIALIZED {group.format("bt")},
        cg AS MATERIALIZED {group.format("ct")},
        several AS (SELECT task_name, epoch, b.n AS bn, c.n AS cn FROM bg b JOIN cg c USING (task_name, epoch)
                    WHERE b.n > 1 OR c.n > 1),
        bm AS MATERIALIZED {several.format("bt", "cn")},
        cm AS MATERIALIZED {several.format("ct", "bn")},
        pairs AS MATERIALIZED (
            SELECT (row_number() OVER ())::BIGINT AS p, * FROM (
                SELECT {cols} FROM bg b JOIN cg c USING (task_name, epoch) WHERE b.n = 1 AND c.n = 1
                UNION ALL
                SELECT {cols} FROM bm b JOIN cm c USING (task_name, epoch, k))),
        unpaired AS MATERIALIZED (
            SELECT 1 AS side, task_name, epoch, trial_id, trial_key FROM bt
            SEMI JOIN (SELECT task_name, epoch FROM bg ANTI JOIN cg USING (task_name, epoch)) g USING (task_name, epoch)
            UNION ALL SELECT 1, task_name, epoch, trial_id, trial_key FROM bm WHERE k > other_n
            UNION ALL
            SELECT 2, task_name, epoch, trial_id, trial_key FROM ct
            SEMI JOIN (SELECT task_name, epoch FROM cg ANTI JOIN bg USING (task_name, epoch)) g USING (task_name, epoch)
            UNION ALL SELECT 2, task_name, epoch, trial_id, trial_key FROM cm WHERE k > other_n),
        sides AS (SELECT b_key AS trial_key, p, 4 AS w FROM pairs
                  UNION ALL SELECT c_key, p, 1 FROM pairs
                  UNION ALL SELECT trial_key, -4 * side, 0 FROM unpaired),
        verdicts AS MATERIALIZED (
            SELECT CASE WHEN s.p > 0 THEN s.p ELSE s.p - code END AS p, r.criterion,
                   sum(s.w * code)::INTEGER AS v, count(*) AS n
            FROM (SELECT trial_key, criterion,
                         CASE verdict WHEN 'YES' THEN 1 WHEN 'NO' THEN 2 ELSE 3 END AS code FROM rating_data) r
            JOIN sides s USING (trial_key)
            GROUP BY ALL)"""


_TABLE_SQL = """
    (SELECT list({'criterion': criterion, 'v': v, 'n': n})
     FROM (SELECT criterion, v, count(*) AS n FROM verdicts WHERE p > 0 GROUP BY ALL)) AS verdict_counts,
    (SELECT list({'criterion': criterion, 'p': p, 'n': n}) FROM verdicts WHERE p < 0) AS unpaired_counts,
    (SELECT count(*) FROM pairs) AS n_pairs"""


def _counted(row: dict[str, Any]) -> tuple[dict[str, dict[tuple[str, str], int]], dict[str, dict[str, dict[str, int]]]]:
    """The criterion table and each side's verdict counts per criterion, from :data:`_TABLE_SQL`'s columns.

    Side counts: ``{"baseline"|"candidate": {criterion: {verdict: n}}}`` over all of that side's
    trials, paired or not (a criterion is there when that side rated it at least once).
    """
    table: dict[str, dict[tuple[str, str], int]] = {}
    sides: dict[str, dict[str, dict[str, int]]] = {"baseline": {}, "candidate": {}}
    for r in row["verdict_counts"] or []:
        vb, vc = _VERDICTS[r["v"] // 4], _VERDICTS[r["v"] % 4]
        n = int(r["n"])
        table.setdefault(r["criterion"], {})[(vb, vc)] = n
        for name, verdict in (("baseline", vb), ("candidate", vc)):
            if verdict != "MISSING":
                counts = sides[name].setdefault(r["criterion"], {})
                counts[verdict] = counts.get(verdict, 0) + n
    for r in row["unpaired_counts"] or []:
        key = -int(r["p"])
        name = "baseline" if key // 4 == 1 else "candidate"
        counts = sides[name].setdefault(r["criterion"], {})
        verdict = _VERDICTS[key % 4]
        counts[verdict] = counts.get(verdict, 0) + int(r["n"])
        table.setdefault(r["criterion"], {})
    for t in table.values():
        neither = int(row["n_pairs"]) - sum(t.values())
        if neither:
            t[("MISSING", "MISSING")] = neither
    return table, sides


def _diffs_sql(expr: str, where: str) -> str:
    """A struct of the distinct values of ``expr`` over the pairs where ``where``, with their counts."""
    return f"""(SELECT {{'values': list(d ORDER BY d), 'counts': list(n ORDER BY d)}}
                FROM (SELECT {expr} AS d, count(*) AS n FROM pairs WHERE {where} GROUP BY d))"""


def trial_count(store: Store, experiment: str) -> int:
    """The number of trials of ``experiment`` (a count on the base table); ``NotFoundError`` when none."""
    (n,) = store.read_one("SELECT count(*) FROM trial_data WHERE experiment = ?", [experiment])
    return int(n) if n else require_experiment(store, experiment)


def criterion_table(store: Store, baseline: str, candidate: str) -> dict[str, dict[tuple[str, str], int]]:
    """Per criterion, counts of paired verdicts ``{(baseline verdict, candidate verdict): n}``.

    Verdicts are ``YES``, ``NO``, ``UNSCORED`` or ``MISSING`` (no rating for the trial).
    Criteria rated in either experiment are included; a pair rated on neither side counts
    as ``(MISSING, MISSING)``.
    """
    (row,) = store.read(f"WITH {_pairing_sql()} SELECT {_TABLE_SQL}", {"baseline": baseline, "candidate": candidate})
    return _counted(row)[0]


def paired_for_gate(store: Store, baseline: str, candidate: str, *, missing_as_zero: bool) -> dict[str, Any]:
    """What ``gate --baseline`` needs, in one query: the criterion table, each side's verdict counts, reward changes.

    ``tables`` is :func:`criterion_table`; ``sides`` each side's verdict counts per criterion
    (see :func:`_counted`); ``reward_changes`` the paired reward changes (candidate - baseline)
    as distinct ``values`` with their ``counts``. Pairs whose baseline has no reward are left out;
    a candidate without one counts as 0 when ``missing_as_zero``, else the pair is left out too.
    """
    cand = "coalesce(c_reward, 0.0)" if missing_as_zero else "c_reward"
    (row,) = store.read(f"""
        WITH {_pairing_sql()}
        SELECT {_TABLE_SQL}, {_diffs_sql(f"{cand} - b_reward", f"b_reward IS NOT NULL AND {cand} IS NOT NULL")}
            AS reward_changes""", {"baseline": baseline, "candidate": candidate})
    tables, sides = _counted(row)
    return {"tables": tables, "sides": sides, "reward_changes": row["reward_changes"]}


def _kinds_sql() -> str:
    """CTEs after :func:`_pairing_sql`: ``kinds``, each changed pair with its kind (0 regressed, 1 improved, 2 mixed)."""
    return f"""
        flips AS (
            SELECT p, count(*) FILTER (WHERE v = {_LOST}) AS n_lost, count(*) FILTER (WHERE v = {_GAINED}) AS n_gained
            FROM verdicts WHERE p > 0 AND v IN ({_LOST}, {_GAINED}) GROUP BY p
        ), scored AS (
            SELECT p.*, coalesce(f.n_gained, 0) - coalesce(f.n_lost, 0) AS net,
                   coalesce(f.n_lost, 0) + coalesce(f.n_gained, 0) AS n_flips,
                   coalesce(p.c_reward - p.b_reward, 0.0) AS dr
            FROM pairs p LEFT JOIN flips f USING (p)
        ), kinds AS MATERIALIZED (
            SELECT * FROM (
                SELECT p, task_name, epoch, b_id, c_id, b_reward, c_reward,
                       CASE WHEN net < 0 OR (net = 0 AND dr < -1e-12) THEN 0
                            WHEN net > 0 OR (net = 0 AND dr > 1e-12) THEN 1
                            WHEN n_flips > 0 THEN 2 END AS kind
                FROM scored) WHERE kind IS NOT NULL
        )"""


_PAIR_STRUCT = """{'kind': kind, 'task_name': task_name, 'epoch': epoch, 'baseline_trial_id': b_id,
                   'candidate_trial_id': c_id, 'lost': coalesce(lost, []), 'gained': coalesce(gained, []),
                   'baseline_reward': b_reward, 'candidate_reward': c_reward}"""
_FLIP_LISTS = f"""(SELECT p, list(criterion ORDER BY criterion) FILTER (WHERE v = {_LOST}) AS lost,
                          list(criterion ORDER BY criterion) FILTER (WHERE v = {_GAINED}) AS gained
                   FROM verdicts WHERE p IN (SELECT p FROM listed) AND v IN ({_LOST}, {_GAINED}) GROUP BY p)"""


def iter_compare_lists(store: Store, baseline: str, candidate: str, *,
                       batch: int = 10_000) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every entry of ``compare``'s ``tasks`` and ``unpaired`` lists, one at a time, as ``(list, kind, entry)``.

    ``list`` is ``"tasks"`` (``kind``: ``improved``, ``mixed``, ``regressed``) or ``"unpaired"``
    (``kind``: ``baseline_only``, ``candidate_only``); entries are those ``compare`` lists, in
    its order, and the lists and kinds come in sorted order, as in its sorted-key JSON. Entries
    come from the store ``batch`` at a time, so listing a million pairs holds one batch.
    """
    trial_count(store, baseline)
    trial_count(store, candidate)
    # Sections in sorted-key order: tasks improved (1), mixed (2), regressed (0); then unpaired sides.
    sql = f"""
        WITH {_pairing_sql()}, {_kinds_sql()},
        listed AS (SELECT * FROM kinds)
        SELECT CASE kind WHEN 1 THEN 0 WHEN 2 THEN 1 ELSE 2 END AS section, kind, task_name, epoch, b_id, c_id,
               coalesce(lost, []) AS lost, coalesce(gained, []) AS gained, b_reward, c_reward
        FROM kinds LEFT JOIN {_FLIP_LISTS} USING (p)
        UNION ALL
        SELECT 2 + side, side, task_name, epoch, trial_id, NULL, NULL, NULL, NULL, NULL FROM unpaired
        ORDER BY section, task_name, epoch, b_id"""
    sides = {1: "baseline_only", 2: "candidate_only"}
    for rows in store.read_batches(sql, {"baseline": baseline, "candidate": candidate}, batch):
        for r in rows:
            if r["section"] < 3:
                yield "tasks", _KINDS[r["kind"]], {
                    "task_name": r["task_name"], "epoch": r["epoch"], "baseline_trial_id": r["b_id"],
                    "candidate_trial_id": r["c_id"], "lost": r["lost"], "gained": r["gained"],
                    "baseline_reward": r["b_reward"], "candidate_reward": r["c_reward"]}
            else:
                yield "unpaired", sides[r["kind"]], {"epoch": r["epoch"], "task_name": r["task_name"],
                                                     "trial_id": r["b_id"]}


def compare(store: Store, baseline: str, candidate: str, *, alpha: float = 0.05, seed: int = 0,
            resamples: int = 2000, max_listed: int | None = DEFAULT_MAX_LISTED) -> dict[str, Any]:
    """Compare ``candidate`` against ``baseline`` on trials paired by task and epoch.

    Returns a JSON-ready dict (layout in docs/reports.md): per criterion the paired pass
    rates, their change and McNemar's exact p-value (pairs where either side is unscored
    or unrated are left out and counted); reward, cost and duration mean change with a
    ``1 - alpha`` paired bootstrap interval from ``seed``; the regressed, improved and
    mixed pairs; and the unpaired trials of each side.

    ``max_listed`` keeps the first that many pairs of each kind (in task order) in ``tasks``,
    and of unpaired trials of each side in ``unpaired``; ``task_counts`` and ``unpaired_counts``
    always have the totals. ``None`` lists them all (to stream every entry instead, see
    :func:`iter_compare_lists`). Everything is one query over the two experiments: pairing,
    verdict counts, the metric changes counted by distinct value and the listed pairs all
    come out aggregated, so memory does not grow with the pairs beyond the store's own work.
    """
    if max_listed is not None and max_listed < 0:
        raise ValueError(f"max_listed {max_listed} must be >= 0")
    trial_count(store, baseline)
    trial_count(store, candidate)
    limit = "" if max_listed is None else f"LIMIT {int(max_listed)}"
    metric_sql = ",\n".join(
        f"""(SELECT {{'b': avg(b_{m}), 'c': avg(c_{m})}} FROM pairs WHERE b_{m} IS NOT NULL AND c_{m} IS NOT NULL)
                AS mean_{m},
            {_diffs_sql(f"c_{m} - b_{m}", f"b_{m} IS NOT NULL AND c_{m} IS NOT NULL")} AS m_{m}""" for m in _METRICS)
    listed = " UNION ALL ".join(
        f"(SELECT * FROM kinds WHERE kind = {k} ORDER BY task_name, epoch, b_id {limit})" for k in range(len(_KINDS)))
    unpaired_listed = " UNION ALL ".join(
        f"(SELECT * FROM unpaired WHERE side = {k} ORDER BY task_name, epoch, trial_id {limit})" for k in (1, 2))
    (row,) = store.read(f"""
        WITH {_pairing_sql()}, {_kinds_sql()},
        listed AS MATERIALIZED ({listed})
        SELECT {_TABLE_SQL},
            {metric_sql},
            (SELECT list({{'kind': kind, 'n': n}}) FROM (SELECT kind, count(*) AS n FROM kinds GROUP BY kind))
                AS task_counts,
            (SELECT list({_PAIR_STRUCT} ORDER BY kind, task_name, epoch, b_id)
             FROM listed LEFT JOIN {_FLIP_LISTS} USING (p)) AS changed,
            (SELECT list({{'side': side, 'n': n}}) FROM (SELECT side, count(*) AS n FROM unpaired GROUP BY side))
                AS unpaired_totals,
            (SELECT list({{'side': side, 'task_name': task_name, 'epoch': epoch, 'trial_id': trial_id}}
                         ORDER BY side, task_name, epoch, trial_id)
             FROM ({unpaired_listed})) AS unpaired""", {"baseline": baseline, "candidate": candidate})

    tables, _ = _counted(row)
    criteria: dict[str, Any] = {}
    for label, table in sorted(tables.items()):
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
        boot = bootstrap_counted_ci(m["values"] or [], m["counts"] or [], resamples=resamples, level=level, seed=seed)
        metrics[name] = {
            "n_pairs": boot.n,
            "baseline_mean": row[f"mean_{name}"]["b"],
            "candidate_mean": row[f"mean_{name}"]["c"],
            "delta_mean": boot.mean,
            "ci_low": boot.ci_low,
            "ci_high": boot.ci_high,
            "significant": bool(boot.ci_low is not None and boot.ci_high is not None
                                and (boot.ci_low > 0 or boot.ci_high < 0)),
            "resamples": boot.resamples,
            "interval": boot.method,
        }

    tasks: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _KINDS}
    task_counts = dict.fromkeys(tasks, 0)
    for k in row["task_counts"] or []:
        task_counts[_KINDS[k["kind"]]] = int(k["n"])
    for t in row["changed"] or []:
        tasks[_KINDS[t.pop("kind")]].append(t)
    sides = {1: "baseline_only", 2: "candidate_only"}
    unpaired: dict[str, list[dict[str, Any]]] = {side: [] for side in sides.values()}
    unpaired_counts = dict.fromkeys(unpaired, 0)
    for u in row["unpaired_totals"] or []:
        unpaired_counts[sides[u["side"]]] = int(u["n"])
    for u in row["unpaired"] or []:
        unpaired[sides[u["side"]]].append({"epoch": u["epoch"], "task_name": u["task_name"], "trial_id": u["trial_id"]})

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
    # The per-pair lists can be long; they are plain values already, so they skip clean().
    result["tasks"] = tasks
    result["task_counts"] = task_counts
    result["unpaired"] = unpaired
    result["unpaired_counts"] = unpaired_counts
    return result
