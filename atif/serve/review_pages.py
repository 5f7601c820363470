"""The review pages: the queue (GET) and storing a label (POST, CSRF-checked).

Registered only when the app may write. The judge's verdict on the pair under review is not
in the page at all until the reviewer has answered; the page after the answer shows it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from atif.serve.pages import page, trial_context
from atif.serve.queries import experiment_names
from atif.serve.render import url
from atif.serve.review import (
    TIERS,
    StaleLabelError,
    current_rating,
    next_pair,
    pair_version,
    queue_progress,
    review_criteria,
    save_label,
)
from atif.serve.security import check_csrf, csrf_token
from atif.serve.state import AppState

__all__ = ["label_endpoint", "review_page"]

_MAX_FORM_BYTES = 64 * 1024
_MAX_NOTE = 5000
_MAX_REVIEWER = 100


def _state(request: Request) -> AppState:
    return request.app.state.atif


def _session(request: Request) -> str:
    return str(request.scope.get("state", {}).get("session", ""))


def _int(value: str | None, default: int = 0) -> int:
    try:
        return max(0, int(value or default))
    except ValueError:
        return default


def review_page(request: Request) -> HTMLResponse:
    """The next pair of the queue for this browser, with the trajectory and the question."""
    st = _state(request)
    q = request.query_params
    e = q.get("e", "")
    position = _int(q.get("pos"))
    session = _session(request)
    if q.get("skip"):
        st.claims.skip(session, q["skip"])
    with st.access.reading() as store:
        version = st.version(store)
        if not e:
            return page(request, "review_start.html", version=version, title="Review", names=experiment_names(store))
        criteria = review_criteria(store, e)
        labels = [c["label"] for c in criteria]
        pair = next_pair(store, e, labels, position=position, held=st.claims.held_by_others(session),
                         skipped=st.claims.skipped(session))
        progress = queue_progress(store, e, labels)
        answered = _answered(store, q.get("done", ""))
        ctx: dict[str, Any] = {}
        if pair is not None:
            st.claims.claim(session, pair.key)
            ctx = trial_context(store, pair.trial_id)
            ctx["pair_version"] = pair_version(current_rating(store, pair.trial_id, pair.criterion))
    question = next((c["question"] for c in criteria if pair is not None and c["label"] == pair.criterion), None)
    return page(request, "review.html", version=version, live="banner", title=f"Review {e}", experiment=e,
                pair=pair, question=question, progress=progress, tiers=TIERS, answered=answered,
                csrf=csrf_token(st.secret, session), reviewer=st.reviewers.get(session, st.reviewer), **ctx)


def _answered(store: Any, key: str) -> dict[str, Any] | None:
    """The label just stored for ``trial_id/criterion`` and the rating it replaced, for the next page."""
    trial_id, _, criterion = key.partition("/")
    if not trial_id or not criterion:
        return None
    rows = [r for r in trial_context(store, trial_id)["ratings"] if r["criterion"] == criterion] \
        if store.read("SELECT 1 FROM trials WHERE trial_id = ?", [trial_id]) else []
    if not rows or rows[0]["source"] != "human":
        return None
    return {"trial_id": trial_id, "criterion": criterion, "verdict": rows[0]["verdict"],
            "reviewer": rows[0]["reviewer"], "replaced": rows[0]["replaced"]}


async def label_endpoint(request: Request) -> Response:
    """Store a label (YES/NO) for one pair; refuse a bad CSRF token or a pair that changed meanwhile."""
    st = _state(request)
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return _refused(request, 413, "the form is too large")
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    session = _session(request)
    if not check_csrf(st.secret, session, form.get("csrf")):
        return _refused(request, 403, "the form's CSRF token is missing or wrong; reload the review page")
    e = form.get("e", "")
    trial_id, criterion = form.get("trial_id", ""), form.get("criterion", "")
    verdict = form.get("verdict", "")
    if verdict not in ("YES", "NO") or not trial_id or not criterion:
        return _refused(request, 400, "a label needs a trial, a criterion and a verdict of YES or NO")
    reviewer = (form.get("reviewer", "").strip() or st.reviewer)[:_MAX_REVIEWER]
    note = form.get("note", "").strip()[:_MAX_NOTE] or None
    st.reviewers[session] = reviewer

    def store_it() -> None:
        with st.access.writing() as store:
            save_label(store, trial_id, criterion, verdict, version=form.get("version", ""), reviewer=reviewer,
                       note=note)

    key = f"{trial_id}/{criterion}"
    try:
        await run_in_threadpool(store_it)
    except StaleLabelError as exc:
        return _refused(request, 409, str(exc), back=url("/review", e=e, pos=form.get("pos")))
    st.claims.release(key)
    return RedirectResponse(url("/review", e=e, pos=form.get("pos"), done=key), status_code=303)


def _refused(request: Request, status: int, message: str, back: str | None = None) -> HTMLResponse:
    return page(request, "error.html", version="", live="off", status=status, title="Label not stored",
                message=message, back=back)
