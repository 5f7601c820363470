"""atif: convert, store, judge and analyse AI agent trajectories in the ATIF v1 format.

The public API. Heavy parts (the store, the judge, reports) load on first use,
so ``import atif`` stays cheap and never imports litellm.
"""

from __future__ import annotations

import importlib
from typing import Any

from atif.errors import (
    AdapterError,
    AtifError,
    BudgetExceededError,
    ConflictError,
    CriteriaError,
    InputError,
    JudgeError,
    NotFoundError,
    ParseError,
    ReportError,
    StoreError,
    StoreLockedError,
    TemplateError,
    ValidationError,
)

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    # schema
    "Trajectory": "atif.schema.models",
    "Agent": "atif.schema.models",
    "Step": "atif.schema.models",
    "ToolCall": "atif.schema.models",
    "Observation": "atif.schema.models",
    "ObservationResult": "atif.schema.models",
    "Metrics": "atif.schema.models",
    "FinalMetrics": "atif.schema.models",
    "ContentPart": "atif.schema.models",
    "ImageSource": "atif.schema.models",
    "AudioSource": "atif.schema.models",
    "SubagentTrajectoryRef": "atif.schema.models",
    "Issue": "atif.schema.issues",
    "ValidationReport": "atif.schema.validate",
    "VERSIONS": "atif.schema.versions",
    "validate": "atif.schema.validate",
    "validate_files": "atif.schema.validate",
    "normalize_version": "atif.schema.versions",
    "repair": "atif.schema.repair",
    "RepairResult": "atif.schema.repair",
    "json_schema": "atif.schema.jsonschema",
    # progress
    "Progress": "atif.progress",
    "ProgressCallback": "atif.progress",
    # trials
    "Trial": "atif.trial",
    "CriterionRating": "atif.trial",
    # adapters
    "convert": "atif.adapters.convert",
    "ConvertResult": "atif.adapters.convert",
    "InputReport": "atif.adapters.convert",
    "iter_convert": "atif.adapters.convert",
    "TrialKeys": "atif.adapters.convert",
    "detect": "atif.adapters.registry",
    "adapter_names": "atif.adapters.registry",
    # store
    "Store": "atif.store",
    "UploadResult": "atif.store",
    "copy_store": "atif.store",
    "upload": "atif.api",
    "fit_thresholds": "atif.api",
    # judge
    "load_criteria": "atif.judge.criteria",
    "CriteriaFile": "atif.judge.criteria",
    "Criterion": "atif.judge.criteria",
    "JudgeConfig": "atif.judge.criteria",
    "Template": "atif.judge.templates",
    "evaluate": "atif.judge.engine",
    "aevaluate": "atif.judge.engine",
    "EvaluationSummary": "atif.judge.summary",
    "render_messages": "atif.judge.render",
    "trial_ids_starting_with": "atif.judge.render",
    "serve_local_judge": "atif.judge.setup",
    "builtin_criteria": "atif.judge.library",
    "builtin_criterion": "atif.judge.library",
    "bench_labels": "atif.judge.bench",
    "run_bench": "atif.judge.bench",
    "write_thresholds": "atif.judge.score",
    "local_models": "atif.judge.setup",
    # reports
    "build_report": "atif.report",
    "compare": "atif.report",
    "iter_compare_lists": "atif.report",
    "gate": "atif.report",
    "calibrate": "atif.report",
    "load_calibration": "atif.report.correction",
    "score_bench": "atif.report.benchmark",
    "render_bench_md": "atif.report.render_md",
    "export_dataset": "atif.report",
    "parse_min_pass": "atif.report",
    "render_report_md": "atif.report",
    "render_compare_md": "atif.report",
    "render_gate_text": "atif.report",
    "render_calibration_md": "atif.report",
    "render_report_html": "atif.report",
    "render_trial_html": "atif.report",
    # live web app
    "create_app": "atif.serve",
    "run_server": "atif.serve",
    "ServerInfo": "atif.serve",
}

__all__ = [  # noqa: PLE0604 - _LAZY holds the lazily loaded names, all strings
    "AdapterError",
    "AtifError",
    "BudgetExceededError",
    "ConflictError",
    "CriteriaError",
    "InputError",
    "JudgeError",
    "NotFoundError",
    "ParseError",
    "ReportError",
    "StoreError",
    "StoreLockedError",
    "TemplateError",
    "ValidationError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atif' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
