"""OpenAI Codex CLI rollouts: ``~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl``.

Each line is ``{"timestamp", "type", "payload"}``:

* ``session_meta`` (first line): session ``id``, ``cli_version``, ``cwd``, ``originator``, ``git``
  -> trial key, agent version and metadata; its ``instructions`` / ``base_instructions.text``
  -> a system step;
* ``turn_context``: the ``model`` (agent model; a later different model goes on its steps),
  ``effort`` -> reasoning_effort of the agent steps that follow;
* ``response_item``: the conversation, mapped exactly like OpenAI Responses items (messages,
  ``reasoning`` summaries, ``function_call`` / ``custom_tool_call`` / ``local_shell_call`` and
  their ``*_output``, ``web_search_call``);
* ``event_msg``: ``token_count`` -> metrics of the agent steps of that model call
  (``last_token_usage``: ``input_tokens`` include ``cached_input_tokens``,
  ``reasoning_output_tokens`` and ``cache_write_input_tokens`` kept in ``metrics.extra``);
  ``item_started`` / ``item_completed`` (Codex 0.1xx) copy conversation items and are skipped;
  ``user_message``, ``agent_message``
  and ``agent_reasoning`` copy response items and are skipped as copies (mapped when their text
  is nowhere among the response items); other events (``task_started``, ``exec_command_end``
  ...) are counted as skipped;
* ``compacted``: the summary Codex replaced the history with -> a system step;
* ``token_usage_record`` (a copy of the usage of ``token_count``) and ``world_state`` (a settings
  snapshot) are counted as skipped, as is any unknown record type; ``atif convert --dry-run``
  lists each reason.

A sessions folder converts to one trial per rollout file. Task name: the file's stem; trial
key: the session id; agent ``codex`` at its ``cli_version``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.openai import ResponsesItems, parts_text, reasoning_text
from atif.adapters.sessionlog import Line, SessionLogAdapter
from atif.adapters.values import obj

__all__ = ["CodexAdapter", "codex_metrics"]

_TYPES = {"session_meta", "turn_context", "response_item", "event_msg", "compacted"}
_BOOKKEEPING = {
    "token_usage_record": "a token_usage_record (a per-response copy of the token_count event's usage)",
    "world_state": "a world_state record (a snapshot of the session's settings and context)",
}
_ITEM_COPIES = {"item_started", "item_completed", "item_updated"}
_COPIES = {"user_message", "agent_message", "agent_reasoning", "agent_reasoning_raw_content"}


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def codex_metrics(usage: Any) -> dict[str, Any] | None:
    """ATIF step metrics from a Codex ``TokenUsage`` (input tokens include the cached ones)."""
    if not isinstance(usage, dict):
        return None
    m: dict[str, Any] = {
        "prompt_tokens": _int(usage.get("input_tokens")),
        "completion_tokens": _int(usage.get("output_tokens")),
        "cached_tokens": _int(usage.get("cached_input_tokens")),
    }
    extra = {k: usage[k] for k in ("reasoning_output_tokens", "cache_write_input_tokens") if _int(usage.get(k))}
    if extra:
        m["extra"] = extra
    out = {k: v for k, v in m.items() if v is not None}
    return out or None


def _norm(text: str) -> str:
    return " ".join(text.split())


def _item_texts(lines: list[Line]) -> set[str]:
    texts: set[str] = set()
    for _, rec, _ in lines:
        p = obj(obj(rec).get("payload"))
        if obj(rec).get("type") == "response_item":
            for text in (parts_text(p.get("content")), reasoning_text(p)):
                if text:
                    texts.add(_norm(text))
    return texts


class CodexAdapter(SessionLogAdapter):
    """Codex CLI rollout JSONL files and sessions folders."""

    name = "codex"
    description = "Codex CLI rollout"

    def _marker(self, record: Any) -> str | None:
        if isinstance(record, dict) and record.get("type") in _TYPES and isinstance(record.get("payload"), dict):
            return f"a Codex rollout {record['type']} record (timestamp, type, payload)"
        return None

    def _convert_session(self, path: Path, lines: list[Line], options: ConvertOptions) -> Iterator[Converted | Failure]:
        meta = next((obj(r.get("payload")) for _, r, _ in lines if obj(r).get("type") == "session_meta"), {})
        model = next((obj(r.get("payload")).get("model") for _, r, _ in lines
                      if obj(r).get("type") == "turn_context" and isinstance(obj(r.get("payload")).get("model"), str)),
                     None)
        b = TrajectoryBuilder(agent_name="codex", agent_version=str(meta.get("cli_version") or "unknown"),
                              model_name=model, session_id=meta.get("id"))
        reader = ResponsesItems(b)
        seen = _item_texts(lines)
        step_model, effort = model, None
        last_usage_at = 0  # agent steps before this index already have their usage
        last_total: Any = None
        for n, rec, error in lines:
            where = f"line {n}"
            if error is not None:
                b.skip("a line that is not valid JSON", f"{where} ({error})")
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("payload"), dict):
                b.skip("a record without a payload object", where)
                continue
            t, p, ts = rec.get("type"), rec["payload"], rec.get("timestamp")
            before = len(b.steps)
            if t == "session_meta":
                b.count()
                instructions = p.get("instructions") or obj(p.get("base_instructions")).get("text")
                if isinstance(instructions, str) and instructions:
                    b.system(instructions, timestamp=ts, extra={"source": "session_meta"})
            elif t == "turn_context":
                b.count()
                if isinstance(p.get("model"), str):
                    step_model = p["model"]
                effort = p.get("effort") if isinstance(p.get("effort"), str) else effort
            elif t == "response_item":
                reader.add(p, where, timestamp=ts)
            elif t == "compacted":
                b.count()
                reader.open_step = None
                b.system(str(p.get("message") or ""), timestamp=ts, extra={"compacted": True})
            elif t == "event_msg":
                et = p.get("type")
                if et == "token_count":
                    info = obj(p.get("info"))
                    if not info.get("last_token_usage"):
                        b.skip("a token_count event without usage", where)
                        continue
                    if info.get("total_token_usage") == last_total:
                        b.skip("a repeated token_count event", where)
                        continue
                    last_total = info.get("total_token_usage")
                    agent_steps = [s for s in b.steps[last_usage_at:] if s["source"] == "agent"]
                    if not agent_steps:
                        b.skip("a token_count event with no model reply before it", where)
                        continue
                    b.count()
                    agent_steps[-1]["metrics"] = codex_metrics(info["last_token_usage"])
                    last_usage_at = len(b.steps)
                elif et in _ITEM_COPIES:
                    b.skip(f"an event_msg {et} (a copy of a conversation item)", where)
                elif et in _COPIES:
                    text = str(p.get("message") or p.get("text") or "")
                    if _norm(text) in seen or not text:
                        b.skip(f"an event_msg {et} (a copy of a response item)", where)
                    elif et == "user_message":
                        b.count()
                        b.user(text, timestamp=ts, extra={"source": "event_msg"})
                    elif et == "agent_message":
                        b.count()
                        reader.agent_step(text, {"source": "event_msg"}, timestamp=ts)
                    else:
                        b.count()
                        reader.reasoning.append(text)
                else:
                    b.skip(f"an event_msg {et} (runtime event, not conversation)", where)
            elif t in _BOOKKEEPING:
                b.skip(_BOOKKEEPING[t], where)
            else:
                b.skip(f"an unknown record type {t!r}", where)
            for s in b.steps[before:]:
                if s["source"] == "agent":
                    if step_model and step_model != model:
                        s["model_name"] = step_model
                    if effort:
                        s["reasoning_effort"] = effort
        reader.finish()
        traj = b.build()
        key = str(meta.get("id") or path.stem)
        info = {"cwd": meta.get("cwd"), "originator": meta.get("originator"), "codex_version": meta.get("cli_version"),
                "git": meta.get("git") or None}
        trial = make_trial(traj, task_name=path.stem, source_format=self.name, source_path=str(path),
                           source_ids={"session_id": meta.get("id")}, trial_id=key,
                           metadata={k: v for k, v in info.items() if v is not None})
        yield Converted(traj, trial, key, str(path), b.warnings, tally=b.tally())
