"""Experiment summaries (``build_report``) computed in SQL over the store's public views.

Every figure is a ``GROUP BY`` in the store over ``trials`` and ``ratings``; Python only
shapes the result and computes Wilson intervals from counts. That keeps a 100,000-trial
experiment well under a few seconds.
"""

from __future__ import annotations

from typing import Any

from atif.errors import ReportError
from atif.report.reading import clean, criteria_of, require_experiment
from atif.report.stats import wilson_interval
from atif.store import Store

__all__ = ["COHORT_KEYS", "LOW_AGREEMENT", "REPORT_SCHEMA_VERSION", "build_report"]

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

LOW_AGREEMENT = 0.75
"""Ratings whose votes agree less than this (samples or panels) are listed as low-agreement."""

_TOP_CAUSES = 10
_TOP_REASONS = 5
_NOTABLE = 5
_FAILED_LISTED = 20
_REWARD_BINS = 10


def _base_cte(by: str | None) -> str:
    return f"""
        base AS (
            SELECT trial_id, task_name, epoch, reward, rewards, cost_usd, duration_seconds, steps,
                   input_tokens, output_tokens, cached_tokens, error, agent_name, model_name,
                   {_COHORT_EXPR[by]} AS cohort
            FROM trials WHERE experiment = $experiment
        )"""


def build_report(store: Store, experiment: str, *, by: str | None = None,
                 calibration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Summarise ``experiment``: the whole of it and, with ``by``, each cohort.

    ``by`` is ``"tag"`` (a trial counts in each of its task's tags), ``"agent"`` or
    ``"model"``. The result is JSON-ready and stable: the layout is documented in
    docs/reports.md and versioned by ``schema_version``. Raises ``NotFoundError`` when
    the experiment has no trials, ``ReportError`` for an unknown ``by``. With ``calibration``
    (a ``calibrate`` result), each criterion also gets its pass rate ``corrected`` for the
    judge's measured error (:mod:`atif.report.correction`).
    """
    if by is not None and by not in COHORT_KEYS:
        raise ReportError(f"unknown cohort key {by!r}; expected one of {', '.join(COHORT_KEYS)}")
    require_experiment(store, experiment)
    criteria = criteria_of(store, experiment)
    overall = _summaries(store, experiment, None, criteria)["all"]
    report: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": "report",
        "experiment": experiment,
        "criteria": criteria,
        "by": by,
        "summary": overall,
        "cohorts": [],
        "notable": _notable(store, experiment),
        "low_agreement": _low_agreement(store, experiment),
        "thresholds": _thresholds(store, experiment),
    }
    if by is not None:
        per = _summaries(store, experiment, by, criteria)
        report["cohorts"] = [{"value": k, "summary": per[k]} for k in sorted(per)]
    if calibration is not None:
        from atif.report.correction import apply_correction

        apply_correction(report, calibration)
    return clean(report)


def _thresholds(store: Store, experiment: str) -> dict[str, dict[str, Any]]:
    """The p_yes threshold of each criterion that has one: the criteria file's, or one fitted from labels."""
    out = {}
    for c in store.experiment(experiment)["criteria"]:
        if c.get("threshold") is None:
            continue
        explicit = c["config"].get("threshold") is not None
        out[c["label"]] = {"threshold": c["threshold"], "from": "file" if explicit else "fitted",
                           "fitted_threshold": c.get("fitted_threshold"), "fitted": c.get("fitted")}
    return out


def _summaries(store: Store, experiment: str, by: str | None,
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
    for row in store.read(f"{with_base} SELECT cohort, {', '.join(parts)} FROM base GROUP BY cohort", params):
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
    for row in store.read(f"""{with_base}
            SELECT cohort, CASE WHEN {cause} = '' THEN '(empty)' ELSE {cause} END AS cause, count(*) AS n
            FROM base WHERE error IS NOT NULL GROUP BY ALL ORDER BY cohort, n DESC, cause""", params):
        out[row["cohort"]]["errors"].append({"cause": row["cause"], "count": int(row["n"])})
    for block in out.values():
        block["errors"] = _top(block["errors"], _TOP_CAUSES, "cause")

    for row in store.read(f"""{with_base}, e AS (
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

    for row in store.read(f"""{with_base}
            SELECT b.cohort, r.criterion,
                   count(*) FILTER (WHERE r.verdict = 'YES') AS n_yes,
                   count(*) FILTER (WHERE r.verdict = 'NO') AS n_no,
                   count(*) FILTER (WHERE r.verdict = 'UNSCORED') AS n_unscored,
                   count(r.agreement) AS n_voted, avg(r.agreement) AS mean_agreement,
                   count(*) FILTER (WHERE r.agreement < $low) AS n_low_agreement
            FROM base b JOIN ratings r USING (trial_id) GROUP BY ALL""", {**params, "low": LOW_AGREEMENT}):
        block = out[row["cohort"]]
        block["criteria"][row["criterion"]] = _criterion(
            int(row["n_yes"]), int(row["n_no"]), int(row["n_unscored"]), block["n_trials"]
        )
        block["criteria"][row["criterion"]]["agreement"] = {
            "n_voted": int(row["n_voted"]), "mean": row["mean_agreement"], "n_low": int(row["n_low_agreement"])}
    for block in out.values():
        for label in criteria:
            block["criteria"].setdefault(label, _criterion(0, 0, 0, block["n_trials"]))
        rates = [c["pass_rate"] for c in block["criteria"].values() if c["pass_rate"] is not None]
        block["macro_pass_rate"] = sum(rates) / len(rates) if rates else None
        block["n_unscored"] = sum(c["n_unscored"] for c in block["criteria"].values())
        block["n_missing"] = sum(c["n_missing"] for c in block["criteria"].values())

    reason = r"trim(regexp_extract(coalesce(r.error, ''), '^([^\n]{1,160})', 1))"
    for row in store.read(f"""{with_base}
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

    for row in store.read(f"""{with_base}
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
        for row in store.read(f"""{with_base}, per AS (
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

    for row in store.read(f"""{with_base}
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


def _low_agreement(store: Store, experiment: str) -> list[dict[str, Any]]:
    """Ratings decided by votes that agreed less than ``LOW_AGREEMENT`` (ties included), worst first."""
    return store.read(f"""
        SELECT r.trial_id, r.task_name, r.criterion, r.verdict, r.agreement, r.votes
        FROM ratings r WHERE r.experiment = ? AND r.agreement < ?
        ORDER BY r.agreement, r.task_name, r.criterion LIMIT {_FAILED_LISTED}""", [experiment, LOW_AGREEMENT])


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
        "agreement": {"n_voted": 0, "mean": None, "n_low": 0},
    }


def _top(items: list[dict[str, Any]], n: int, key: str) -> list[dict[str, Any]]:
    if len(items) <= n:
        return items
    rest = sum(i["count"] for i in items[n:])
    return items[:n] + [{key: f"(other, {len(items) - n} kinds)", "count": rest}]


def _notable(store: Store, experiment: str) -> dict[str, list[dict[str, Any]]]:
    cols = "trial_id, task_name, epoch, reward, duration_seconds, cost_usd, error"
    params = [experiment]
    slowest = store.read(f"""SELECT {cols} FROM trials WHERE experiment = ? AND duration_seconds IS NOT NULL
                            ORDER BY duration_seconds DESC, trial_id LIMIT {_NOTABLE}""", params)
    costly = store.read(f"""SELECT {cols} FROM trials WHERE experiment = ? AND cost_usd IS NOT NULL
                           ORDER BY cost_usd DESC, trial_id LIMIT {_NOTABLE}""", params)
    failed = store.read(f"""SELECT {cols} FROM trials WHERE experiment = ? AND error IS NOT NULL
                           ORDER BY task_name, epoch, trial_id LIMIT {_FAILED_LISTED}""", params)
    for row in failed:
        err = row["error"] or ""
        row["error"] = err if len(err) <= 300 else err[:300] + "…"
    for rows in (slowest, costly):
        for row in rows:
            row["error"] = None if row["error"] is None else (row["error"][:120])
    return {"slowest": slowest, "most_expensive": costly, "failed": failed}
