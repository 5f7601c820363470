"""Judge calibration: how often the judge agrees with human or pre-computed ratings.

The store keeps one rating per (trial, criterion), the one of highest precedence, so a
judge verdict and a human verdict on the same trial cannot both live in one experiment.
The reference therefore comes from elsewhere:

- a **reference experiment** holding the same task attempts with ``human`` (or
  ``precomputed``) ratings, paired with the judged experiment by task and epoch exactly
  as ``atif compare`` pairs trials; or
- a **reference file** (JSONL), one ``{"task_name", "epoch", "criterion", "rating"}`` per
  line (``epoch`` defaults to 1; an optional ``source`` must match ``against``).

Only ``judge`` ratings of the experiment are calibrated; UNSCORED judge verdicts are left
out and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from atif.errors import InputError, ParseError, ReportError
from atif.report.reading import clean, pairs_cte, require_experiment
from atif.report.stats import binary_metrics, cohen_kappa
from atif.store import Store

__all__ = ["CALIBRATION_SCHEMA_VERSION", "REFERENCE_SOURCES", "calibrate", "calibration_pairs", "load_reference_file"]

CALIBRATION_SCHEMA_VERSION = "1"
"""Version of the JSON calibration layout (docs/reports.md)."""

REFERENCE_SOURCES = ("human", "precomputed")
"""Rating sources a judge can be calibrated against."""

_VERDICTS = {
    "yes": "YES", "y": "YES", "true": "YES", "pass": "YES", "passed": "YES", "1": "YES",
    "no": "NO", "n": "NO", "false": "NO", "fail": "NO", "failed": "NO", "0": "NO",
}


def _verdict(value: Any) -> str | None:
    if isinstance(value, bool):
        return "YES" if value else "NO"
    if isinstance(value, (str, int)):
        return _VERDICTS.get(str(value).strip().lower())
    return None


def load_reference_file(path: str | Path, against: str) -> dict[tuple[str, int, str], str]:
    """Read a JSONL reference file into ``{(task_name, epoch, criterion): "YES" | "NO"}``.

    Lines whose ``source`` is given and differs from ``against`` are skipped. A malformed
    line raises ``InputError`` naming the line; so does a repeated (task, epoch, criterion).
    """
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read reference file: {exc.strerror}", path=str(p)) from None
    out: dict[tuple[str, int, str], str] = {}
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {i}"
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"{where}: not JSON ({exc})", path=str(p)) from None
        if not isinstance(row, dict):
            raise InputError(f"{where}: expected an object with task_name, epoch, criterion, rating", path=str(p))
        if row.get("source") not in (None, against):
            continue
        task, criterion = row.get("task_name"), row.get("criterion", row.get("label"))
        epoch = row.get("epoch", 1)
        if not isinstance(task, str) or not task:
            raise InputError(f"{where}: `task_name` must be a non-empty string", path=str(p))
        if not isinstance(criterion, str) or not criterion:
            raise InputError(f"{where}: `criterion` must be a non-empty string", path=str(p))
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise InputError(f"{where}: `epoch` must be an integer >= 1", path=str(p))
        verdict = _verdict(row.get("rating", row.get("verdict")))
        if verdict is None:
            raise InputError(f"{where}: `rating` must be YES or NO, got {row.get('rating')!r}", path=str(p))
        key = (task, epoch, criterion)
        if key in out:
            raise InputError(f"{where}: a second rating for task {task!r} epoch {epoch} criterion {criterion!r}",
                             path=str(p))
        out[key] = verdict
    return out


def calibration_pairs(
    store: Store,
    experiment: str,
    *,
    against: str = "human",
    reference: str | None = None,
    reference_file: str | Path | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The (judge verdict, reference verdict) pairs :func:`calibrate` compares, and what the reference was.

    Each pair has ``trial_id``, ``task_name``, ``epoch``, ``criterion``, ``judge``, ``reference``,
    ``reasoning``, ``judge_model`` and the judge's ``p_yes`` (None when the judge gave no score),
    which is what ``atif calibrate --fit-threshold`` fits a threshold on.
    """
    if against not in REFERENCE_SOURCES:
        raise ReportError(f"--against {against!r}: expected one of {', '.join(REFERENCE_SOURCES)}")
    if reference is not None and reference_file is not None:
        raise ReportError("give one reference: an experiment with reference ratings, or a JSONL ratings file")
    if reference == experiment:
        reference = None
    require_experiment(store, experiment)

    pairs: list[dict[str, Any]]
    if reference is not None:
        require_experiment(store, reference)
        pairs = store.read(f"""
            WITH {pairs_cte()}
            SELECT p.c_id AS trial_id, p.task_name, p.epoch, rj.criterion, rj.verdict AS judge,
                   rr.verdict AS reference, rj.reasoning, rj.judge_model, rj.p_yes
            FROM pairs p
            JOIN ratings rj ON rj.trial_id = p.c_id AND rj.source = 'judge'
            JOIN ratings rr ON rr.trial_id = p.b_id AND rr.criterion = rj.criterion AND rr.source = $against
                           AND rr.verdict IN ('YES', 'NO')
            ORDER BY p.task_name, p.epoch, rj.criterion, p.c_id""",
            {"baseline": reference, "candidate": experiment, "against": against})
        ref_desc: dict[str, Any] = {"experiment": reference}
    elif reference_file is None:
        # The latest judge verdict each `against` rating replaced, in this very experiment.
        pairs = store.read("""
            WITH judged AS (
                SELECT trial_id, criterion, verdict, reasoning, judge_model, p_yes,
                       row_number() OVER (PARTITION BY trial_id, criterion ORDER BY replaced_at DESC) AS n
                FROM replaced_ratings
                WHERE experiment = $experiment AND source = 'judge'
            )
            SELECT r.trial_id, t.task_name, t.epoch, r.criterion, j.verdict AS judge, r.verdict AS reference,
                   j.reasoning, j.judge_model, j.p_yes
            FROM ratings r
            JOIN trials t USING (trial_id)
            JOIN judged j ON j.trial_id = r.trial_id AND j.criterion = r.criterion AND j.n = 1
            WHERE r.experiment = $experiment AND r.source = $against AND r.verdict IN ('YES', 'NO')
            ORDER BY t.task_name, t.epoch, r.criterion, r.trial_id""",
            {"experiment": experiment, "against": against})
        ref_desc = {"experiment": experiment, "replaced_judge_ratings": True}
    else:
        ref = load_reference_file(reference_file, against)
        judged = store.read("""
            SELECT r.trial_id, t.task_name, t.epoch, r.criterion, r.verdict AS judge, r.reasoning, r.judge_model, r.p_yes
            FROM ratings r JOIN trials t USING (trial_id)
            WHERE r.experiment = ? AND r.source = 'judge'
            ORDER BY t.task_name, t.epoch, r.criterion, r.trial_id""", [experiment])
        seen: dict[tuple[str, int, str], int] = {}
        for row in judged:
            k = (row["task_name"], row["epoch"], row["criterion"])
            seen[k] = seen.get(k, 0) + 1
        pairs = []
        for row in judged:
            k = (row["task_name"], row["epoch"], row["criterion"])
            if k in ref and seen[k] == 1:
                pairs.append({**row, "reference": ref[k]})
        ref_desc = {"file": str(reference_file), "n_ratings": len(ref),
                    "n_ambiguous": sum(1 for k, n in seen.items() if n > 1 and k in ref)}

    return pairs, ref_desc


def calibrate(
    store: Store,
    experiment: str,
    *,
    against: str = "human",
    reference: str | None = None,
    reference_file: str | Path | None = None,
    max_listed: int | None = None,
) -> dict[str, Any]:
    """Agreement of ``experiment``'s judge ratings with ``against`` ratings of a reference.

    The reference is ``reference`` (an experiment whose trials pair by task and epoch),
    ``reference_file`` (JSONL, see the module docstring), or, when neither is given (or
    ``reference`` is ``experiment`` itself), the experiment's own ``against`` ratings: each is
    compared with the judge verdict it replaced (the ``replaced_ratings`` view), as reviewers
    label pairs the judge rated. Returns agreement, Cohen's kappa and the confusion matrix
    (rows: judge, columns: reference) per criterion and overall, ``metrics`` (TPR, TNR,
    precision, recall, F1, balanced accuracy and kappa, each with a 95% interval; YES is the
    positive class), and the disagreeing trials (all, or the first ``max_listed``).
    """
    pairs, ref_desc = calibration_pairs(store, experiment, against=against, reference=reference,
                                        reference_file=reference_file)
    scored = [p for p in pairs if p["judge"] in ("YES", "NO")]
    n_judge_unscored = len(pairs) - len(scored)
    if not scored:
        raise ReportError(
            f"no trial x criterion of {experiment!r} has both a judge verdict and a {against} rating "
            f"in the reference" + (f" ({n_judge_unscored} judge verdicts were UNSCORED)" if n_judge_unscored else "")
        )

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        matrix = {"YES": {"YES": 0, "NO": 0}, "NO": {"YES": 0, "NO": 0}}
        for r in rows:
            matrix[r["judge"]][r["reference"]] += 1
        agree = matrix["YES"]["YES"] + matrix["NO"]["NO"]
        return {
            "n_pairs": len(rows),
            "agreement": agree / len(rows) if rows else None,
            "kappa": cohen_kappa(matrix),
            "confusion": matrix,
            "judge_yes_rate": (matrix["YES"]["YES"] + matrix["YES"]["NO"]) / len(rows) if rows else None,
            "reference_yes_rate": (matrix["YES"]["YES"] + matrix["NO"]["YES"]) / len(rows) if rows else None,
            "metrics": binary_metrics(matrix),
        }

    by_criterion: dict[str, list[dict[str, Any]]] = {}
    for r in scored:
        by_criterion.setdefault(r["criterion"], []).append(r)
    unscored_by: dict[str, int] = {}
    for r in pairs:
        if r["judge"] not in ("YES", "NO"):
            unscored_by[r["criterion"]] = unscored_by.get(r["criterion"], 0) + 1
    criteria = {}
    for label in sorted(set(by_criterion) | set(unscored_by)):
        criteria[label] = {**summary(by_criterion.get(label, [])), "n_judge_unscored": unscored_by.get(label, 0)}
    disagreements = [
        {k: r[k] for k in ("trial_id", "task_name", "epoch", "criterion", "judge", "reference", "reasoning",
                           "judge_model")}
        for r in scored if r["judge"] != r["reference"]
    ]
    n_disagreements = len(disagreements)
    if max_listed is not None:
        disagreements = disagreements[:max_listed]
    return clean({
        "schema_version": CALIBRATION_SCHEMA_VERSION,
        "kind": "calibration",
        "experiment": experiment,
        "against": against,
        "reference": ref_desc,
        "overall": {**summary(scored), "n_judge_unscored": n_judge_unscored},
        "criteria": criteria,
        "n_disagreements": n_disagreements,
        "disagreements": disagreements,
    })
