"""Experiment summaries computed in SQL over the store's public views.

Every figure of ``build_report`` is a ``GROUP BY`` in DuckDB over ``trials`` and
``ratings``; Python only shapes the result and computes Wilson intervals from counts.
That keeps a 100,000-trial experiment well under a few seconds.

Data access goes through the public views (``trials``, ``ratings``, ...) and, for
trajectories, ``trajectory_data.raw`` (decoded as ``raw_encoding`` says); nothing else of the
schema is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from atif.errors import NotFoundError, ReportError, StoreError
from atif.report.stats import wilson_interval
from atif.store import decode_raw

__all__ = [
    "COHORT_KEYS",
    "REPORT_SCHEMA_VERSION",
    "build_report",
    "clean",
    "connection",
    "criteria_of",
    "one",
    "query",
    "require_experiment",
    "trajectories",
]

REPORT_SCHEMA_VERSION = "1"
"""Version of the JSON report layout (docs/reports.md); bumped on any breaking change."""

COHORT_KEYS = ("tag", "agent", "model")
"""Values of ``by``: cohorts by task tag, agent name or model name."""

# (name in the report, column of the trials view, whether a total is meaningful)
_NUMERIC = (
    ("reward", "reward", False),
    ("duration_seconds", "duration_seconds", True),
    ("cost_usd", "cost_usd", True),
    ("input_tokens", "input_tokens", True),
    ("output_tokens", "output_tokens", True),
    ("cached_tokens", "cached_tokens", True),
    ("steps", "steps", True),
)

_COHORT_EXPR = {
    None: "'all'",
    "agent": "coalesce(agent_name, '(unknown)')",
    "model": "coalesce(model_name, '(unknown)')",
    "tag": "unnest(CASE WHEN tags IS NULL OR len(tags) = 0 THEN ['(untagged)'] ELSE tags END)",
}

_TOP_CAUSES = 10
_TOP_REASONS = 5
_NOTABLE = 5
_FAILED_LISTED = 20
_REWARD_BINS = 10


def connection(store: Any) -> duckdb.DuckDBPyConnection:
    """The DuckDB connection behind ``store``.

    ``store`` is a ``Store`` (its ``connection``), a DuckDB connection, or a path to a store
    file (opened read-only). DuckDB's progress bar is switched off on it: it writes to
    stdout, where it would corrupt a report printed there.
    """
    con: Any = None
    if isinstance(store, duckdb.DuckDBPyConnection):
        con = store
    elif isinstance(store, (str, Path)):
        path = Path(store)
        if not path.exists():
            raise NotFoundError(f"{path}: no such store (run `atif upload` first, or pass --db)")
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from None
    else:
        for attr in ("connection", "db"):
            candidate = getattr(store, attr, None)
            if isinstance(candidate, duckdb.DuckDBPyConnection):
                con = candidate
                break
    if con is None:
        raise ReportError(f"cannot read from {type(store).__name__}: expected a Store, a DuckDB connection or a path")
    if con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0]:
        con.execute("SET enable_progress_bar = false")  # a Store's connection has it off (and locked) already
    return con


def query(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
    """Run ``sql`` and return its rows as dicts."""
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description or []]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
    """The single row of an aggregate query."""
    row = con.execute(sql, params).fetchone()
    if row is None:  # an aggregate without GROUP BY always returns a row
        raise ReportError(f"query returned no row: {sql.split()[0:4]}")
    return tuple(row)


def require_experiment(con: duckdb.DuckDBPyConnection, experiment: str) -> int:
    """The number of trials of ``experiment``; ``NotFoundError`` when it has none."""
    (n,) = one(con, "SELECT count(*) FROM trials WHERE experiment = ?", [experiment])
    if not n:
        known = [r[0] for r in con.execute("SELECT DISTINCT experiment FROM trials ORDER BY 1 LIMIT 20").fetchall()]
        hint = f"; known: {', '.join(known)}" if known else "; the store holds no trials"
        raise NotFoundError(f"no trials for experiment {experiment!r}{hint}")
    return int(n)


def criteria_of(con: duckdb.DuckDBPyConnection, experiment: str) -> list[str]:
    """Labels of the criteria rated in ``experiment``, sorted."""
    rows = con.execute(
        "SELECT DISTINCT criterion FROM ratings WHERE experiment = ? ORDER BY 1", [experiment]
    ).fetchall()
    return [r[0] for r in rows]


def trajectories(con: duckdb.DuckDBPyConnection, trajectory_ids: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """``(trajectory_id, raw bytes)`` for the given ids, fetched in batches."""
    ids = [t for t in dict.fromkeys(trajectory_ids) if t]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        # A semi join on an unnested list: `IN ?` with a list parameter scans row by row.
        cur = con.execute(
            "SELECT j.trajectory_id, j.raw, j.raw_encoding FROM trajectory_data j "
            "SEMI JOIN (SELECT unnest(?::VARCHAR[]) AS id) w ON j.trajectory_id = w.id",
            [chunk],
        )
        while True:
            rows = cur.fetchmany(100)
            if not rows:
                break
            for tid, raw, encoding in rows:
                yield tid, decode_raw(raw, encoding)


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


def _base_cte(by: str | None) -> str:
    return f"""
        base AS (
            SELECT trial_id, task_name, epoch, reward, rewards, cost_usd, duration_seconds, steps,
                   input_tokens, output_tokens, cached_tokens, error, agent_name, model_name,
                   {_COHORT_EXPR[by]} AS cohort
            FROM trials WHERE experiment = $experiment
        )"""


def build_report(store: Any, experiment: str, *, by: str | None = None) -> dict[str, Any]:
    """Summarise ``experiment``: the whole of it and, with ``by``, each cohort.

    ``by`` is ``"tag"`` (a trial counts in each of its task's tags), ``"agent"`` or
    ``"model"``. The result is JSON-ready and stable: the layout is documented in
    docs/reports.md and versioned by ``schema_version``. Raises ``NotFoundError`` when
    the experiment has no trials, ``ReportError`` for an unknown ``by``.
    """
    if by is not None and by not in COHORT_KEYS:
        raise ReportError(f"unknown cohort key {by!r}; expected one of {', '.join(COHORT_KEYS)}")
    con = connection(store)
    require_experiment(con, experiment)
    criteria = criteria_of(con, experiment)
    overall = _summaries(con, experiment, None, criteria)["all"]
    report: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": "report",
        "experiment": experiment,
        "criteria": criteria,
        "by": by,
        "summary": overall,
        "cohorts": [],
        "notable": _notable(con, experiment),
    }
    if by is not None:
        per = _summaries(con, experiment, by, criteria)
        report["cohorts"] = [{"value": k, "summary": per[k]} for k in sorted(per)]
    return clean(report)  # type: ignore[no-any-return]


def _summaries(con: duckdb.DuckDBPyConnection, experiment: str, by: str | None,
               criteria: list[str]) -> dict[str, dict[str, Any]]:
    params = {"experiment": experiment}
    with_base = "WITH " + _base_cte(by)
    out: dict[str, dict[str, Any]] = {}

    parts = ["count(*) AS n_trials", "count(error) AS n_errored"]
    for name, col, _ in _NUMERIC:
        parts += [
            f"count({col}) AS {name}__n",
            f"avg({col}) AS {name}__mean",
            f"quantile_cont({col}, 0.5) AS {name}__p50",
            f"quantile_cont({col}, 0.95) AS {name}__p95",
            f"min({col}) AS {name}__min",
            f"max({col}) AS {name}__max",
            f"sum({col}) AS {name}__total",
        ]
    for row in query(con, f"{with_base} SELECT cohort, {', '.join(parts)} FROM base GROUP BY cohort", params):
        n = int(row["n_trials"])
        block: dict[str, Any] = {
            "n_trials": n,
            "n_errored": int(row["n_errored"]),
            "error_rate": row["n_errored"] / n if n else None,
            "errors": [],
            "rewards": {},
            "criteria": {},
            "macro_pass_rate": None,
            "n_unscored": 0,
            "n_missing": 0,
            "histograms": {"reward": [], "criteria_passed": []},
            "judge": _empty_judge(),
        }
        for name, _, has_total in _NUMERIC:
            block[name] = _stat(row, name, has_total)
        out[row["cohort"]] = block

    cause = r"trim(regexp_extract(error, '^([^\n:]{1,120})', 1))"
    for row in query(con, f"""{with_base}
            SELECT cohort, CASE WHEN {cause} = '' THEN '(empty)' ELSE {cause} END AS cause, count(*) AS n
            FROM base WHERE error IS NOT NULL GROUP BY ALL ORDER BY cohort, n DESC, cause""", params):
        out[row["cohort"]]["errors"].append({"cause": row["cause"], "count": int(row["n"])})
    for block in out.values():
        block["errors"] = _top(block["errors"], _TOP_CAUSES, "cause")

    for row in query(con, f"""{with_base}, e AS (
                SELECT cohort, unnest(map_entries(CAST(rewards AS MAP(VARCHAR, JSON)))) AS kv
                FROM base WHERE rewards IS NOT NULL AND json_type(rewards) = 'OBJECT'
            ), v AS (
                SELECT cohort, kv.key AS name, CAST(kv.value AS DOUBLE) AS value FROM e
                WHERE json_type(kv.value) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')
            )
            SELECT cohort, name, count(*) AS r__n, avg(value) AS r__mean,
                   quantile_cont(value, 0.5) AS r__p50, quantile_cont(value, 0.95) AS r__p95,
                   min(value) AS r__min, max(value) AS r__max
            FROM v GROUP BY ALL""", params):
        out[row["cohort"]]["rewards"][row["name"]] = _stat(row, "r", False)

    for row in query(con, f"""{with_base}
            SELECT b.cohort, r.criterion,
                   count(*) FILTER (WHERE r.verdict = 'YES') AS n_yes,
                   count(*) FILTER (WHERE r.verdict = 'NO') AS n_no,
                   count(*) FILTER (WHERE r.verdict = 'UNSCORED') AS n_unscored
            FROM base b JOIN ratings r USING (trial_id) GROUP BY ALL""", params):
        block = out[row["cohort"]]
        block["criteria"][row["criterion"]] = _criterion(
            int(row["n_yes"]), int(row["n_no"]), int(row["n_unscored"]), block["n_trials"]
        )
    for block in out.values():
        for label in criteria:
            block["criteria"].setdefault(label, _criterion(0, 0, 0, block["n_trials"]))
        rates = [c["pass_rate"] for c in block["criteria"].values() if c["pass_rate"] is not None]
        block["macro_pass_rate"] = sum(rates) / len(rates) if rates else None
        block["n_unscored"] = sum(c["n_unscored"] for c in block["criteria"].values())
        block["n_missing"] = sum(c["n_missing"] for c in block["criteria"].values())

    reason = r"trim(regexp_extract(coalesce(r.error, ''), '^([^\n]{1,160})', 1))"
    for row in query(con, f"""{with_base}
            SELECT b.cohort, r.criterion,
                   CASE WHEN {reason} = '' THEN '(no reason recorded)' ELSE {reason} END AS reason,
                   count(*) AS n
            FROM base b JOIN ratings r USING (trial_id) WHERE r.verdict = 'UNSCORED'
            GROUP BY ALL ORDER BY 1, 2, n DESC, reason""", params):
        out[row["cohort"]]["criteria"][row["criterion"]]["unscored_reasons"].append(
            {"reason": row["reason"], "count": int(row["n"])}
        )
    for block in out.values():
        for c in block["criteria"].values():
            c["unscored_reasons"] = _top(c["unscored_reasons"], _TOP_REASONS, "reason")

    for row in query(con, f"""{with_base}
            SELECT cohort, least(floor(reward * {_REWARD_BINS}), {_REWARD_BINS - 1})::INTEGER AS bin, count(*) AS n
            FROM base WHERE reward BETWEEN 0 AND 1 GROUP BY ALL""", params):
        out[row["cohort"]]["histograms"]["reward"].append((int(row["bin"]), int(row["n"])))
    for block in out.values():
        counts = dict(block["histograms"]["reward"])
        block["histograms"]["reward"] = (
            [{"low": i / _REWARD_BINS, "high": (i + 1) / _REWARD_BINS, "count": counts.get(i, 0)}
             for i in range(_REWARD_BINS)] if counts else []
        )

    if criteria:
        for row in query(con, f"""{with_base}, per AS (
                    SELECT b.cohort, b.trial_id, count(r.criterion) FILTER (WHERE r.verdict = 'YES') AS passed
                    FROM base b LEFT JOIN ratings r USING (trial_id) GROUP BY ALL
                )
                SELECT cohort, passed, count(*) AS n FROM per GROUP BY ALL ORDER BY cohort, passed""", params):
            out[row["cohort"]]["histograms"]["criteria_passed"].append((int(row["passed"]), int(row["n"])))
        for block in out.values():
            counts = dict(block["histograms"]["criteria_passed"])
            block["histograms"]["criteria_passed"] = [
                {"passed": k, "count": counts.get(k, 0)} for k in range(len(criteria) + 1)
            ]

    for row in query(con, f"""{with_base}
            SELECT b.cohort, coalesce(r.judge_model, '(unknown)') AS model,
                   count(*) FILTER (WHERE NOT r.cached) AS calls,
                   count(*) FILTER (WHERE r.cached) AS cache_hits,
                   count(*) FILTER (WHERE r.verdict = 'UNSCORED') AS unscored,
                   count(*) FILTER (WHERE r.truncated) AS truncated,
                   sum(r.prompt_tokens) FILTER (WHERE NOT r.cached) AS prompt_tokens,
                   sum(r.completion_tokens) FILTER (WHERE NOT r.cached) AS completion_tokens,
                   sum(r.cost_usd) FILTER (WHERE NOT r.cached) AS cost_usd,
                   count(*) FILTER (WHERE NOT r.cached AND r.cost_usd IS NULL) AS unpriced_calls
            FROM base b JOIN ratings r USING (trial_id) WHERE r.source = 'judge'
            GROUP BY ALL ORDER BY 1, 2""", params):
        judge = out[row["cohort"]]["judge"]
        entry = {k: (int(row[k]) if row[k] is not None and k != "cost_usd" else row[k])
                 for k in ("calls", "cache_hits", "unscored", "truncated", "prompt_tokens",
                           "completion_tokens", "cost_usd", "unpriced_calls")}
        judge["models"][row["model"]] = entry
        for k, v in entry.items():
            if v is not None:
                judge[k] = (judge[k] or 0) + v
    return out


def _empty_judge() -> dict[str, Any]:
    return {"calls": 0, "cache_hits": 0, "unscored": 0, "truncated": 0, "prompt_tokens": None,
            "completion_tokens": None, "cost_usd": None, "unpriced_calls": 0, "models": {}}


def _stat(row: dict[str, Any], prefix: str, has_total: bool) -> dict[str, Any]:
    s = {k: row[f"{prefix}__{k}"] for k in ("n", "mean", "p50", "p95", "min", "max")}
    s["n"] = int(s["n"])
    if has_total:
        s["total"] = row[f"{prefix}__total"]
    return s


def _criterion(n_yes: int, n_no: int, n_unscored: int, n_trials: int) -> dict[str, Any]:
    n_rated = n_yes + n_no
    ci = wilson_interval(n_yes, n_rated)
    return {
        "n_yes": n_yes,
        "n_no": n_no,
        "n_unscored": n_unscored,
        "n_missing": max(0, n_trials - n_rated - n_unscored),
        "n_rated": n_rated,
        "pass_rate": n_yes / n_rated if n_rated else None,
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
        "unscored_reasons": [],
    }


def _top(items: list[dict[str, Any]], n: int, key: str) -> list[dict[str, Any]]:
    if len(items) <= n:
        return items
    rest = sum(i["count"] for i in items[n:])
    return items[:n] + [{key: f"(other, {len(items) - n} kinds)", "count": rest}]


def _notable(con: duckdb.DuckDBPyConnection, experiment: str) -> dict[str, list[dict[str, Any]]]:
    cols = "trial_id, task_name, epoch, reward, duration_seconds, cost_usd, error"
    params = [experiment]
    slowest = query(con, f"""SELECT {cols} FROM trials WHERE experiment = ? AND duration_seconds IS NOT NULL
                            ORDER BY duration_seconds DESC, trial_id LIMIT {_NOTABLE}""", params)
    costly = query(con, f"""SELECT {cols} FROM trials WHERE experiment = ? AND cost_usd IS NOT NULL
                           ORDER BY cost_usd DESC, trial_id LIMIT {_NOTABLE}""", params)
    failed = query(con, f"""SELECT {cols} FROM trials WHERE experiment = ? AND error IS NOT NULL
                           ORDER BY task_name, epoch, trial_id LIMIT {_FAILED_LISTED}""", params)
    for row in failed:
        err = row["error"] or ""
        row["error"] = err if len(err) <= 300 else err[:300] + "…"
    for rows in (slowest, costly):
        for row in rows:
            row["error"] = None if row["error"] is None else (row["error"][:120])
    return {"slowest": slowest, "most_expensive": costly, "failed": failed}
