"""The app's reads that the report layer has no function for, as SQL over the store's public views.

The experiments overview, one page of an experiment's trial table (sorted, filtered and
paginated in SQL, so 100,000 trials page as fast as 100) and the data version that pages poll
to notice new uploads and ratings. Every value from a request reaches SQL as a parameter;
sort keys and filters are looked up in fixed tables, never pasted into the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from atif.store import Store

__all__ = [
    "PAGE_SIZE",
    "SORTS",
    "VERDICT_FILTERS",
    "TrialQuery",
    "data_version",
    "experiment_names",
    "experiments_overview",
    "trial_page",
]

PAGE_SIZE = 50
"""Trials per page of the trial table."""

SORTS: dict[str, str] = {
    "task": "task_name",
    "epoch": "epoch",
    "reward": "reward",
    "cost": "cost_usd",
    "duration": "duration_seconds",
    "steps": "steps",
    "model": "model_name",
    "error": "error",
    "uploaded": "created_at",
}
"""Sort keys of the trial table -> columns of the ``trials`` view."""

VERDICT_FILTERS = ("YES", "NO", "UNSCORED", "none")
"""Verdicts a trial table can be filtered by (``none``: no rating for the criterion)."""

_ERROR_FILTERS = {"yes": "error IS NOT NULL", "no": "error IS NULL"}


def experiments_overview(store: Store, *, name: str = "", agent: str = "", model: str = "") -> list[dict[str, Any]]:
    """Every experiment with trials: counts, pass rate, reward, cost, duration, judge cost, last upload.

    ``name``, ``agent`` and ``model`` keep the experiments whose name, any agent name or any
    model name contains the text (case-insensitive).
    """
    return store.read(
        """
        WITH t AS (
            SELECT experiment, count(*) AS n_trials, count(error) AS n_errored, avg(reward) AS reward_mean,
                   sum(cost_usd) AS cost_total, avg(duration_seconds) AS duration_mean, max(created_at) AS last_upload,
                   string_agg(DISTINCT agent_name, ', ' ORDER BY agent_name) AS agents,
                   string_agg(DISTINCT model_name, ', ' ORDER BY model_name) AS models
            FROM trials GROUP BY experiment
        ), c AS (
            SELECT experiment, avg(yes_rate) AS macro_pass_rate, count(*) AS n_criteria
            FROM criterion_metrics GROUP BY experiment
        ), j AS (
            SELECT experiment, sum(cost_usd) AS judge_cost FROM judge_usage GROUP BY experiment
        )
        SELECT t.*, c.macro_pass_rate, coalesce(c.n_criteria, 0) AS n_criteria, j.judge_cost
        FROM t LEFT JOIN c USING (experiment) LEFT JOIN j USING (experiment)
        WHERE contains(lower(t.experiment), lower($name))
          AND ($agent = '' OR contains(lower(coalesce(t.agents, '')), lower($agent)))
          AND ($model = '' OR contains(lower(coalesce(t.models, '')), lower($model)))
        ORDER BY t.last_upload DESC, t.experiment
        """,
        {"name": name, "agent": agent, "model": model},
    )


def experiment_names(store: Store) -> list[str]:
    """Names of the experiments that hold trials, sorted."""
    return [r["experiment"] for r in store.read("SELECT DISTINCT experiment FROM trials ORDER BY 1")]


@dataclass(frozen=True, slots=True)
class TrialQuery:
    """What a request asks of the trial table; unknown values fall back to the defaults."""

    sort: str = "task"
    descending: bool = False
    text: str = ""
    criterion: str = ""
    verdict: str = ""
    error: str = ""
    page: int = 1
    criteria: tuple[str, ...] = field(default=())

    def normalised(self, criteria: list[str]) -> TrialQuery:
        """This query with values outside the known sort keys, criteria and filters dropped."""
        return TrialQuery(
            sort=self.sort if self.sort in SORTS else "task",
            descending=self.descending,
            text=self.text.strip()[:200],
            criterion=self.criterion if self.criterion in criteria else "",
            verdict=self.verdict if self.verdict in VERDICT_FILTERS and self.criterion in criteria else "",
            error=self.error if self.error in _ERROR_FILTERS else "",
            page=max(1, self.page),
            criteria=tuple(criteria),
        )


def trial_page(store: Store, experiment: str, q: TrialQuery) -> dict[str, Any]:
    """One page of the trial table: ``rows`` (with ``verdicts`` per criterion), ``total`` matching, ``pages``."""
    where = ["experiment = $experiment"]
    params: dict[str, Any] = {"experiment": experiment}
    if q.text:
        where.append("""(contains(lower(task_name), lower($text)) OR starts_with(trial_id, lower($text))
                         OR contains(lower(coalesce(error, '')), lower($text))
                         OR contains(lower(coalesce(model_name, '')), lower($text))
                         OR contains(lower(coalesce(agent_name, '')), lower($text)))""")
        params["text"] = q.text
    if q.error:
        where.append(_ERROR_FILTERS[q.error])
    if q.criterion and q.verdict:
        params["criterion"] = q.criterion
        if q.verdict == "none":
            where.append("trial_id NOT IN (SELECT trial_id FROM ratings WHERE experiment = $experiment "
                         "AND criterion = $criterion)")
        else:
            where.append("trial_id IN (SELECT trial_id FROM ratings WHERE experiment = $experiment "
                         "AND criterion = $criterion AND verdict = $verdict)")
            params["verdict"] = q.verdict
    cond = " AND ".join(where)
    total = store.read(f"SELECT count(*) AS n FROM trials WHERE {cond}", params)[0]["n"]
    pages = max(1, -(-int(total) // PAGE_SIZE))
    page = min(q.page, pages)
    direction = "DESC" if q.descending else "ASC"
    rows = store.read(
        f"""SELECT trial_id, task_name, epoch, reward, cost_usd, duration_seconds, steps, model_name, agent_name,
                   error, created_at
            FROM trials WHERE {cond}
            ORDER BY {SORTS[q.sort]} {direction} NULLS LAST, task_name, epoch, trial_id
            LIMIT {PAGE_SIZE} OFFSET {(page - 1) * PAGE_SIZE}""",
        params,
    )
    verdicts: dict[str, dict[str, str]] = {}
    if rows:
        for r in store.read(
            "SELECT trial_id, criterion, verdict, source FROM ratings "
            "WHERE trial_id IN (SELECT unnest($ids::VARCHAR[]))",
            {"ids": [r["trial_id"] for r in rows]},
        ):
            verdicts.setdefault(r["trial_id"], {})[r["criterion"]] = r["verdict"]
    for r in rows:
        mine = verdicts.get(r["trial_id"], {})
        r["verdicts"] = [mine.get(c) for c in q.criteria]
        r["passed"] = sum(1 for v in mine.values() if v == "YES")
    return {"rows": rows, "total": int(total), "page": page, "pages": pages}


def data_version(store: Store) -> str:
    """A value that changes whenever trials or ratings are added or replaced."""
    n_trials, last_trial, n_ratings, last_rating = store.read_one(
        "SELECT (SELECT count(*) FROM trials), (SELECT max(created_at) FROM trials), "
        "(SELECT count(*) FROM ratings), (SELECT max(created_at) FROM ratings)"
    )
    return f"{n_trials}.{last_trial}.{n_ratings}.{last_rating}"
