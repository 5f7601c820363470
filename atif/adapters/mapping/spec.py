"""Mapping files: reading the YAML, checking its keys and compiling its expressions."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atif._yaml import parse_yaml
from atif.adapters.mapping.expressions import Expr, compile_expression
from atif.errors import AdapterError

__all__ = ["HANDOFF_FORMATS", "SOURCES", "MappingSpec", "Rule", "load_mapping"]

SOURCES = ("system", "user", "agent")

_TOP_KEYS = {
    "name", "description", "trials", "group_by", "records", "task_name", "trial_id", "session_id",
    "agent", "reward", "error", "instruction", "started_at", "finished_at", "duration_seconds", "metadata",
    "rules", "messages", "format",
}

HANDOFF_FORMATS = ("openai-chat", "openai-responses", "anthropic")
"""Adapters a mapping can hand a standard message list to (``messages`` + ``format``)."""

_AGENT_KEYS = {"name", "version", "model_name"}

_RULE_KEYS = {
    "when", "skip", "source", "message", "timestamp", "model_name", "reasoning_content", "tool_calls",
    "metrics", "observation", "extra",
}

_CALL_KEYS = {"each", "id", "name", "arguments", "extra"}

_METRIC_KEYS = {"prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd"}

_OBS_KEYS = {"each", "source_call_id", "content", "extra"}


@dataclass(slots=True)
class Rule:
    """One compiled rule of a mapping: when it applies and what it makes of a record."""

    index: int
    when: Expr | None
    skip: bool = False
    source: Expr | str | None = None
    fields: dict[str, Expr] = field(default_factory=dict)
    calls: dict[str, Expr] | None = None
    call_extra: dict[str, Expr] | None = None
    metrics: dict[str, Expr] | None = None
    extra: dict[str, Expr] | None = None
    observation: dict[str, Expr] | None = None
    obs_extra: dict[str, Expr] | None = None


@dataclass(slots=True)
class MappingSpec:
    """A parsed, compiled mapping file."""

    path: Path
    name: str
    top: dict[str, Expr]
    agent: dict[str, Expr]
    metadata: dict[str, Expr]
    rules: list[Rule]
    handoff: str | None = None
    """With ``messages``: the adapter (``format``) that reads the conversation; the mapping gives the envelope."""


def _check_keys(path: Path, key: str, value: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AdapterError(f"{path}: {key}: expected a mapping of keys to expressions, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise AdapterError(f"{path}: {key}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return value


def _exprs(path: Path, key: str, value: Any, allowed: set[str] | None = None) -> dict[str, Expr]:
    if allowed is not None:
        value = _check_keys(path, key, value, allowed)
    elif not isinstance(value, Mapping):
        raise AdapterError(f"{path}: {key}: expected a mapping of keys to expressions, got {type(value).__name__}")
    return {str(k): compile_expression(path, f"{key}.{k}", v) for k, v in value.items()}


def _rule(path: Path, i: int, raw: Any) -> Rule:
    key = f"rules[{i}]"
    raw = _check_keys(path, key, raw, _RULE_KEYS)
    when = compile_expression(path, f"{key}.when", raw["when"]) if "when" in raw else None
    rule = Rule(index=i, when=when, skip=bool(raw.get("skip")))
    if rule.skip:
        return rule
    if "source" in raw:
        src = raw["source"]
        rule.source = src if src in SOURCES else compile_expression(path, f"{key}.source", src)
    for f in ("message", "timestamp", "model_name", "reasoning_content"):
        if f in raw:
            rule.fields[f] = compile_expression(path, f"{key}.{f}", raw[f])
    if "tool_calls" in raw:
        calls = _check_keys(path, f"{key}.tool_calls", raw["tool_calls"], _CALL_KEYS)
        for req in ("each", "name"):
            if req not in calls:
                raise AdapterError(f"{path}: {key}.tool_calls: `{req}` is required")
        rule.calls = {k: compile_expression(path, f"{key}.tool_calls.{k}", v) for k, v in calls.items() if k != "extra"}
        if "extra" in calls:
            rule.call_extra = _exprs(path, f"{key}.tool_calls.extra", calls["extra"])
    if "metrics" in raw:
        rule.metrics = _exprs(path, f"{key}.metrics", raw["metrics"], _METRIC_KEYS)
    if "extra" in raw:
        rule.extra = _exprs(path, f"{key}.extra", raw["extra"])
    if "observation" in raw:
        obs = _check_keys(path, f"{key}.observation", raw["observation"], _OBS_KEYS)
        if "content" not in obs:
            raise AdapterError(f"{path}: {key}.observation: `content` is required")
        rule.observation = {k: compile_expression(path, f"{key}.observation.{k}", v) for k, v in obs.items() if k != "extra"}
        if "extra" in obs:
            rule.obs_extra = _exprs(path, f"{key}.observation.extra", obs["extra"])
    if rule.source is None and rule.observation is None:
        raise AdapterError(f"{path}: {key}: a rule needs `source` (to make a step), `observation`, or `skip: true`")
    if rule.source is None and (rule.fields or rule.calls or rule.metrics):
        raise AdapterError(f"{path}: {key}: step fields need `source`")
    return rule


_LOADED: dict[tuple[str, int, int], MappingSpec] = {}


def load_mapping(path: Path | str) -> MappingSpec:
    """Read and compile a mapping file; :class:`AdapterError` names the file and the bad key."""
    path = Path(path)
    try:
        st = path.stat()
        cache_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if cache_key in _LOADED:
            return dataclasses.replace(_LOADED[cache_key], path=path)  # the path as this caller spelled it
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AdapterError(f"{path}: cannot read the mapping file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise AdapterError(f"{path}: the mapping file is not UTF-8 text") from exc
    raw = parse_yaml(text, path, AdapterError)
    raw = _check_keys(path, "mapping", raw if raw is not None else {}, _TOP_KEYS)
    rules_raw = raw.get("rules")
    handoff = raw.get("format")
    if "messages" in raw or handoff is not None:
        if "messages" not in raw or handoff not in HANDOFF_FORMATS:
            raise AdapterError(f"{path}: messages and format go together; format is one of {', '.join(HANDOFF_FORMATS)}")
        if rules_raw is not None:
            raise AdapterError(f"{path}: rules: not used when `messages` hands the conversation to {handoff}")
        rules_raw = []
    elif not isinstance(rules_raw, list) or not rules_raw:
        raise AdapterError(f"{path}: rules: a non-empty list of rules is required")
    top = {
        k: compile_expression(path, k, raw[k])
        for k in ("trials", "group_by", "records", "task_name", "trial_id", "session_id", "reward", "error",
                  "instruction", "started_at", "finished_at", "duration_seconds", "messages")
        if k in raw
    }
    agent = _exprs(path, "agent", raw["agent"], _AGENT_KEYS) if "agent" in raw else {}
    metadata = _exprs(path, "metadata", raw["metadata"]) if "metadata" in raw else {}
    rules = [_rule(path, i, r) for i, r in enumerate(rules_raw)]
    name = raw.get("name") if isinstance(raw.get("name"), str) else path.stem
    mapping = MappingSpec(path=path, name=str(name), top=top, agent=agent, metadata=metadata, rules=rules,
                          handoff=handoff if isinstance(handoff, str) else None)
    _LOADED[cache_key] = mapping
    return mapping
