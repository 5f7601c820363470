"""Gemini CLI saved sessions: ``~/.gemini/tmp/<project hash>/chats/session-*.json``.

A session is ``{"sessionId", "projectHash", "startTime", "lastUpdated", "messages": [...]}``
(``ConversationRecord`` of ``@google/gemini-cli-core``'s chat recording service). Mapping:

* ``type: "user"`` -> a user step (``content`` is a string or a list of ``{"text"}`` parts);
* ``type: "gemini"`` -> an agent step: ``content`` -> message, ``thoughts`` (``subject`` and
  ``description``) -> reasoning_content, ``toolCalls`` (``id``, ``name``, ``args``) -> tool calls
  whose ``result`` (``functionResponse.response.output`` / ``error``, else ``resultDisplay``) is
  the observation (a ``status`` other than ``success`` kept in its ``extra``), ``tokens`` ->
  metrics (``input`` includes ``cached``; ``thoughts`` and ``tool`` token counts in ``extra``),
  ``model`` -> the step's model;
* ``info`` / ``warning`` / ``error`` messages -> system steps with their type in ``extra``;
  a top-level ``summary`` -> ``extra.summary``.

Task name: the file's stem; trial key: the ``sessionId``; agent ``gemini-cli``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.jsonio import load_json_cached, sniff_json
from atif.adapters.values import obj, text_of
from atif.errors import AtifError

__all__ = ["GeminiCliAdapter"]


def _is_session(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("messages"), list) and "sessionId" in doc and "projectHash" in doc


def _result_text(call: dict[str, Any]) -> str | None:
    parts = call.get("result")
    texts: list[str] = []
    for p in parts if isinstance(parts, list) else [parts] if parts is not None else []:
        p = obj(p)
        fr = obj(p.get("functionResponse"))
        if fr:
            resp = obj(fr.get("response"))
            value = resp.get("output", resp.get("error", resp or None))
            if value is not None:
                texts.append(value if isinstance(value, str) else orjson.dumps(value).decode())
        elif isinstance(p.get("text"), str):
            texts.append(p["text"])
    if texts:
        return "\n".join(texts)
    display = call.get("resultDisplay")
    return display if isinstance(display, str) else None


def _metrics(tokens: Any) -> dict[str, Any] | None:
    t = obj(tokens)
    if not t:
        return None
    m: dict[str, Any] = {k: t[src] for k, src in (("prompt_tokens", "input"), ("completion_tokens", "output"),
                                                    ("cached_tokens", "cached")) if isinstance(t.get(src), int)}
    extra = {f"{k}_tokens": t[k] for k in ("thoughts", "tool") if isinstance(t.get(k), int) and t[k]}
    if extra:
        m["extra"] = extra
    return m or None


class GeminiCliAdapter:
    """Gemini CLI chat recordings."""

    name = "gemini-cli"
    description = "Gemini CLI saved sessions (session-*.json)"

    def sniff(self, path: Path) -> Sniff:
        """Accept a ``.json`` file with ``sessionId``, ``projectHash`` and ``messages``."""
        if not path.is_file() or path.suffix.lower() != ".json":
            return Sniff(False, "not a .json file")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        if _is_session(doc):
            return Sniff(True, "a Gemini CLI session (sessionId, projectHash, messages)")
        return Sniff(False, "no sessionId/projectHash/messages (not a Gemini CLI session)")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trial per session file."""
        try:
            doc = load_json_cached(path)
        except AtifError as exc:
            yield Failure(str(path), str(exc))
            return
        if not _is_session(doc):
            yield Failure(str(path), "not a Gemini CLI session")
            return
        msgs = doc["messages"]
        model = next((m["model"] for m in msgs if isinstance(m, dict) and isinstance(m.get("model"), str)), None)
        b = TrajectoryBuilder(agent_name="gemini-cli", model_name=model, session_id=doc.get("sessionId"))
        for i, m in enumerate(msgs):
            if not isinstance(m, dict):
                b.skip("a message that is not an object", f"messages[{i}]")
                continue
            t, ts, text = m.get("type"), m.get("timestamp"), text_of(m.get("content"))
            if t == "user":
                b.count()
                b.user(text, timestamp=ts)
            elif t == "gemini":
                b.count()
                thoughts = [": ".join(x for x in (obj(th).get("subject"), obj(th).get("description"))
                                      if isinstance(x, str) and x) for th in m.get("thoughts") or []]
                calls = [c for c in m.get("toolCalls") or [] if isinstance(c, dict)]
                step = b.agent_step(
                    text, timestamp=ts, reasoning_content="\n".join(x for x in thoughts if x) or None,
                    model_name=m["model"] if isinstance(m.get("model"), str) and m["model"] != model else None,
                    tool_calls=[b.tool_call(c.get("id"), c.get("name"), c.get("args")) for c in calls],
                    metrics=_metrics(m.get("tokens")))
                for c, call in zip(calls, step.get("tool_calls") or [], strict=False):
                    status = c.get("status")
                    b.observe(call["tool_call_id"], _result_text(c),
                              extra={"status": status} if isinstance(status, str) and status != "success" else None)
            elif t in ("info", "warning", "error"):
                b.count()
                b.system(text, timestamp=ts, extra={"type": t})
            else:
                b.skip(f"a message of unknown type {t!r}", f"messages[{i}]")
        summary = doc.get("summary")
        traj = b.build(extra={"summary": summary} if isinstance(summary, str) and summary else None)
        key = str(doc.get("sessionId") or path.stem)
        trial = make_trial(traj, task_name=path.stem, source_format=self.name, source_path=str(path), trial_id=key,
                           source_ids={"session_id": doc.get("sessionId"), "project_hash": doc.get("projectHash")})
        yield Converted(traj, trial, key, str(path), b.warnings, tally=b.tally())
