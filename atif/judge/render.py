"""The exact prompt the judge would send for one trial x criterion, built without sending it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atif.errors import JudgeError, NotFoundError
from atif.judge.context import trial_context
from atif.judge.fit import fit
from atif.judge.setup import (
    build_setup,
    default_local_model,
    is_local,
    local_available,
    local_context,
    local_judge,
    resolve_config,
)

if TYPE_CHECKING:
    from atif.store import Store

__all__ = ["render_messages", "trial_ids_starting_with"]


def trial_ids_starting_with(store: Store, prefix: str, limit: int = 2) -> list[str]:
    """Up to ``limit`` trial ids that start with ``prefix``, in order (two tell an ambiguous prefix)."""
    rows = store.read("SELECT trial_id FROM trials WHERE starts_with(trial_id, ?) ORDER BY trial_id LIMIT ?",
                      [prefix, limit])
    return [str(row["trial_id"]) for row in rows]


def render_messages(store: Store, trial_id: str, criterion: str, *, model: str | None = None,
                    api_base: str | None = None) -> dict[str, Any]:
    """The exact messages (and request) the judge would send for one trial x criterion."""
    record = store.trial(trial_id)
    exp = store.experiment(record["experiment"])
    crit = next((c for c in exp["criteria"] if c["label"] == criterion), None)
    if crit is None:
        labels = ", ".join(c["label"] for c in exp["criteria"]) or "none"
        raise NotFoundError(f"no criterion {criterion!r} in experiment {record['experiment']!r} (criteria: {labels})")
    if crit["kind"] != "llm":
        raise JudgeError(f"criterion {criterion!r} is a {crit['kind']} criterion; no prompt is sent for it")
    cfg = resolve_config(exp, model=model, api_base=api_base)
    local = local_judge()
    if not cfg.model and local is not None and local_available(local):
        cfg.model = default_local_model(local)
    if not cfg.model:
        # Nothing configured: show the default prompt as it would go to any capable model.
        cfg.model = "unconfigured"
        setup = build_setup(cfg, route="openai/unconfigured")
    elif is_local(cfg.model):
        setup = build_setup(cfg, route="openai/local-model", input_tokens=local_context(cfg.model))
    else:
        setup = build_setup(cfg)
    ctx = trial_context(record)
    criterion_data = {"label": crit["label"], "question": crit["question"], "kind": crit["kind"]}
    fitted = fit(ctx.views, lambda v: setup.messages(ctx, criterion_data, v), setup.count, setup.budget,
                 frame_id=ctx.frame_id)
    return {
        "model": setup.model, "prompt_version": setup.prompt_version, "mode": setup.mode,
        "truncated": fitted.truncated, "fits": fitted.fits, "budget": setup.budget,
        "cache_key": setup.cache_key(fitted.messages), "messages": fitted.messages, "params": setup.params(),
    }
