"""The review queue: which trial x criterion pair a reviewer labels next, and storing the label.

Order of the queue (pairs that already carry a ``human`` rating are done and left out):

0. **unscored**: no rating yet, or an UNSCORED one;
1. **low agreement**: judge verdicts from repeated samples or a panel whose votes disagree
   (``agreement`` below 1);
2. **judge / exact-check disagreements**: a judge verdict that contradicts the trial's exact
   checks, i.e. its ``function``/``match`` ratings or a reward of exactly 0 or 1 (judge YES on a
   trial that failed one, judge NO on a trial that passed all);
3. **calibration sample**: every other rated pair, in a random order that is the same for every
   reviewer and every run (an md5 of the pair), so any prefix of it is a random sample.

A label is a ``human`` rating (it takes precedence over every other source). Its ``reasoning``
is the reviewer's note; ``raw_output`` keeps JSON with the reviewer, the time, and the rating it
replaced, so the judge verdict of a labelled pair is never lost. A label is stored only when the
pair's rating is still the one the reviewer saw (:func:`pair_version`); otherwise it is refused
with :class:`StaleLabelError`. Pairs shown to one reviewer are claimed for a while so that two
reviewers labelling at once get different pairs.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from atif.errors import ConflictError, NotFoundError
from atif.store import Store

__all__ = ["TIERS", "Claims", "Pair", "StaleLabelError", "current_rating", "next_pair", "pair_version",
           "queue_progress", "review_criteria", "save_label"]

TIERS = {0: "unscored", 1: "low agreement", 2: "judge / exact-check disagreement", 3: "calibration sample"}
"""Queue tiers, in the order they are served."""

_CLAIM_SECONDS = 600.0


class StaleLabelError(ConflictError):
    """The pair's rating changed after the reviewer opened it; the label was not stored."""


@dataclass(frozen=True, slots=True)
class Pair:
    """One trial x criterion pair of the queue."""

    trial_id: str
    criterion: str
    task_name: str
    epoch: int
    tier: int
    position: int
    """0-based position in the reviewer's queue."""
    remaining: int
    """How many pairs the reviewer's queue holds."""

    @property
    def key(self) -> str:
        """``trial_id/criterion``: the pair's id in forms and claims."""
        return f"{self.trial_id}/{self.criterion}"


class Claims:
    """Pairs recently shown to a reviewer session; other sessions skip them for a while."""

    def __init__(self, seconds: float = _CLAIM_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._by_pair: dict[str, tuple[str, float]] = {}
        self._skipped: dict[str, set[str]] = {}

    def claim(self, session: str, key: str) -> None:
        """Give ``key`` to ``session`` (and release what it held before)."""
        with self._lock:
            self._expire()
            for k in [k for k, (s, _) in self._by_pair.items() if s == session]:
                del self._by_pair[k]
            self._by_pair[key] = (session, time.monotonic() + self.seconds)

    def release(self, key: str) -> None:
        """Free ``key`` (it was labelled)."""
        with self._lock:
            self._by_pair.pop(key, None)

    def skip(self, session: str, key: str) -> None:
        """Move ``key`` behind everything else in ``session``'s queue."""
        with self._lock:
            self._skipped.setdefault(session, set()).add(key)
            if self._by_pair.get(key, ("", 0.0))[0] == session:
                del self._by_pair[key]

    def held_by_others(self, session: str) -> list[str]:
        """Pairs claimed by other sessions right now."""
        with self._lock:
            self._expire()
            return [k for k, (s, _) in self._by_pair.items() if s != session]

    def skipped(self, session: str) -> list[str]:
        """Pairs ``session`` skipped."""
        with self._lock:
            return sorted(self._skipped.get(session, ()))

    def _expire(self) -> None:
        now = time.monotonic()
        for k in [k for k, (_, until) in self._by_pair.items() if until < now]:
            del self._by_pair[k]


def review_criteria(store: Store, experiment: str) -> list[dict[str, Any]]:
    """The criteria a reviewer can label in ``experiment``: label and question, in file order.

    Criteria defined by a criteria file come first; labels known only from ratings follow,
    with no question.
    """
    criteria = [{"label": c["label"], "question": c["question"]}
                for c in store.experiment(experiment)["criteria"] if c.get("origin", "file") == "file"]
    known = {c["label"] for c in criteria}
    for r in store.read("SELECT DISTINCT criterion FROM ratings WHERE experiment = ? ORDER BY 1", [experiment]):
        if r["criterion"] not in known:
            criteria.append({"label": r["criterion"], "question": None})
    return criteria


_QUEUE = """
    WITH t AS (SELECT trial_id, task_name, epoch, reward FROM trials WHERE experiment = $experiment),
    c AS (SELECT unnest($labels::VARCHAR[]) AS criterion),
    r AS (SELECT trial_id, criterion, verdict, source, agreement FROM ratings WHERE experiment = $experiment),
    x AS (SELECT trial_id, bool_or(verdict = 'NO') AS any_no FROM ratings
          WHERE experiment = $experiment AND source IN ('function', 'match') AND verdict IN ('YES', 'NO')
          GROUP BY trial_id),
    p AS (
        SELECT t.trial_id, c.criterion, t.task_name, t.epoch,
               CASE WHEN r.verdict IS NULL OR r.verdict = 'UNSCORED' THEN 0
                    WHEN r.source = 'judge' AND r.agreement < 1 THEN 1
                    WHEN r.source = 'judge' AND (
                        (r.verdict = 'YES' AND (coalesce(x.any_no, false) OR t.reward = 0))
                        OR (r.verdict = 'NO' AND (x.any_no = false OR (x.any_no IS NULL AND t.reward = 1)))) THEN 2
                    ELSE 3 END AS tier,
               (t.trial_id || chr(31) || c.criterion) AS k
        FROM t CROSS JOIN c
        LEFT JOIN r ON r.trial_id = t.trial_id AND r.criterion = c.criterion
        LEFT JOIN x ON x.trial_id = t.trial_id
        WHERE r.source IS DISTINCT FROM 'human'
    ),
    q AS (SELECT * FROM p WHERE k NOT IN (SELECT unnest($held::VARCHAR[])))
    SELECT trial_id, criterion, task_name, epoch, tier, count(*) OVER () AS remaining
    FROM q
    ORDER BY k IN (SELECT unnest($skipped::VARCHAR[])), tier,
             CASE WHEN tier = 0 THEN task_name END, CASE WHEN tier = 0 THEN epoch END, md5(k)
    LIMIT 1 OFFSET $position
"""


def _k(key: str) -> str:
    trial_id, _, criterion = key.partition("/")
    return f"{trial_id}\x1f{criterion}"


def next_pair(store: Store, experiment: str, labels: list[str], *, position: int = 0,
              held: list[str] = (), skipped: list[str] = ()) -> Pair | None:  # type: ignore[assignment]
    """The pair at ``position`` of the queue, leaving out ``held`` pairs and putting ``skipped`` ones last."""
    if not labels:
        return None
    rows = store.read(_QUEUE, {"experiment": experiment, "labels": labels, "held": [_k(k) for k in held],
                               "skipped": [_k(k) for k in skipped], "position": max(0, position)})
    if not rows:
        return None
    r = rows[0]
    return Pair(r["trial_id"], r["criterion"], r["task_name"], int(r["epoch"]), int(r["tier"]), max(0, position),
                int(r["remaining"]))


def queue_progress(store: Store, experiment: str, labels: list[str]) -> dict[str, int]:
    """``{"pairs": trials x criteria, "labelled": pairs with a human rating}`` of ``experiment``."""
    (n_trials,) = store.read_one("SELECT count(*) FROM trials WHERE experiment = ?", [experiment])
    (labelled,) = store.read_one(
        "SELECT count(*) FROM ratings WHERE experiment = ? AND source = 'human' "
        "AND criterion IN (SELECT unnest(?::VARCHAR[]))", [experiment, labels])
    return {"pairs": int(n_trials) * len(labels), "labelled": int(labelled)}


def current_rating(store: Store, trial_id: str, criterion: str) -> dict[str, Any] | None:
    """The stored rating of a pair (from the ``ratings`` view), or None."""
    rows = store.read(
        "SELECT verdict, source, reasoning, judge_model, cited_steps, error, created_at::VARCHAR AS created_at "
        "FROM ratings WHERE trial_id = ? AND criterion = ?", [trial_id, criterion])
    return rows[0] if rows else None


def pair_version(rating: dict[str, Any] | None) -> str:
    """A short token that changes whenever the pair's rating does."""
    if rating is None:
        return "none"
    fields = [rating.get(k) for k in ("source", "verdict", "created_at", "reasoning", "judge_model")]
    return hashlib.sha256(orjson.dumps(fields, default=str)).hexdigest()[:16]


def save_label(store: Store, trial_id: str, criterion: str, verdict: str, *, version: str, reviewer: str,
               note: str | None) -> dict[str, Any] | None:
    """Store a reviewer's label as a ``human`` rating; return the rating it replaced (or None).

    Refused with :class:`StaleLabelError` when the pair's rating is no longer the one of
    ``version``. The caller holds the store for the whole call, so no write slips in between.
    """
    if verdict not in ("YES", "NO"):
        raise ConflictError(f"a label is YES or NO, got {verdict!r}")
    if not store.read("SELECT 1 FROM trials WHERE trial_id = ?", [trial_id]):
        raise NotFoundError(f"no trial {trial_id!r}")
    old = current_rating(store, trial_id, criterion)
    if pair_version(old) != version:
        raise StaleLabelError(_stale_message(old))
    record = {
        "reviewer": reviewer,
        "labelled_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "replaced": {k: old[k] for k in ("verdict", "source", "judge_model", "reasoning", "cited_steps")}
        if old is not None else None,
    }
    store.save_rating(trial_id, criterion, verdict, source="human", reasoning=note or None, judge_model=None,
                      raw_output=orjson.dumps(record, default=str).decode())
    return old


def _stale_message(now: dict[str, Any] | None) -> str:
    if now is None:
        return "this pair's rating was removed after you opened it; your label was not stored — look again"
    who = "a reviewer" if now["source"] == "human" else f"a {now['source']} rating"
    return (f"this pair changed after you opened it ({who} set {now['verdict']} at {now['created_at']}); "
            "your label was not stored — look at it again")
