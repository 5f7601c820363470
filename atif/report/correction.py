"""Pass rates corrected for the judge's measured error (Rogan–Gladen), from a calibration result.

A judge with sensitivity ``Se`` (YES when the reference says YES) and specificity ``Sp`` (NO
when the reference says NO) reports a YES rate ``p`` whose expectation is
``π·Se + (1 − π)·(1 − Sp)`` for a true rate ``π``; solving for ``π`` gives the Rogan–Gladen
estimate ``(p + Sp − 1) / (Se + Sp − 1)``. Its interval (:func:`atif.report.stats.rogan_gladen_interval`)
carries the calibration sample's uncertainty as well as the experiment's, so a correction
learnt from 20 labels shows a wide interval. The correction assumes the calibration sample
is representative of the experiment's trials and that the criterion's ratings come from the
calibrated judge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atif.report.stats import rogan_gladen_interval
from atif.store import Store

__all__ = ["apply_correction", "correct_with_own_labels", "corrected_rate", "load_calibration"]


def corrected_rate(n_yes: int, n: int, calibration: dict[str, Any] | None, label: str) -> dict[str, Any]:
    """The corrected pass rate of ``label`` (``n_yes`` of ``n``), or why there is none."""
    crit = (calibration or {}).get("criteria", {}).get(label)
    if not crit or not crit.get("n_pairs"):
        return {"pass_rate": None, "reason": "no calibration data for this criterion"}
    m = crit["confusion"]
    base = {"kappa": crit.get("kappa"), "n_calibration": crit["n_pairs"]}
    if m["YES"]["YES"] + m["NO"]["YES"] == 0 or m["NO"]["NO"] + m["YES"]["NO"] == 0:
        return {**base, "pass_rate": None,
                "reason": "the calibration sample needs reference YES and NO ratings to measure both error rates"}
    est = rogan_gladen_interval(n_yes, n, m)
    if est is None:
        why = "no ratings to correct" if n == 0 else "the judge is no better than chance on the calibration sample"
        return {**base, "pass_rate": None, "reason": why}
    se = m["YES"]["YES"] / (m["YES"]["YES"] + m["NO"]["YES"])
    sp = m["NO"]["NO"] / (m["NO"]["NO"] + m["YES"]["NO"])
    return {**base, "pass_rate": est[0], "ci_low": est[1], "ci_high": est[2], "sensitivity": se, "specificity": sp}


def apply_correction(report: dict[str, Any], calibration: dict[str, Any]) -> dict[str, Any]:
    """Add ``corrected`` beside each criterion's raw pass rate (overall and per cohort), in place."""
    blocks = [report["summary"], *(c["summary"] for c in report.get("cohorts") or [])]
    for block in blocks:
        for label, c in block["criteria"].items():
            c["corrected"] = corrected_rate(c["n_yes"], c["n_rated"], calibration, label)
    report["calibration"] = {"against": calibration.get("against"), "reference": calibration.get("reference"),
                             "n_pairs": calibration.get("overall", {}).get("n_pairs")}
    return report


def load_calibration(store: Store, experiment: str, reference: str, *, against: str = "human") -> dict[str, Any]:
    """Calibration data for ``experiment``: a reference experiment or JSONL labels file (as ``calibrate``
    takes them), or a saved ``atif calibrate --format json`` result."""
    import orjson

    from atif.errors import InputError
    from atif.report.calibrate import calibrate

    path = Path(reference)
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise InputError(f"cannot read the calibration result: {exc}", path=str(path)) from None
        if not isinstance(data, dict) or data.get("kind") != "calibration" or not isinstance(data.get("criteria"), dict):
            raise InputError("not a calibration result (expected the JSON of `atif calibrate --format json`)",
                             path=str(path))
        return data
    is_file = path.suffix.lower() in (".jsonl", ".ndjson") or path.is_file()
    return calibrate(store, experiment, against=against, reference=None if is_file else reference,
                     reference_file=path if is_file else None)


def correct_with_own_labels(store: Store, report: dict[str, Any], experiment: str,
                            *, against: str = "human") -> dict[str, Any]:
    """``report`` with corrected pass rates when ``experiment`` holds its own ``against`` labels.

    The labels are those a reviewer gave in the experiment itself (each compared with the judge
    verdict it replaced, as ``atif calibrate -e EXP`` does). Without any, ``report`` is returned
    unchanged; otherwise a corrected copy, so a cached report stays as it was.
    """
    import copy

    from atif.errors import ReportError
    from atif.report.calibrate import calibrate

    try:
        cal = calibrate(store, experiment, against=against)
    except ReportError:  # no pair has both a judge verdict and a label: nothing to correct by
        return report
    if not any(c.get("n_pairs") for c in cal.get("criteria", {}).values()):
        return report
    return apply_correction(copy.deepcopy(report), cal)
