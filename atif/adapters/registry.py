"""The adapter registry: ``--from NAME`` and auto-detection (each adapter sniffs in turn)."""

from __future__ import annotations

import importlib
from pathlib import Path

from atif.adapters.base import Adapter, Sniff
from atif.errors import AdapterError

# Order matters for auto-detection: the most specific formats first.
_ADAPTERS: dict[str, str] = {
    "atif": "atif.adapters.atif_files:AtifAdapter",
    "harbor": "atif.adapters.harbor:HarborAdapter",
    "inspect": "atif.adapters.inspect:InspectAdapter",
    "claude-code": "atif.adapters.claude_code:ClaudeCodeAdapter",
    "codex": "atif.adapters.codex:CodexAdapter",
    "otel": "atif.adapters.otel:OtelAdapter",
    "swe-agent": "atif.adapters.swe_agent:SweAgentAdapter",
    "gemini-cli": "atif.adapters.gemini_cli:GeminiCliAdapter",
    "openhands": "atif.adapters.openhands:OpenHandsAdapter",
    "openai-agents": "atif.adapters.openai_agents:OpenAIAgentsAdapter",
    "openai-agents-trace": "atif.adapters.openai_agents:OpenAIAgentsTraceAdapter",
    "langsmith": "atif.adapters.langchain:LangSmithAdapter",
    "langchain": "atif.adapters.langchain:LangChainAdapter",
    "openai-responses": "atif.adapters.openai:OpenAIResponsesAdapter",
    "anthropic": "atif.adapters.anthropic:AnthropicAdapter",
    "openai-chat": "atif.adapters.openai:OpenAIChatAdapter",
    "mapping": "atif.adapters.mapping:MappingAdapter",
}
_cache: dict[str, Adapter] = {}


def adapter_names() -> list[str]:
    """Every adapter name, in detection order."""
    return list(_ADAPTERS)


def get_adapter(name: str) -> Adapter:
    """The adapter called ``name``; ``AdapterError`` when unknown or not importable."""
    if name not in _ADAPTERS:
        raise AdapterError(f"unknown format {name!r}; choose one of: auto, {', '.join(_ADAPTERS)}")
    if name not in _cache:
        module, attr = _ADAPTERS[name].split(":")
        try:
            _cache[name] = getattr(importlib.import_module(module), attr)()
        except (ImportError, AttributeError) as exc:
            raise AdapterError(f"adapter {name!r} is not available: {exc}") from exc
    return _cache[name]


def sniff_all(path: Path) -> tuple[Adapter | None, list[tuple[str, Sniff]]]:
    """Ask each adapter in turn (never ``mapping``); return the first that accepts ``path``
    (or None) and every answer so far. A sniff that raises counts as a refusal."""
    answers: list[tuple[str, Sniff]] = []
    for name in _ADAPTERS:
        if name == "mapping":
            continue
        try:
            adapter = get_adapter(name)
        except AdapterError as exc:
            answers.append((name, Sniff(False, str(exc))))
            continue
        try:
            verdict = adapter.sniff(path)
        except Exception as exc:  # noqa: BLE001 - a sniff must never crash the batch
            verdict = Sniff(False, f"sniff failed: {exc}")
        answers.append((name, verdict))
        if verdict.ok:
            return adapter, answers
    return None, answers


def detect(path: Path) -> tuple[Adapter, list[tuple[str, Sniff]]]:
    """Ask each adapter in turn; return the first that accepts ``path`` and every answer.

    Raises ``AdapterError`` listing each adapter's reason when none accepts it.
    The ``mapping`` adapter is never auto-detected: it needs ``--mapping``.
    """
    adapter, answers = sniff_all(path)
    if adapter is not None:
        return adapter, answers
    tried = "; ".join(f"{n}: {s.reason}" for n, s in answers)
    raise AdapterError(f"{path}: no adapter recognises this input (tried {tried})")
