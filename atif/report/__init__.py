"""Reports over the store: summaries, comparisons with significance, gates, calibration, exports, HTML.

Every function takes a ``Store`` and reads only through its public read API: the SQL views
plus stored trajectories; nothing here calls an LLM.

- ``build_report(store, experiment, by=None)``: the experiment summary (JSON-ready dict).
- ``compare(store, baseline, candidate)``: paired comparison with McNemar and bootstrap.
- ``gate(store, experiment, ...)``: CI thresholds; ``GateResult.passed``.
- ``calibrate(store, experiment, against=..., reference=... | reference_file=...)``.
- ``export_dataset(store, experiment, kind, fmt, out)``.
- ``render_report_html`` / ``render_trial_html``: self-contained HTML pages.
- ``render_report_md`` / ``render_compare_md`` / ``render_calibration_md`` / ``render_gate_text``.
- ``pct`` / ``usd`` / ``compact``: the number formats of every rendering.
- ``require_experiment`` / ``criteria_of``: an experiment's trial count (or ``NotFoundError``) and rated criteria.
"""

from __future__ import annotations

from atif.report.calibrate import REFERENCE_SOURCES, calibrate, load_reference_file
from atif.report.compare import DEFAULT_MAX_LISTED, compare, iter_compare_lists
from atif.report.correction import correct_with_own_labels
from atif.report.export import EXPORT_FORMATS, EXPORT_KINDS, export_dataset
from atif.report.formatting import compact, pct, usd
from atif.report.gate import Condition, GateResult, gate, parse_min_pass
from atif.report.html import render_report_html, render_trial_html, resolve_trial_id
from atif.report.reading import criteria_of, require_experiment
from atif.report.render_md import render_calibration_md, render_compare_md, render_gate_text, render_report_md
from atif.report.summary import COHORT_KEYS, REPORT_SCHEMA_VERSION, build_report

__all__ = [
    "correct_with_own_labels",
    "criteria_of",
    "require_experiment",
    "COHORT_KEYS",
    "DEFAULT_MAX_LISTED",
    "EXPORT_FORMATS",
    "EXPORT_KINDS",
    "REFERENCE_SOURCES",
    "REPORT_SCHEMA_VERSION",
    "Condition",
    "GateResult",
    "build_report",
    "calibrate",
    "compact",
    "compare",
    "export_dataset",
    "gate",
    "iter_compare_lists",
    "load_reference_file",
    "parse_min_pass",
    "pct",
    "render_calibration_md",
    "render_compare_md",
    "render_gate_text",
    "render_report_html",
    "render_report_md",
    "render_trial_html",
    "resolve_trial_id",
    "usd",
]
