"""The judge: YES/NO ratings of trials against criteria, by an LLM, a Python check, or tool-call matching.

Modules:

- :mod:`~atif.judge.criteria`: criteria files (a criterion set, its judge block, the criteria);
- :mod:`~atif.judge.templates`: Handlebars prompt templates; the shipped ones are in ``prompts/``;
- :mod:`~atif.judge.context`: template variables from a trial, the delimited transcript;
- :mod:`~atif.judge.fit`: fitting a transcript into the judge model's input budget;
- :mod:`~atif.judge.verdict`: reading a verdict from an answer (never a default);
- :mod:`~atif.judge.checks`: ``function`` and ``match`` criteria;
- :mod:`~atif.judge.client`: the only module that imports litellm, and only when a call is made;
- :mod:`~atif.judge.setup`: how a run asks its judge (prompts, output mode, budget, local routing);
- :mod:`~atif.judge.pacing`: request pacing and batched store access;
- :mod:`~atif.judge.pool`: judge calls shared with helper processes (``--workers``);
- :mod:`~atif.judge.render`: the exact prompt of one trial x criterion, without sending it;
- :mod:`~atif.judge.summary`: :class:`EvaluationSummary`, what a run did;
- :mod:`~atif.judge.votes`: repeated samples and panels of models, and their majority;
- :mod:`~atif.judge.library`: the built-in criteria (``use: <name>``), exact checks and LLM prompts;
- :mod:`~atif.judge.bench`: judge configurations run over labelled trials;
- :mod:`~atif.judge.engine`: :func:`evaluate`, the run itself.

Importing this package is cheap: names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "evaluate": "atif.judge.engine",
    "aevaluate": "atif.judge.engine",
    "EvaluationSummary": "atif.judge.summary",
    "render_messages": "atif.judge.render",
    "trial_ids_starting_with": "atif.judge.render",
    "serve_local_judge": "atif.judge.setup",
    "parse_verdict": "atif.judge.verdict",
    "Verdict": "atif.judge.verdict",
    "load_criteria": "atif.judge.criteria",
    "CriteriaFile": "atif.judge.criteria",
    "Criterion": "atif.judge.criteria",
    "JudgeConfig": "atif.judge.criteria",
    "Template": "atif.judge.templates",
    "match_tool_calls": "atif.judge.checks",
    "FunctionCheck": "atif.judge.checks",
}

__all__ = [
    "CriteriaFile",
    "Criterion",
    "EvaluationSummary",
    "FunctionCheck",
    "JudgeConfig",
    "Template",
    "Verdict",
    "aevaluate",
    "evaluate",
    "load_criteria",
    "match_tool_calls",
    "parse_verdict",
    "render_messages",
    "serve_local_judge",
    "trial_ids_starting_with",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atif.judge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
