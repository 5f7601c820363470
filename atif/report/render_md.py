"""Markdown renderings of reports, comparisons, calibrations and gates.

Written to read well as a pull-request comment: a headline, compact tables, and the long
lists folded into ``<details>``. Every value that comes from the data (names, labels,
error messages, reasons) goes through ``cell`` (or ``code``, or ``line`` for the plain-text
gate) so it cannot break a table, start a block or inject a link, an image or markup.
"""

from __future__ import annotations

import re
from typing import Any

from atif.report.formatting import bar, num, pct, signed, usd

__all__ = ["cell", "code", "line", "render_bench_md", "render_calibration_md", "render_compare_md", "render_gate_text",
           "render_report_md"]

_LISTED = 30
# Line breaks (including Unicode's), C0 and C1 controls (terminal escapes among them).
_BREAKS = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]")
_MD_SPECIAL = re.compile(r"[\\`*_\[\]#~|!]")
# A list marker at the start (-, +, 1. or 1)); * and # are escaped everywhere already.
_LEADING_BULLET = re.compile(r"^[-+]")
_LEADING_NUMBER = re.compile(r"^(\d{1,9})([.)])")


def cell(value: Any, limit: int = 120) -> str:
    """A value made inert for one line of Markdown: a table cell, a heading or a list item.

    Line breaks and control characters become spaces and surrounding whitespace goes (so
    the text cannot open a block of its own); ``&``, ``<`` and ``>`` become entities (no raw
    HTML, no autolink); every character that could start a link, an image, emphasis, a
    code span, a heading or a table column is backslash-escaped, as is a leading list or
    quote marker. The text reads as given; long text is cut at ``limit`` characters.
    """
    if value is None:
        return "–"
    s = _one_line(str(value)).strip()
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\g<0>", s)
    s = _LEADING_BULLET.sub(r"\\\g<0>", s)
    return _LEADING_NUMBER.sub(r"\g<1>\\\g<2>", s)


def code(value: str, limit: int = 120) -> str:
    """``value`` as an inline code span (nothing inside is interpreted but a table's ``|``)."""
    s = _one_line(value).replace("`", "'").replace("|", "\\|")
    return f"`{s[:limit]}`"


def line(value: Any) -> str:
    """A value made safe for one line of plain text: no line breaks, no control characters."""
    return "–" if value is None else _one_line(str(value))


def _one_line(s: str) -> str:
    return _BREAKS.sub(" ", s)


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["l"] * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def _headline(s: dict[str, Any]) -> str:
    parts = [f"**{s['n_trials']:,} trials**",
             f"errors {pct(s['error_rate'])} ({s['n_errored']:,})"]
    r = s["reward"]
    if r["n"]:
        parts.append(f"reward mean {num(r['mean'])} (p50 {num(r['p50'])}, p95 {num(r['p95'])})")
    if s["macro_pass_rate"] is not None:
        parts.append(f"macro pass rate {pct(s['macro_pass_rate'])}")
    parts.append(f"agent cost {usd(s['cost_usd']['total'])}")
    j = s["judge"]
    if j["calls"] or j["cache_hits"]:
        parts.append(f"judge cost {usd(j['cost_usd'])} ({j['calls']:,} calls, {j['cache_hits']:,} cached)")
    return " · ".join(parts)


def render_report_md(report: dict[str, Any]) -> str:
    """Markdown for a ``build_report`` result."""
    s = report["summary"]
    out = [f"## atif report: {cell(report['experiment'])}", "", _headline(s), ""]

    if s["criteria"]:
        out += ["### Criteria", ""]
        rows = []
        corrected = any("corrected" in c for c in s["criteria"].values())
        for label, c in s["criteria"].items():
            ci = f"{pct(c['ci_low'])} – {pct(c['ci_high'])}" if c["ci_low"] is not None else "–"
            rows.append([cell(label), f"{pct(c['pass_rate'])} `{bar(c['pass_rate'])}`", ci]
                        + ([_corrected_cell(c.get("corrected"))] if corrected else [])
                        + [f"{c['n_yes']:,}", f"{c['n_no']:,}", f"{c['n_unscored']:,}", f"{c['n_missing']:,}"])
        voted = any((c.get("agreement") or {}).get("n_voted") for c in s["criteria"].values())
        if voted:
            for row, c in zip(rows, s["criteria"].values(), strict=True):
                a = c.get("agreement") or {}
                row.append(f"{pct(a['mean'])} ({a['n_low']:,} low)" if a.get("n_voted") else "–")
        head = ["criterion", "pass rate", "95% CI (Wilson)"] + (["corrected (95% CI)"] if corrected else [])
        out += _table(head + ["YES", "NO", "unscored", "unrated"] + (["vote agreement"] if voted else []), rows,
                      ["l", "l", "l"] + (["l"] if corrected else []) + ["r", "r", "r", "r"] + (["r"] if voted else []))
        if corrected:
            n_pairs = (report.get("calibration") or {}).get("n_pairs")
            note = (f"Corrected: the pass rate corrected for the judge's error measured on {n_pairs or 0:,} "
                    "calibration pairs (Rogan–Gladen; the interval carries the calibration's uncertainty).")
            out += ["", note]
        out += ["", f"Macro pass rate (mean over criteria): **{pct(s['macro_pass_rate'])}**", ""]
    thresholds = report.get("thresholds") or {}
    if thresholds:
        out += ["Judge thresholds on p_yes (YES at or above): " + "; ".join(
            f"{cell(label)} {t['threshold']:g} ({_threshold_origin(t)})" for label, t in thresholds.items()), ""]
    low = report.get("low_agreement") or []
    if low:
        out += [f"### Low-agreement ratings ({len(low):,} shown)", "",
                "Verdicts taken by samples or panels whose votes agreed less than 75%:", ""]
        out += _table(["task", "criterion", "verdict", "agreement", "trial"],
                      [[cell(r["task_name"]), cell(r["criterion"]), r["verdict"], pct(r["agreement"]),
                        code(r["trial_id"][:12])] for r in low], ["l", "l", "l", "r", "l"]) + [""]

    out += ["### Trials", ""]
    rows = []
    for key, label, fmt in (("reward", "reward", num), ("duration_seconds", "duration (s)", num),
                            ("cost_usd", "agent cost (USD)", usd), ("input_tokens", "input tokens", num),
                            ("output_tokens", "output tokens", num), ("cached_tokens", "cached tokens", num),
                            ("steps", "steps", num)):
        st = s[key]
        if not st["n"]:
            continue
        rows.append([label, f"{st['n']:,}", fmt(st["mean"]), fmt(st["p50"]), fmt(st["p95"]), fmt(st.get("total"))])
    for name, st in s["rewards"].items():
        rows.append([f"reward {code(name)}", f"{st['n']:,}", num(st["mean"]), num(st["p50"]), num(st["p95"]), "–"])
    out += _table(["metric", "n", "mean", "p50", "p95", "total"], rows, ["l", "r", "r", "r", "r", "r"]) + [""]

    if s["errors"]:
        out += [f"### Errors ({s['n_errored']:,} trials, {pct(s['error_rate'])})", ""]
        out += _table(["cause", "trials"], [[cell(e["cause"]), f"{e['count']:,}"] for e in s["errors"]],
                      ["l", "r"]) + [""]

    unscored = [(label, r) for label, c in s["criteria"].items() for r in c["unscored_reasons"]]
    if unscored or s["n_missing"]:
        out += [f"### Unscored ({s['n_unscored']:,} unscored, {s['n_missing']:,} unrated)", ""]
        if unscored:
            out += _table(["criterion", "reason", "count"],
                          [[cell(label), cell(r["reason"]), f"{r['count']:,}"] for label, r in unscored],
                          ["l", "l", "r"])
        if s["n_missing"]:
            out += ["", f"{s['n_missing']:,} trial × criterion pairs have no rating yet (`atif evaluate` rates them)."]
        out += [""]

    hist = s["histograms"]
    if hist["reward"] or hist["criteria_passed"]:
        out += ["### Score distribution", "", "```"]
        if hist["reward"]:
            top = max(b["count"] for b in hist["reward"]) or 1
            out.append("reward")
            for b in hist["reward"]:
                out.append(f"  {b['low']:.1f}–{b['high']:.1f} {bar(b['count'] / top, 30)} {b['count']:,}")
        if hist["criteria_passed"]:
            top = max(b["count"] for b in hist["criteria_passed"]) or 1
            out.append("criteria passed per trial")
            for b in hist["criteria_passed"]:
                out.append(f"  {b['passed']:>7} {bar(b['count'] / top, 30)} {b['count']:,}")
        out += ["```", ""]

    j = s["judge"]
    if j["models"]:
        out += ["### Judge (apart from agent cost)", ""]
        rows = [[cell(m), f"{v['calls']:,}", f"{v['cache_hits']:,}", num(v["prompt_tokens"]),
                 num(v["completion_tokens"]), usd(v["cost_usd"]), f"{v['unscored']:,}", f"{v['truncated']:,}"]
                for m, v in j["models"].items()]
        out += _table(["model", "calls", "cache hits", "prompt tokens", "completion tokens", "cost", "unscored",
                       "truncated"], rows, ["l", "r", "r", "r", "r", "r", "r", "r"])
        if j["unpriced_calls"]:
            out.append(f"\n{j['unpriced_calls']:,} calls have no known price; their cost is not included.")
        out += [""]

    if report["cohorts"]:
        crits = report["criteria"]
        out += [f"### By {cell(report['by'])}", ""]
        rows = []
        for co in report["cohorts"]:
            cs = co["summary"]
            rows.append([cell(co["value"]), f"{cs['n_trials']:,}", pct(cs["error_rate"]), num(cs["reward"]["mean"]),
                         pct(cs["macro_pass_rate"])] + [pct(cs["criteria"][c]["pass_rate"]) for c in crits]
                        + [usd(cs["cost_usd"]["total"])])
        out += _table([cell(report["by"]), "trials", "errors", "reward", "macro pass"] + [cell(c) for c in crits]
                      + ["agent cost"], rows, ["l", "r", "r", "r", "r"] + ["r"] * len(crits) + ["r"]) + [""]

    notable = report["notable"]
    for key, title, col, fmt in (("slowest", "Slowest trials", "duration_seconds", num),
                                 ("most_expensive", "Most expensive trials", "cost_usd", usd)):
        if notable[key]:
            out += [f"<details><summary>{title}</summary>", ""]
            out += _table(["task", "epoch", "value", "trial"],
                          [[cell(t["task_name"]), str(t["epoch"]), fmt(t[col]), code(t["trial_id"][:12])]
                           for t in notable[key]], ["l", "r", "r", "l"])
            out += ["", "</details>", ""]
    if notable["failed"]:
        out += [f"<details><summary>Failed trials ({s['n_errored']:,})</summary>", ""]
        out += _table(["task", "epoch", "error", "trial"],
                      [[cell(t["task_name"]), str(t["epoch"]), cell(t["error"], 160), code(t["trial_id"][:12])]
                       for t in notable["failed"]], ["l", "r", "l", "l"])
        if s["n_errored"] > len(notable["failed"]):
            out.append(f"\n… and {s['n_errored'] - len(notable['failed']):,} more.")
        out += ["", "</details>", ""]
    return "\n".join(out).rstrip() + "\n"


def render_compare_md(result: dict[str, Any]) -> str:
    """Markdown for a ``compare`` result."""
    alpha = result["alpha"]
    # The lists may be bounded (compare's max_listed); unpaired_counts has the totals.
    unpaired_n = {side: result.get("unpaired_counts", {}).get(side, len(items))
                  for side, items in result["unpaired"].items()}
    headline = (f"**{result['n_pairs']:,} pairs** by task and epoch · "
                f"{unpaired_n['baseline_only']:,} baseline-only, "
                f"{unpaired_n['candidate_only']:,} candidate-only trials · significance at α = {alpha:g}")
    out = [f"## atif compare: {cell(result['baseline'])} → {cell(result['candidate'])}", "", headline, ""]
    if result["criteria"]:
        out += ["### Criteria (paired, McNemar exact test)", ""]
        rows = []
        for label, c in result["criteria"].items():
            mark = " **↓**" if c["significant"] and (c["delta"] or 0) < 0 else (
                " **↑**" if c["significant"] and (c["delta"] or 0) > 0 else "")
            rows.append([cell(label), f"{c['n_pairs']:,}", pct(c["baseline_pass_rate"]), pct(c["candidate_pass_rate"]),
                         signed(None if c["delta"] is None else c["delta"] * 100, "{:+.1f} pp") + mark,
                         f"{c['regressed']:,}", f"{c['improved']:,}", f"{c['p_value']:.3g}",
                         f"{c['excluded_unscored'] + c['excluded_missing']:,}"])
        out += _table(["criterion", "pairs", "baseline", "candidate", "change", "YES→NO", "NO→YES", "p", "left out"],
                      rows, ["l", "r", "r", "r", "r", "r", "r", "r", "r"]) + [""]
    level = round((1 - alpha) * 100)
    out += [f"### Metrics (paired bootstrap {level}% CI, seed {result['seed']})", ""]
    rows = []
    for name, m in result["metrics"].items():
        fmt = usd if name == "cost_usd" else num
        ci = (f"[{signed(m['ci_low'], '{:+.4g}')}, {signed(m['ci_high'], '{:+.4g}')}]"
              if m["ci_low"] is not None else "–")
        rows.append([name, f"{m['n_pairs']:,}", fmt(m["baseline_mean"]), fmt(m["candidate_mean"]),
                     signed(m["delta_mean"], "{:+.4g}") + (" **\\***" if m["significant"] else ""), ci])
    out += _table(["metric", "pairs", "baseline mean", "candidate mean", "change", "CI"], rows,
                  ["l", "r", "r", "r", "r", "l"]) + [""]
    for kind, title in (("regressed", "Regressed"), ("improved", "Improved"), ("mixed", "Mixed")):
        items = result["tasks"][kind]
        if not items:
            continue
        total = result.get("task_counts", {}).get(kind, len(items))
        out += [f"<details><summary>{title} ({total:,})</summary>", ""]
        out += _table(["task", "epoch", "lost", "gained", "reward"],
                      [[cell(t["task_name"]), str(t["epoch"]), cell(", ".join(t["lost"])) if t["lost"] else "",
                        cell(", ".join(t["gained"])) if t["gained"] else "",
                        f"{num(t['baseline_reward'])} → {num(t['candidate_reward'])}"] for t in items[:_LISTED]],
                      ["l", "r", "l", "l", "l"])
        if total > _LISTED:
            out.append(f"\n… and {total - _LISTED:,} more (see --format json).")
        out += ["", "</details>", ""]
    for side in ("baseline_only", "candidate_only"):
        items = result["unpaired"][side]
        if items:
            out += [f"<details><summary>Unpaired, {side.replace('_', ' ')} ({unpaired_n[side]:,})</summary>", ""]
            out += [f"- {cell(u['task_name'])} (epoch {u['epoch']})" for u in items[:_LISTED]]
            if unpaired_n[side] > _LISTED:
                out.append(f"- … and {unpaired_n[side] - _LISTED:,} more")
            out += ["", "</details>", ""]
    return "\n".join(out).rstrip() + "\n"


def render_calibration_md(result: dict[str, Any]) -> str:
    """Markdown for a ``calibrate`` result."""
    ref = result["reference"]
    ref_name = f"experiment {ref['experiment']}" if "experiment" in ref else f"file {ref['file']}"
    o = result["overall"]
    out = [f"## atif calibrate: judge of {cell(result['experiment'])} vs {cell(result['against'])} ratings", "",
           f"Reference: {cell(ref_name)} · **{o['n_pairs']:,} pairs** · agreement **{pct(o['agreement'])}** · "
           f"Cohen's κ **{_kappa(o['kappa'])}**"
           + (f" · {o['n_judge_unscored']:,} UNSCORED judge verdicts left out" if o["n_judge_unscored"] else ""), ""]
    rows = [[cell(label), f"{c['n_pairs']:,}", pct(c["agreement"]), _kappa(c["kappa"]),
             str(c["confusion"]["YES"]["YES"]), str(c["confusion"]["YES"]["NO"]),
             str(c["confusion"]["NO"]["YES"]), str(c["confusion"]["NO"]["NO"]),
             pct(c["judge_yes_rate"]), pct(c["reference_yes_rate"])]
            for label, c in result["criteria"].items()]
    out += _table(["criterion", "pairs", "agreement", "κ", "J:YES R:YES", "J:YES R:NO", "J:NO R:YES", "J:NO R:NO",
                   "judge YES", "reference YES"], rows, ["l"] + ["r"] * 9) + [""]
    names = (("tpr", "TPR"), ("tnr", "TNR"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"),
             ("balanced_accuracy", "balanced accuracy"), ("kappa", "κ"))
    rows = [[cell(label)] + [_with_ci(c.get("metrics", {}).get(key)) for key, _ in names]
            for label, c in result["criteria"].items()]
    out += ["Per criterion, with 95% intervals (YES is the positive class; TPR = recall):", ""]
    out += _table(["criterion"] + [title for _, title in names], rows, ["l"] + ["r"] * len(names)) + [""]
    m = o["confusion"]
    out += ["Confusion matrix, all criteria (rows: judge, columns: reference):", ""]
    out += _table(["", "reference YES", "reference NO"],
                  [["judge YES", str(m["YES"]["YES"]), str(m["YES"]["NO"])],
                   ["judge NO", str(m["NO"]["YES"]), str(m["NO"]["NO"])]], ["l", "r", "r"]) + [""]
    dis = result["disagreements"]
    if dis:
        out += [f"<details><summary>Disagreements ({result['n_disagreements']:,})</summary>", ""]
        out += _table(["task", "epoch", "criterion", "judge", "reference", "judge reasoning"],
                      [[cell(d["task_name"]), str(d["epoch"]), cell(d["criterion"]), d["judge"], d["reference"],
                        cell(d["reasoning"], 160)] for d in dis[:_LISTED]], ["l", "r", "l", "l", "l", "l"])
        if result["n_disagreements"] > _LISTED:
            out.append(f"\n… and {result['n_disagreements'] - _LISTED:,} more (see --format json).")
        out += ["", "</details>", ""]
    if result.get("thresholds"):
        out += _thresholds_md(result["thresholds"])
    return "\n".join(out).rstrip() + "\n"


def _threshold_origin(t: dict[str, Any]) -> str:
    if t["from"] == "file":
        return "criteria file"
    fitted = t.get("fitted") or {}
    ref = fitted.get("reference") or {}
    where = f"file {ref['file']}" if "file" in ref else f"experiment {ref.get('experiment', '?')}"
    return (f"fitted on {fitted.get('n_yes', '?')} YES / {fitted.get('n_no', '?')} NO {fitted.get('against', '')} "
            f"labels of {where}, {fitted.get('fitted_at', '')}")


def _thresholds_md(fit: dict[str, Any]) -> list[str]:
    """The ``--fit-threshold`` section: per criterion the fitted p_yes cut and the rates before and after."""
    def rates(r: dict[str, Any]) -> str:
        return f"{pct(r.get('tpr'))} / {pct(r.get('tnr'))} / {pct(r.get('balanced_accuracy'))}"

    rows = []
    for label, c in fit["criteria"].items():
        force = (f"file's {c['file_threshold']:g} wins" if c["file_threshold"] is not None
                 else f"{c['in_force']:g}")
        rows.append([cell(label), f"{c['threshold']:g}", force, f"{c['n_yes']} / {c['n_no']}",
                     f"{rates(c['before'])} (at {c['before_threshold']:g})", rates(c["after"])])
    out = ["### Fitted p_yes thresholds", "",
           "Stored with the criterion set; `atif evaluate` uses each unless the criteria file sets `threshold:`. "
           "Rates are TPR / TNR / balanced accuracy on these same labels (in-sample).", ""]
    out += _table(["criterion", "fitted", "in force", "labels YES / NO", "before", "after"], rows,
                  ["l", "r", "l", "r", "r", "r"]) + [""]
    applied = fit.get("applied")
    if applied is not None:
        out += [f"Re-decided stored judge verdicts: **{applied['n_changed']:,}** changed "
                f"({applied['to_yes']:,} to YES, {applied['to_no']:,} to NO); the replaced verdicts are in "
                "`replaced_ratings`.", ""]
    if fit.get("written"):
        out += [f"Wrote the thresholds into {cell(fit['written'])}.", ""]
    for problem in fit.get("problems") or []:
        out += [f"- not fitted: {cell(problem)}"]
    return out


def _corrected_cell(c: dict[str, Any] | None) -> str:
    if not c:
        return "–"
    if c.get("pass_rate") is None:
        return f"– ({line(c.get('reason') or 'no calibration')})"
    return f"{pct(c['pass_rate'])} ({pct(c['ci_low'])} – {pct(c['ci_high'])})"


def _with_ci(m: dict[str, Any] | None) -> str:
    if not m or m.get("value") is None:
        return "–"
    if m.get("ci_low") is None:
        return f"{m['value']:.3f}"
    return f"{m['value']:.3f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}]"


def _kappa(k: float | None) -> str:
    return "undefined" if k is None else f"{k:.3f}"


def render_gate_text(result: Any) -> str:
    """One line per condition (PASS/FAIL with the figure) and a verdict line."""
    lines = []
    for c in result.conditions:
        observed = "–" if c.observed is None else f"{c.observed:.4g}"
        lines.append(f"{'PASS' if c.passed else 'FAIL'}  {line(c.name)}: {observed}; {line(c.detail)}")
    n_fail = len(result.failures())
    lines.append(f"gate {'passed' if result.passed else 'FAILED'}: {len(result.conditions) - n_fail} of "
                 f"{len(result.conditions)} conditions hold")
    return "\n".join(lines) + "\n"


def render_bench_md(result: dict[str, Any]) -> str:
    """Markdown for a ``score_bench`` result."""
    out = [f"## atif judge bench: {result['n_cases']:,} labelled cases", ""]
    rows = []
    for r in result["runs"]:
        o = r["overall"]
        m = o["confusion"]
        cost = "–" if r["cost_usd"] is None else f"${r['cost_usd']:.4f}"
        latency = "–" if r["mean_latency_ms"] is None else f"{r['mean_latency_ms'] / 1000:.2f} s"
        kappa = "–" if o["kappa"] is None else f"{o['kappa']:.3f}"
        rows.append([cell(r["name"]), pct(o["accuracy"]), kappa, str(m["YES"]["YES"]), str(m["YES"]["NO"]),
                     str(m["NO"]["NO"]), str(m["NO"]["YES"]), str(o["n_unscored"]), cost, latency,
                     f"{r['seconds'] or 0:.1f} s"])
    out += _table(["configuration", "accuracy", "κ", "TP", "FP", "TN", "FN", "UNSCORED", "cost", "mean latency",
                   "wall time"], rows, ["l"] + ["r"] * 10) + [""]
    for r in result["runs"]:
        out += [f"### {cell(r['name'])} per criterion", ""]
        out += _table(["criterion", "cases", "accuracy", "κ", "UNSCORED"],
                      [[cell(label), str(c["n_cases"]), pct(c["accuracy"]),
                        "–" if c["kappa"] is None else f"{c['kappa']:.3f}", str(c["n_unscored"])]
                       for label, c in r["criteria"].items()], ["l", "r", "r", "r", "r"]) + [""]
    comp = result.get("comparison")
    if comp:
        first, second = (cell(r["name"]) for r in result["runs"])
        mcnemar = (f"McNemar's exact test: {comp['only_first_right']} cases only {first} got right, "
                   f"{comp['only_second_right']} only {second}; p = {comp['mcnemar_p']:.4g}.")
        out += [mcnemar, ""]
    if result["problems"]:
        out += [f"{len(result['problems'])} label(s) left out:", ""]
        out += [f"- {line(problem)}" for problem in result["problems"]]
    return "\n".join(out).rstrip() + "\n"
