"""CI gates: thresholds on an experiment, and no significant regression against a baseline.

A gate is a list of conditions, each checked and reported, so a failing CI job says
every reason at once. Unscored (and unrated) verdicts count as failures unless
``ignore_unscored``: a judge that could not decide must not let a change through.

``ReportError`` from this module always means the gate itself is malformed (unknown
criterion, threshold out of range); the CLI turns it into a usage error (exit 2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from atif.errors import ReportError
from atif.report.compare import paired_for_gate, trial_count
from atif.report.reading import clean
from atif.report.stats import bootstrap_counted_ci, mcnemar_exact
from atif.store import Store

__all__ = ["Condition", "GateResult", "gate", "parse_min_pass"]

ALL_CRITERIA = "*"
"""``--min-pass '*=0.8'`` applies the threshold to every criterion of the experiment."""


@dataclass(slots=True)
class Condition:
    """One checked condition of a gate."""

    name: str
    """What was checked, e.g. ``pass_rate[correct] >= 0.8``."""
    passed: bool
    """Whether the condition holds."""
    observed: float | None
    """The measured value (None when nothing could be measured, which fails)."""
    threshold: float
    """The limit the value was held to."""
    detail: str
    """One line explaining the figure (counts, interval, p-value)."""


@dataclass(slots=True)
class GateResult:
    """The outcome of ``gate``: passed when every condition holds."""

    experiment: str
    """The experiment gated."""
    passed: bool
    """True when every condition holds."""
    conditions: list[Condition] = field(default_factory=list)
    """Each condition, in the order given."""

    def failures(self) -> list[Condition]:
        """The conditions that do not hold."""
        return [c for c in self.conditions if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return clean({"schema_version": "1", "kind": "gate", **asdict(self)})


def parse_min_pass(spec: str) -> tuple[str, float]:
    """Parse ``CRITERION=RATE`` (rate in [0, 1]); ``ReportError`` when malformed."""
    label, sep, value = spec.rpartition("=")
    if not sep or not label.strip() or not value.strip():
        raise ReportError(f"--min-pass {spec!r}: expected CRITERION=RATE, e.g. correct=0.8")
    try:
        rate = float(value)
    except ValueError:
        raise ReportError(f"--min-pass {spec!r}: {value!r} is not a number") from None
    if not 0.0 <= rate <= 1.0:
        raise ReportError(f"--min-pass {spec!r}: rate {rate} is outside [0, 1]")
    return label.strip(), rate


def gate(
    store: Store,
    experiment: str,
    *,
    min_pass: dict[str, float] | None = None,
    min_reward: float | None = None,
    baseline: str | None = None,
    max_regression: float = 0.05,
    alpha: float = 0.05,
    ignore_unscored: bool = False,
    seed: int = 0,
    calibration: dict[str, Any] | None = None,
    min_kappa: float | None = None,
    corrected: bool = False,
    min_agreement: float | None = None,
) -> GateResult:
    """Check ``experiment`` against thresholds and, optionally, a baseline.

    - ``min_pass``: criterion label (or ``"*"`` for each criterion) -> minimum pass rate.
      The rate is YES over all trials, so unscored and unrated trials count as NO unless
      ``ignore_unscored`` (then YES over YES + NO).
    - ``min_reward``: minimum mean reward; trials without a reward count as 0 unless
      ``ignore_unscored`` (then they are left out).
    - ``baseline``: for each criterion rated in both experiments, fail when the paired pass
      rate drops by more than ``max_regression`` *and* McNemar's exact test gives
      p < ``alpha``; the mean reward fails likewise when it drops by more than
      ``max_regression`` and the ``1 - alpha`` paired bootstrap interval lies below 0.
      Candidate unscored verdicts count as NO unless ``ignore_unscored``; pairs whose
      baseline is unscored are left out.
    - ``calibration`` (a ``calibrate`` result) with ``corrected``: ``min_pass`` holds the pass
      rate corrected for the judge's measured error (Rogan–Gladen), not the raw one; a
      criterion without usable calibration data fails. With ``min_kappa``: each calibrated
      criterion of the experiment needs Cohen's kappa of at least that.
    - ``min_agreement``: each criterion judged by samples or panels needs the mean agreement
      of its votes to be at least that (a fraction in [0.5, 1]).

    Raises ``ReportError`` for a malformed gate, ``NotFoundError`` for an unknown experiment.
    """
    min_pass = dict(min_pass or {})
    if corrected and not min_pass:
        raise ReportError("--corrected applies to --min-pass thresholds; give at least one")
    if not min_pass and min_reward is None and baseline is None and min_kappa is None and min_agreement is None:
        raise ReportError("nothing to check: give --min-pass, --min-reward, --min-kappa, --min-agreement or --baseline")
    if min_agreement is not None and not 0.0 <= min_agreement <= 1.0:
        raise ReportError(f"--min-agreement {min_agreement} is outside [0, 1]")
    if (corrected or min_kappa is not None) and calibration is None:
        raise ReportError("--corrected and --min-kappa need calibration data (--calibration)")
    if min_kappa is not None and not -1.0 <= min_kappa <= 1.0:
        raise ReportError(f"--min-kappa {min_kappa} is outside [-1, 1]")
    if not 0.0 < alpha < 1.0:
        raise ReportError(f"--alpha {alpha} must be in (0, 1)")
    if max_regression < 0:
        raise ReportError(f"--max-regression {max_regression} must be >= 0")
    if min_reward is not None and math.isnan(min_reward):
        raise ReportError("--min-reward is not a number")
    for label, rate in min_pass.items():
        if not 0.0 <= rate <= 1.0:
            raise ReportError(f"--min-pass {label}={rate}: rate is outside [0, 1]")

    n_trials = trial_count(store, experiment)
    if baseline is not None:
        trial_count(store, baseline)
        paired = paired_for_gate(store, baseline, experiment, missing_as_zero=not ignore_unscored)
        verdicts = paired["sides"]["candidate"]
    else:
        verdicts = _verdict_counts(store, experiment)
    known = sorted(verdicts)
    unknown = [k for k in min_pass if k != ALL_CRITERIA and k not in known]
    if unknown:
        listed = ", ".join(known) if known else "none: the experiment has no ratings"
        raise ReportError(f"unknown criterion {unknown[0]!r} in --min-pass; criteria of {experiment!r}: {listed}")

    conditions: list[Condition] = []
    if min_pass:
        counts = {label: {"n_yes": c.get("YES", 0), "n_no": c.get("NO", 0), "n_unscored": c.get("UNSCORED", 0)}
                  for label, c in verdicts.items()}
        targets: dict[str, float] = {}
        if ALL_CRITERIA in min_pass:
            targets = {k: min_pass[ALL_CRITERIA] for k in known}
        targets.update({k: v for k, v in min_pass.items() if k != ALL_CRITERIA})
        for label, threshold in targets.items():
            if corrected:
                conditions.append(_corrected_condition(label, threshold, counts.get(label), n_trials,
                                                       ignore_unscored, calibration))
            else:
                conditions.append(_pass_condition(label, threshold, counts.get(label), n_trials, ignore_unscored))

    if min_kappa is not None:
        conditions += _kappa_conditions(known, min_kappa, calibration or {})

    if min_agreement is not None:
        conditions += _agreement_conditions(store, experiment, min_agreement)

    if min_reward is not None:
        n, n_reward, mean_reward = store.read_one(
            "SELECT count(*), count(reward), avg(reward) FROM trial_data WHERE experiment = ?", [experiment])
        if ignore_unscored:
            observed = mean_reward
            detail = f"mean over {n_reward} trials with a reward ({n - n_reward} without, ignored)"
        else:
            observed = (mean_reward or 0.0) * n_reward / n if n else None
            detail = f"mean over {n} trials ({n - n_reward} without a reward counted as 0)"
        ok = observed is not None and observed >= min_reward
        conditions.append(Condition(f"mean reward >= {min_reward:g}", ok, observed, min_reward,
                                    detail if observed is not None else "no trial has a reward"))

    if baseline is not None:
        conditions += _regressions(paired, baseline, max_regression, alpha, ignore_unscored, seed)

    return GateResult(experiment, all(c.passed for c in conditions), conditions)


def _verdict_counts(store: Store, experiment: str) -> dict[str, dict[str, int]]:
    """Per criterion rated in ``experiment``, its number of each verdict (read from the base tables, see compare)."""
    rows = store.read("""
        SELECT criterion, verdict, count(*) AS n
        FROM rating_data SEMI JOIN (SELECT trial_key FROM trial_data WHERE experiment = ?) t USING (trial_key)
        GROUP BY ALL""", [experiment])
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["criterion"], {})[r["verdict"]] = int(r["n"])
    return out


def _pass_condition(label: str, threshold: float, row: dict[str, Any] | None, n_trials: int,
                    ignore_unscored: bool) -> Condition:
    n_yes = int(row["n_yes"]) if row else 0
    n_no = int(row["n_no"]) if row else 0
    n_unscored = int(row["n_unscored"]) if row else 0
    n_missing = max(0, n_trials - n_yes - n_no - n_unscored)
    name = f"pass rate of {label} >= {threshold:g}"
    if ignore_unscored:
        n = n_yes + n_no
        detail = f"{n_yes}/{n} YES ({n_unscored} unscored and {n_missing} unrated ignored)"
    else:
        n = n_trials
        detail = f"{n_yes}/{n} YES ({n_unscored} unscored and {n_missing} unrated count as failures)"
    if n == 0:
        return Condition(name, False, None, threshold, "no scored ratings")
    observed = n_yes / n
    return Condition(name, observed >= threshold, observed, threshold, detail)


def _corrected_condition(label: str, threshold: float, row: dict[str, Any] | None, n_trials: int,
                         ignore_unscored: bool, calibration: dict[str, Any] | None) -> Condition:
    from atif.report.correction import corrected_rate

    n_yes = int(row["n_yes"]) if row else 0
    n = n_yes + (int(row["n_no"]) if row else 0) if ignore_unscored else n_trials
    name = f"corrected pass rate of {label} >= {threshold:g}"
    c = corrected_rate(n_yes, n, calibration, label)
    if c["pass_rate"] is None:
        return Condition(name, False, None, threshold, c["reason"])
    detail = (f"raw {n_yes}/{n} YES, corrected for the judge's error (sensitivity {c['sensitivity']:.3g}, "
              f"specificity {c['specificity']:.3g}, {c['n_calibration']} calibration pairs): 95% CI "
              f"{c['ci_low']:.3g}-{c['ci_high']:.3g}")
    return Condition(name, c["pass_rate"] >= threshold, c["pass_rate"], threshold, detail)


def _agreement_conditions(store: Store, experiment: str, min_agreement: float) -> list[Condition]:
    rows = store.read("""
        SELECT criterion, avg(agreement) AS mean, count(agreement) AS n, min(agreement) AS worst
        FROM ratings WHERE experiment = ? AND agreement IS NOT NULL GROUP BY criterion ORDER BY criterion""",
        [experiment])
    if not rows:
        return [Condition(f"vote agreement >= {min_agreement:g}", False, None, min_agreement,
                          "no rating of the experiment was decided by samples or a panel")]
    return [Condition(f"vote agreement of {r['criterion']} >= {min_agreement:g}", r["mean"] >= min_agreement,
                      r["mean"], min_agreement, f"mean over {r['n']} voted ratings (lowest {r['worst']:.3g})")
            for r in rows]


def _kappa_conditions(known: list[str], min_kappa: float, calibration: dict[str, Any]) -> list[Condition]:
    calibrated = [k for k in known if k in (calibration.get("criteria") or {})]
    if not calibrated:
        return [Condition(f"judge kappa >= {min_kappa:g}", False, None, min_kappa,
                          "no criterion of the experiment has calibration data")]
    out = []
    for label in calibrated:
        crit = calibration["criteria"][label]
        kappa = crit.get("kappa")
        ci = (crit.get("metrics") or {}).get("kappa") or {}
        interval = f", 95% CI {ci['ci_low']:.3g}-{ci['ci_high']:.3g}" if ci.get("ci_low") is not None else ""
        detail = (f"Cohen's kappa over {crit.get('n_pairs', 0)} calibration pairs{interval}" if kappa is not None
                  else "kappa is undefined on the calibration sample (one rater gave a single label)")
        out.append(Condition(f"judge kappa of {label} >= {min_kappa:g}", kappa is not None and kappa >= min_kappa,
                             kappa, min_kappa, detail))
    return out


def _regressions(paired: dict[str, Any], baseline: str, max_regression: float, alpha: float,
                 ignore_unscored: bool, seed: int) -> list[Condition]:
    out: list[Condition] = []
    tables = paired["tables"]
    base_criteria = set(paired["sides"]["baseline"])
    cand_criteria = set(paired["sides"]["candidate"])
    for label in sorted(base_criteria & cand_criteria):
        table = tables.get(label, {})
        counts = {"YY": 0, "YN": 0, "NY": 0, "NN": 0}
        left_out = 0
        for (vb, vc), n in table.items():
            if vb not in ("YES", "NO"):
                left_out += n
                continue
            if vc not in ("YES", "NO"):
                if ignore_unscored:
                    left_out += n
                    continue
                vc = "NO"
            counts[vb[0] + vc[0]] += n
        n = sum(counts.values())
        name = f"no regression of {label} vs {baseline} beyond {max_regression:g} (alpha {alpha:g})"
        if n == 0:
            out.append(Condition(name, True, None, max_regression, "no paired ratings to compare"))
            continue
        b_rate = (counts["YY"] + counts["YN"]) / n
        c_rate = (counts["YY"] + counts["NY"]) / n
        drop = b_rate - c_rate
        p = mcnemar_exact(counts["YN"], counts["NY"])
        failed = drop > max_regression and p < alpha
        out.append(Condition(
            name, not failed, drop, max_regression,
            f"pass rate {b_rate:.3f} -> {c_rate:.3f} over {n} pairs ({counts['YN']} lost, {counts['NY']} gained), "
            f"McNemar p={p:.3g}" + (f", {left_out} pairs left out" if left_out else ""),
        ))
    changes = paired["reward_changes"]
    if changes["values"]:
        boot = bootstrap_counted_ci(changes["values"], changes["counts"], level=1.0 - alpha, seed=seed)
        drop = -(boot.mean or 0.0)
        significant = boot.ci_high is not None and boot.ci_high < 0
        failed = drop > max_regression and significant
        ci = (f"[{boot.ci_low:+.3f}, {boot.ci_high:+.3f}]" if boot.ci_low is not None else "(too few pairs)")
        if boot.method == "normal":
            ci += " (normal approximation)"
        out.append(Condition(
            f"no regression of mean reward vs {baseline} beyond {max_regression:g} (alpha {alpha:g})",
            not failed, drop, max_regression,
            f"mean change {boot.mean:+.4f} over {boot.n} pairs, {round((1 - alpha) * 100)}% CI {ci}",
        ))
    return out
