"""The read-only pages: experiments, experiment, trial, compare, calibration; the version endpoint.

Each handler reads the store through the report layer (``build_report``, ``compare``,
``calibrate``) or the app's own SQL (``atif.serve.queries``) and renders one template.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from atif.errors import NotFoundError, ReportError
from atif.report import (
    COHORT_KEYS,
    build_report,
    calibrate,
    compare,
    correct_with_own_labels,
    criteria_of,
    require_experiment,
    resolve_trial_id,
)
from atif.serve.queries import (
    PAGE_SIZE,
    SORTS,
    VERDICT_FILTERS,
    TrialQuery,
    experiment_names,
    experiments_overview,
    trial_page,
)
from atif.serve.render import render, url
from atif.serve.state import AppState
from atif.serve.trajectory import shape_trajectory
from atif.store import Store

__all__ = [
    "STEPS_PER_PART",
    "calibrate_page",
    "compare_page",
    "experiment_page",
    "experiment_summary",
    "experiments_page",
    "trial_context",
    "trial_page_view",
    "trial_raw",
    "version_endpoint",
]


def _state(request: Request) -> AppState:
    return request.app.state.atif


def page(request: Request, template: str, *, version: str, live: str = "reload", status: int = 200,
         **context: Any) -> HTMLResponse:
    """Render ``template`` inside the app's frame (navigation, live updates)."""
    st = _state(request)
    html = render(template, version=version, live=live, read_only=st.read_only, path=request.url.path,
                  **context)
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def experiments_page(request: Request) -> HTMLResponse:
    """Every experiment, filterable by name, agent and model."""
    q = request.query_params
    filters = {k: q.get(k, "").strip()[:200] for k in ("name", "agent", "model")}
    st = _state(request)
    with st.access.reading() as store:
        rows = experiments_overview(store, **filters)
        version = st.version(store)
    return page(request, "experiments.html", version=version, title="Experiments", rows=rows, filters=filters)


def experiment_page(request: Request) -> HTMLResponse:
    """One experiment: its trial table at once, and the summary (from the cache, or fetched by the page).

    The summary (``build_report``) reads every trial; the first request after new data would wait
    for it, so the page then carries a placeholder that its script fills from ``/experiment/summary``.
    """
    st = _state(request)
    q = request.query_params
    name = q.get("e", "")
    by = _cohort(q.get("by"))
    query = TrialQuery(sort=q.get("sort", "task"), descending=q.get("desc") == "1", text=q.get("q", ""),
                       criterion=q.get("criterion", ""), verdict=q.get("verdict", ""), error=q.get("error", ""),
                       page=max(1, _int(q.get("page")) or 1))
    with st.access.reading() as store:
        version = st.version(store)
        n_trials = require_experiment(store, name)
        report = st.peek(("report", name, by, version))
        criteria = report["criteria"] if report is not None else criteria_of(store, name)
        query = query.normalised(criteria)
        table = trial_page(store, name, query)
    return page(request, "experiment.html", version=version, title=f"Experiment {name}", experiment=name,
                n_trials=n_trials, criteria=criteria, report=report, q=query, table=table, sorts=list(SORTS),
                verdicts=VERDICT_FILTERS, page_size=PAGE_SIZE, **_summary_context(report, by))


def experiment_summary(request: Request) -> HTMLResponse:
    """The summary section of an experiment page (an HTML fragment), computed once per data version."""
    st = _state(request)
    name = request.query_params.get("e", "")
    by = _cohort(request.query_params.get("by"))
    with st.access.reading() as store:
        version = st.version(store)
        report = st.cached(("report", name, by, version),
                           lambda: correct_with_own_labels(store, build_report(store, name, by=by), name))
    html = render("_summary.html", experiment=name, report=report, **_summary_context(report, by))
    return HTMLResponse(html, headers={"cache-control": "no-store"})


def _cohort(value: str | None) -> str | None:
    return value if value in COHORT_KEYS else None


def _summary_context(report: dict[str, Any] | None, by: str | None) -> dict[str, Any]:
    s = report["summary"] if report is not None else {"histograms": {"reward": [], "criteria_passed": []}}
    return {"by": by, "cohort_keys": COHORT_KEYS,
            "reward_bins": [(f"{b['low']:.1f}", b["count"]) for b in s["histograms"]["reward"]],
            "passed_bins": [(str(b["passed"]), b["count"]) for b in s["histograms"]["criteria_passed"]]}


STEPS_PER_PART = 150
"""Steps of a trajectory shown on one page; longer trajectories are shown in parts."""


def trial_context(store: Store, trial_id: str, part: int = 0, at: int | None = None) -> dict[str, Any]:
    """A trial's record, the ``part`` of its shaped trajectory (the one holding step ``at``, if given),
    and its ratings with questions and reviewers.

    ``step_href(n)`` in the result links to root step ``n``, in this part or another.
    """
    t = store.trial(trial_id)
    questions = {c["label"]: c["question"] for c in store.experiment(t["experiment"])["criteria"]}
    ratings = []
    cited_by: dict[Any, list[str]] = {}
    for r in t["ratings"]:
        extra = _loads(r.get("raw_output")) if r.get("source") == "human" else None
        r["reviewer"] = extra.get("reviewer") if isinstance(extra, dict) else None
        r["replaced"] = extra.get("replaced") if isinstance(extra, dict) else None
        r["question"] = questions.get(r["criterion"])
        r["cited_steps"] = [n for n in (r.get("cited_steps") or []) if isinstance(n, int)]
        for n in r["cited_steps"]:
            cited_by.setdefault(n, []).append(r["criterion"])
        ratings.append(r)
    view = shape_trajectory(t["trajectory"])
    index = {s["step_id"]: i for i, s in enumerate(view["steps"])}
    parts = max(1, -(-len(view["steps"]) // STEPS_PER_PART))
    if at is not None and at in index:
        part = index[at] // STEPS_PER_PART
    part = min(max(0, part), parts - 1)
    lo, hi = part * STEPS_PER_PART, (part + 1) * STEPS_PER_PART
    shown = {**view, "steps": view["steps"][lo:hi], "subagents": view["subagents"] if part == parts - 1 else []}

    def step_href(n: Any) -> str:
        k = index[n] // STEPS_PER_PART if n in index else part
        return f"#step-{n}" if k == part else url(f"/trial/{t['trial_id']}", part=k) + f"#step-{n}"

    return {"trial": t, "view": shown, "ratings": ratings, "cited_by": cited_by, "step_ids": set(index),
            "step_href": step_href, "part": part, "parts": parts, "part_size": STEPS_PER_PART,
            "n_steps": len(view["steps"]), "has_trajectory": t["trajectory"] is not None,
            "stored_bytes": t["trajectory_bytes"] is not None}


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _loads(raw: Any) -> Any:
    if not isinstance(raw, str):
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def trial_page_view(request: Request) -> HTMLResponse:
    """One trial: the trajectory viewer beside the criteria panel (cited steps link to the steps)."""
    st = _state(request)
    with st.access.reading() as store:
        tid = resolve_trial_id(store, request.path_params["trial_id"])
        q = request.query_params
        ctx = trial_context(store, tid, part=_int(q.get("part")), at=_int(q.get("at")) if q.get("at") else None)
        version = st.version(store)
    t = ctx["trial"]
    return page(request, "trial.html", version=version, live="banner",
                title=f"{t['task_name']} · epoch {t['epoch']}", **ctx)


def trial_raw(request: Request) -> Response:
    """The trial's trajectory exactly as uploaded."""
    with _state(request).access.reading() as store:
        tid = resolve_trial_id(store, request.path_params["trial_id"])
        t = store.trials_by_id([tid])[tid]
        if t["trajectory_bytes"] is None:
            raise NotFoundError(f"trial {tid} has no stored trajectory")
        raw = t["trajectory_bytes"]
    return Response(raw, media_type="application/json",
                    headers={"content-disposition": f'inline; filename="{tid[:16]}.json"'})


def compare_page(request: Request) -> HTMLResponse:
    """Two experiments paired by task and epoch: criterion changes (McNemar), metric changes, flips."""
    q = request.query_params
    a, b = q.get("a", ""), q.get("b", "")
    st = _state(request)
    with st.access.reading() as store:
        version = st.version(store)
        names = experiment_names(store)
        result = None
        error = None
        if a and b:
            try:
                result = st.cached(("compare", a, b, version), lambda: compare(store, a, b, max_listed=500))
            except (ReportError, NotFoundError) as exc:
                error = str(exc)
    return page(request, "compare.html", version=version, title="Compare", names=names, a=a, b=b, result=result,
                error=error)


def calibrate_page(request: Request) -> HTMLResponse:
    """Judge vs human (or pre-computed) ratings per criterion, with links to each disagreement."""
    q = request.query_params
    e = q.get("e", "")
    ref = q.get("ref", "") or e  # by default, the labels of the experiment itself (the review queue's)
    against = q.get("against", "human") if q.get("against") in ("human", "precomputed") else "human"
    st = _state(request)
    with st.access.reading() as store:
        version = st.version(store)
        names = experiment_names(store)
        with_reference = [r["experiment"] for r in store.read(
            "SELECT DISTINCT experiment FROM ratings WHERE source = ? ORDER BY 1", [against])]
        result = None
        error = None
        if e and ref:
            try:
                result = st.cached(("calibrate", e, ref, against, version),
                                   lambda: calibrate(store, e, against=against, reference=ref, max_listed=500))
            except (ReportError, NotFoundError) as exc:
                error = str(exc)
    return page(request, "calibrate.html", version=version, title="Calibration", names=names,
                with_reference=with_reference, e=e, ref=ref, against=against, result=result, error=error)


def version_endpoint(request: Request) -> JSONResponse:
    """``{"version": ...}``: changes when trials or ratings are added; pages poll it."""
    return JSONResponse({"version": _state(request).version()}, headers={"cache-control": "no-store"})
