"""Run-to-run comparison of two experiments, paired by task and epoch, with significance.

Trials pair by ``(task_name, epoch)``; when an experiment holds several trials of the
same task and epoch they pair in order of trial id. Per criterion the pass-rate change
is tested with McNemar's exact test on the discordant pairs; reward, cost and duration
changes get a seeded paired bootstrap interval. Unpaired trials are reported, not dropped.

Unlike the other reports, compare and gate read the store's base tables (``trial_data``,
``rating_data``) rather than its views, by name and through ``Store.read``: at a million pairs
the views' joins on 64-character ids cost more than the comparison itself (docs/performance.md).
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
"""Verdict codes of the pairing query (index); each trial's verdicts are packed 2 bits per criterion."""
_KINDS = ("regressed", "improved", "mixed")
_PER_WORD = 32
"""Criteria packed in one UBIGINT word (2 bits each)."""
_LOW = 0x5555555555555555
"""The low bit of every 2-bit field of a word."""


def _words(n_criteria: int) -> range:
    return range(max(1, -(-n_criteria // _PER_WORD)))


def _criteria(store: Store) -> list[str]:
    """Every criterion label in the store, sorted (DuckDB's order): a criterion's index packs its verdicts."""
    (labels,) = store.read_one("SELECT list(DISTINCT criterion ORDER BY criterion) FROM rating_data")
    return list(labels or [])


def _pairing_sql(n_criteria: int) -> str:
    """CTEs pairing the trials of ``$baseline`` and ``$candidate`` and packing their verdicts (``$crit``: the labels).

    Read from the store's base tables with only the columns used, joined on the integer trial
    key: the ``trials`` view joins every trial to its trajectory and task, and the ``ratings``
    view every rating to its trial on 64-character ids, which cost more than all the rest at a
    million pairs. One aggregate over both experiments groups the trials by ``(task_name,
    epoch)``: a group holding one trial on each side (the usual case) is a pair as it stands,
    and only groups holding several are numbered in trial-id order (``several``, ``m``), so no
    query sorts every trial.

    ``pairs``: one row per pair, numbered ``p`` (1..), with each side's key and metric values and
    ``k``, the pair's rank within its task and epoch. ``unpaired``: the trials without a partner,
    numbered ``u`` (1..), ``side`` 1 baseline, 2 candidate. ``coded``: per pair (``p``) and per
    unpaired trial (``p = -u``), the verdicts packed two bits per criterion (code = index in
    :data:`_VERDICTS`, criterion ``i`` of ``$crit`` at bit ``2 * (i % 32)`` of word ``i // 32``):
    the baseline's in ``b0, b1, ...`` and the candidate's in ``c0, c1, ...``. Grouping ten
    million ratings by pair on an integer is the one large aggregate left.
    """
    sides = {"b": ("false", "baseline"), "c": ("true", "candidate")}
    both = " UNION ALL ".join(
        f"SELECT {{cols}}, {flag} AS is_c FROM trial_data WHERE experiment = ${name}" for flag, name in sides.values())
    metric_cols = "reward, cost_usd, duration_seconds"
    picks = ",\n".join(
        f"any_value({col}) FILTER (WHERE {'NOT ' if s == 'b' else ''}is_c) AS {s}_{alias}"
        for s in ("b", "c") for col, alias in (("trial_key", "key"), ("reward", "reward"), ("cost_usd", "cost_usd"),
                                               ("duration_seconds", "duration_seconds")))
    pair_cols = "b_key, c_key, b_reward, c_reward, b_cost_usd, c_cost_usd, b_duration_seconds, c_duration_seconds"
    words = _words(n_criteria)
    if len(words) == 1:
        packs = ("bit_or(bits) FILTER (WHERE s.is_b) AS b0, bit_or(bits) FILTER (WHERE NOT s.is_b) AS c0")
        coded_bits = "c.bits"
    else:
        packs = ", ".join(
            f"bit_or(bits) FILTER (WHERE s.is_b AND word = {w}) AS b{w}, "
            f"bit_or(bits) FILTER (WHERE NOT s.is_b AND word = {w}) AS c{w}" for w in words)
        coded_bits = f"c.bits, c.ci // {_PER_WORD} AS word"
    return f"""
        t AS ({both.format(cols=f"trial_key, task_name, epoch, {metric_cols}")}),
        g AS MATERIALIZED (
            SELECT task_name, epoch, count(*) FILTER (WHERE NOT is_c) AS bn, count(*) FILTER (WHERE is_c) AS cn,
                   {picks}
            FROM t GROUP BY task_name, epoch),
        several AS (SELECT task_name, epoch, bn, cn FROM g WHERE bn > 0 AND cn > 0 AND (bn > 1 OR cn > 1)),
        m AS MATERIALIZED (
            SELECT x.*, CASE WHEN is_c THEN s.bn ELSE s.cn END AS other_n,
                   row_number() OVER (PARTITION BY task_name, epoch, is_c ORDER BY trial_id) AS k
            FROM ({both.format(cols=f"trial_id, trial_key, task_name, epoch, {metric_cols}")}) x
            JOIN several s USING (task_name, epoch)),
        pairs AS MATERIALIZED (
            SELECT (row_number() OVER ())::BIGINT AS p, * FROM (
                SELECT task_name, epoch, 1::BIGINT AS k, {pair_cols} FROM g WHERE bn = 1 AND cn = 1
                UNION ALL
                SELECT task_name, epoch, k, b.trial_key, c.trial_key, b.reward, c.reward, b.cost_usd, c.cost_usd,
                       b.duration_seconds, c.duration_seconds
                FROM m b JOIN m c USING (task_name, epoch, k) WHERE NOT b.is_c AND c.is_c)),
        unpaired AS MATERIALIZED (
            SELECT (row_number() OVER ())::BIGINT AS u, * FROM (
                SELECT CASE WHEN is_c THEN 2 ELSE 1 END AS side, task_name, epoch, trial_id, trial_key
                FROM ({both.format(cols="trial_id, trial_key, task_name, epoch")}) x
                SEMI JOIN (SELECT task_name, epoch FROM g WHERE bn = 0 OR cn = 0) e USING (task_name, epoch)
                UNION ALL
                SELECT CASE WHEN is_c THEN 2 ELSE 1 END, task_name, epoch, trial_id, trial_key FROM m
                WHERE k > other_n)),
        crit AS (SELECT criterion, ci, verdict, code::UBIGINT << (2 * (ci % {_PER_WORD})) AS bits
                 FROM (SELECT unnest($crit) AS criterion, generate_subscripts($crit, 1) - 1 AS ci),
                      (VALUES ('YES', 1), ('NO', 2), ('UNSCORED', 3)) v(verdict, code)),
        sides AS (SELECT b_key AS trial_key, p, true AS is_b FROM pairs
                  UNION ALL SELECT c_key, p, false FROM pairs
                  UNION ALL SELECT trial_key, -u, side = 1 FROM unpaired),
        coded AS MATERIALIZED (
            SELECT s.p, {packs}
            FROM (SELECT r.trial_key, {coded_bits} FROM rating_data r JOIN crit c USING (criterion, verdict)) x
            JOIN sides s USING (trial_key)
            GROUP BY s.p)"""


def _word_of(side: str, w: int) -> str:
    return f"coalesce({side}{w}, 0::UBIGINT)"


def _field_is(word: str, code: int) -> str:
    """SQL: a word with a 1 in the low bit of each 2-bit field of ``word`` that holds ``code`` (1 YES, 2 NO)."""
    lo = f"({word} & {_LOW}::UBIGINT)"
    hi = f"(({word} >> 1) & {_LOW}::UBIGINT)"
    return f"({lo} & xor({hi}, {_LOW}::UBIGINT))" if code == 1 else f"({hi} & xor({lo}, {_LOW}::UBIGINT))"


def _flip_sql(n_criteria: int, lost: bool) -> str:
    """SQL: the number of criteria a row of ``coded`` lost (YES -> NO) or gained (NO -> YES)."""
    before, after = (1, 2) if lost else (2, 1)
    return " + ".join(f"bit_count({_field_is(_word_of('b', w), before)} & {_field_is(_word_of('c', w), after)})"
                      for w in _words(n_criteria))


def _expand_sql(n_criteria: int, where: str) -> str:
    """SQL: ``list({ci, vb, vc, n})``, the rows of ``coded`` matching ``where`` counted per criterion and verdict pair."""
    parts = []
    for w in _words(n_criteria):
        width = min(_PER_WORD, n_criteria - w * _PER_WORD)
        if width <= 0:
            continue
        b, c = _word_of("b", w), _word_of("c", w)
        parts.append(f"""SELECT {w * _PER_WORD} + i AS ci, (({b} >> (2 * i)::UBIGINT) & 3::UBIGINT)::INTEGER AS vb,
                                (({c} >> (2 * i)::UBIGINT) & 3::UBIGINT)::INTEGER AS vc, sum(n) AS n
                         FROM combos, range({width}) r(i) GROUP BY ALL""")
    cols = ", ".join(f"b{w}, c{w}" for w in _words(n_criteria))
    union = " UNION ALL ".join(parts) or "SELECT 0 AS ci, 0 AS vb, 0 AS vc, 0 AS n WHERE false"
    return f"""(WITH combos AS (SELECT {cols}, count(*) AS n FROM coded WHERE {where} GROUP BY ALL)
                SELECT list({{'ci': ci, 'vb': vb, 'vc': vc, 'n': n}}) FROM ({union}) WHERE vb > 0 OR vc > 0)"""


def _table_sql(n_criteria: int) -> str:
    return f"""
    {_expand_sql(n_criteria, "p > 0")} AS verdict_counts,
    {_expand_sql(n_criteria, "p < 0")} AS unpaired_counts,
    (SELECT count(*) FROM pairs) AS n_pairs"""


def _counted(row: dict[str, Any], labels: list[str]) -> tuple[dict[str, dict[tuple[str, str], int]],
                                                              dict[str, dict[str, dict[str, int]]]]:
    """The criterion table and each side's verdict counts per criterion, from :func:`_table_sql`'s columns.

    Side counts: ``{"baseline"|"candidate": {criterion: {verdict: n}}}`` over all of that side's
    trials, paired or not (a criterion is there when that side rated it at least once). The table
    holds the criteria rated on either side.
    """
    table: dict[str, dict[tuple[str, str], int]] = {}
    sides: dict[str, dict[str, dict[str, int]]] = {"baseline": {}, "candidate": {}}
    for source in ("verdict_counts", "unpaired_counts"):
        for r in row[source] or []:
            label, n = labels[r["ci"]], int(r["n"])
            vb, vc = _VERDICTS[r["vb"]], _VERDICTS[r["vc"]]
            t = table.setdefault(label, {})
            if source == "verdict_counts":
                t[(vb, vc)] = t.get((vb, vc), 0) + n
            for name, verdict in (("baseline", vb), ("candidate", vc)):
                if verdict != "MISSING":
                    counts = sides[name].setdefault(label, {})
                    counts[verdict] = counts.get(verdict, 0) + n
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


def _params(baseline: str, candidate: str, labels: list[str]) -> dict[str, Any]:
    return {"baseline": baseline, "candidate": candidate, "crit": labels}


def criterion_table(store: Store, baseline: str, candidate: str) -> dict[str, dict[tuple[str, str], int]]:
    """Per criterion, counts of paired verdicts ``{(baseline verdict, candidate verdict): n}``.

    Verdicts are ``YES``, ``NO``, ``UNSCORED`` or ``MISSING`` (no rating for the trial).
    Criteria rated in either experiment are included; a pair rated on neither side counts
    as ``(MISSING, MISSING)``.
    """
    labels = _criteria(store)
    (row,) = store.read(f"WITH {_pairing_sql(len(labels))} SELECT {_table_sql(len(labels))}",
                        _params(baseline, candidate, labels))
    return _counted(row, labels)[0]


def paired_for_gate(store: Store, baseline: str, candidate: str, *, missing_as_zero: bool) -> dict[str, Any]:
    """What ``gate --baseline`` needs, in one query: the criterion table, each side's verdict counts, reward changes.

    ``tables`` is :func:`criterion_table`; ``sides`` each side's verdict counts per criterion
    (see :func:`_counted`); ``reward_changes`` the paired reward changes (candidate - baseline)
    as distinct ``values`` with their ``counts``. Pairs whose baseline has no reward are left out;
    a candidate without one counts as 0 when ``missing_as_zero``, else the pair is left out too.
    """
    labels = _criteria(store)
    cand = "coalesce(c_reward, 0.0)" if missing_as_zero else "c_reward"
    (row,) = store.read(f"""
        WITH {_pairing_sql(len(labels))}
        SELECT {_table_sql(len(labels))},
               {_diffs_sql(f"{cand} - b_reward", f"b_reward IS NOT NULL AND {cand} IS NOT NULL")} AS reward_changes""",
        _params(baseline, candidate, labels))
    tables, sides = _counted(row, labels)
    return {"tables": tables, "sides": sides, "reward_changes": row["reward_changes"]}


def _kinds_sql(n_criteria: int) -> str:
    """CTEs after :func:`_pairing_sql`: ``kinds``, each changed pair with its kind (0 regressed, 1 improved, 2 mixed)."""
    return f"""
        flips AS (
            SELECT * FROM (SELECT p, {_flip_sql(n_criteria, True)} AS n_lost, {_flip_sql(n_criteria, False)} AS n_gained
                           FROM coded WHERE p > 0)
            WHERE n_lost + n_gained > 0
        ), scored AS (
            SELECT p.*, coalesce(f.n_gained, 0) - coalesce(f.n_lost, 0) AS net,
                   coalesce(f.n_lost, 0) + coalesce(f.n_gained, 0) AS n_flips,
                   coalesce(p.c_reward - p.b_reward, 0.0) AS dr
            FROM pairs p LEFT JOIN flips f USING (p)
        ), kinds AS MATERIALIZED (
            SELECT * FROM (
                SELECT p, task_name, epoch, k, b_key, c_key, b_reward, c_reward,
                       CASE WHEN net < 0 OR (net = 0 AND dr < -1e-12) THEN 0
                            WHEN net > 0 OR (net = 0 AND dr > 1e-12) THEN 1
                            WHEN n_flips > 0 THEN 2 END AS kind
                FROM scored) WHERE kind IS NOT NULL
        )"""


def _listed_sql(n_criteria: int, source: str) -> str:
    """SQL: the rows of ``source`` (rows of ``kinds``) with both trial ids and the pair's packed verdicts."""
    words = ", ".join(f"{_word_of('b', w)} AS b{w}, {_word_of('c', w)} AS c{w}" for w in _words(n_criteria))
    return f"""
        SELECT l.kind, l.task_name, l.epoch, l.k, tb.trial_id AS b_id, tc.trial_id AS c_id, l.b_reward, l.c_reward,
               {words}
        FROM {source} l
        LEFT JOIN coded USING (p)
        JOIN (SELECT trial_key, trial_id FROM trial_data WHERE experiment = $baseline) tb ON tb.trial_key = l.b_key
        JOIN (SELECT trial_key, trial_id FROM trial_data WHERE experiment = $candidate) tc ON tc.trial_key = l.c_key"""


def _pair_entry(r: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """A ``tasks`` entry of ``compare`` from a row of :func:`_listed_sql`: lost and gained decoded from the words."""
    lost, gained = [], []
    for i, label in enumerate(labels):
        w, shift = divmod(i, _PER_WORD)
        vb = (r[f"b{w}"] >> (2 * shift)) & 3
        vc = (r[f"c{w}"] >> (2 * shift)) & 3
        if (vb, vc) == (1, 2):
            lost.append(label)
        elif (vb, vc) == (2, 1):
            gained.append(label)
    return {"task_name": r["task_name"], "epoch": r["epoch"], "baseline_trial_id": r["b_id"],
            "candidate_trial_id": r["c_id"], "lost": lost, "gained": gained,
            "baseline_reward": r["b_reward"], "candidate_reward": r["c_reward"]}


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
    labels = _criteria(store)
    n = len(labels)
    params = _params(baseline, candidate, labels)
    # Sorted-key order of the kinds: improved (1), mixed (2), regressed (0).
    sql = f"""
        WITH {_pairing_sql(n)}, {_kinds_sql(n)}
        SELECT * FROM ({_listed_sql(n, "kinds")})
        ORDER BY CASE kind WHEN 1 THEN 0 WHEN 2 THEN 1 ELSE 2 END, task_name, epoch, k"""
    for rows in store.read_batches(sql, params, batch):
        for r in rows:
            yield "tasks", _KINDS[r["kind"]], _pair_entry(r, labels)
    sides = {1: "baseline_only", 2: "candidate_only"}
    sql = f"""
        WITH {_pairing_sql(0)}
        SELECT side, task_name, epoch, trial_id FROM unpaired ORDER BY side, task_name, epoch, trial_id"""
    for rows in store.read_batches(sql, params, batch):
        for r in rows:
            yield "unpaired", sides[r["side"]], {"epoch": r["epoch"], "task_name": r["task_name"],
                                                 "trial_id": r["trial_id"]}


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
    labels = _criteria(store)
    nc = len(labels)
    limit = "" if max_listed is None else f"LIMIT {int(max_listed)}"
    metric_sql = ",\n".join(
        f"""(SELECT {{'b': avg(b_{m}), 'c': avg(c_{m})}} FROM pairs WHERE b_{m} IS NOT NULL AND c_{m} IS NOT NULL)
                AS mean_{m},
            {_diffs_sql(f"c_{m} - b_{m}", f"b_{m} IS NOT NULL AND c_{m} IS NOT NULL")} AS m_{m}""" for m in _METRICS)
    listed = " UNION ALL ".join(
        f"(SELECT * FROM kinds WHERE kind = {k} ORDER BY task_name, epoch, k {limit})" for k in range(len(_KINDS)))
    unpaired_listed = " UNION ALL ".join(
        f"(SELECT * FROM unpaired WHERE side = {k} ORDER BY task_name, epoch, trial_id {limit})" for k in (1, 2))
    (row,) = store.read(f"""
        WITH {_pairing_sql(nc)}, {_kinds_sql(nc)},
        listed AS MATERIALIZED ({listed})
        SELECT {_table_sql(nc)},
            {metric_sql},
            (SELECT list({{'kind': kind, 'n': n}}) FROM (SELECT kind, count(*) AS n FROM kinds GROUP BY kind))
                AS task_counts,
            (SELECT list(x ORDER BY x.kind, x.task_name, x.epoch, x.k) FROM ({_listed_sql(nc, "listed")}) x) AS changed,
            (SELECT list({{'side': side, 'n': n}}) FROM (SELECT side, count(*) AS n FROM unpaired GROUP BY side))
                AS unpaired_totals,
            (SELECT list({{'side': side, 'task_name': task_name, 'epoch': epoch, 'trial_id': trial_id}}
                         ORDER BY side, task_name, epoch, trial_id)
             FROM ({unpaired_listed})) AS unpaired""", _params(baseline, candidate, labels))

    tables, _ = _counted(row, labels)
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
        tasks[_KINDS[t["kind"]]].append(_pair_entry(t, labels))
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
