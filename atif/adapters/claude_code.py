"""Claude Code session transcripts: ``~/.claude/projects/<project>/<session>.jsonl``.

Each line is one record: ``{"type": "user" | "assistant" | "system" | "summary" | ..., "uuid",
"parentUuid", "sessionId", "timestamp", "isSidechain", "cwd", "version", "message": {...}}``.
``message`` is an Anthropic Messages message, so blocks map as in the ``anthropic`` adapter:

* ``user`` records: text -> a user step (``isMeta`` / ``isCompactSummary`` kept in ``extra``);
  ``tool_result`` blocks -> observations of the agent step whose ``tool_use`` has that id;
* ``assistant`` records: ``text`` -> message, ``thinking`` -> reasoning_content, ``tool_use`` ->
  tool calls, ``usage`` (``input_tokens`` exclude the cache; ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens`` are added to prompt tokens, the creation count kept in
  ``metrics.extra``). Claude Code writes one record per content block of a streamed reply, all
  with the same ``message.id``: they form one agent step (usage from the last of them);
* ``system`` records with text -> system steps; ``summary`` records -> ``extra.summaries``;
* ``attachment`` records with text (context Claude Code adds to the prompt: skill and agent
  listings, hook output ...) -> system steps with the attachment ``type`` in ``extra``; others
  are counted as skipped;
* other records (``file-history-snapshot``, ``queue-operation``, ``last-prompt`` ...) are
  counted as skipped, each reason listed by ``atif convert --dry-run``.

Subagents (the Task tool): transcripts in ``agent-<id>.jsonl`` (beside the session or under
``<session>/subagents/``, ``isSidechain: true``) and sidechain records inside the session file
become embedded ``subagent_trajectories``, referenced from the observation of the Task call that
launched them: the call whose result names the ``agentId`` (``toolUseResult.agentId``), or the
``toolUseId`` of ``agent-<id>.meta.json``, else the call whose ``prompt`` is the subagent's first
message (else from a result of the last step, with a warning); the ref's ``extra`` keeps the
meta file's ``agentType`` and ``description``. The session's ``final_metrics`` token totals are
its own steps' (as ATIF defines them); ``final_metrics.extra.with_subagents`` adds the subagents'.

A projects folder (or one project's folder) converts to one trial per session file. Task name:
the session file's stem; trial key: the ``sessionId``; agent ``claude-code`` at the transcript's
``version``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from atif.adapters.anthropic import add_assistant_message, add_user_message, anthropic_metrics
from atif.adapters.base import Converted, ConvertOptions, Failure
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.jsonio import iter_jsonl_lenient
from atif.adapters.sessionlog import Line, SessionLogAdapter
from atif.adapters.values import iso_timestamp, obj, text_of
from atif.errors import AtifError

__all__ = ["ClaudeCodeAdapter"]

_CONVERSATION = {"user", "assistant", "system", "summary"}
_KNOWN_OTHER = {"file-history-snapshot", "queue-operation", "custom-title", "tag", "progress", "last-prompt"}
_TASK_TOOLS = {"Task", "Agent"}
_TOTALS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")


def _is_agent_file(path: Path) -> bool:
    return path.name.startswith("agent-") and path.suffix == ".jsonl"


class ClaudeCodeAdapter(SessionLogAdapter):
    """Claude Code session JSONL files and projects folders."""

    name = "claude-code"
    description = "Claude Code session"

    def _marker(self, record: Any) -> str | None:
        if not isinstance(record, dict):
            return None
        t = record.get("type")
        if t in ("user", "assistant") and "sessionId" in record and "uuid" in record and isinstance(
            record.get("message"), dict
        ):
            return f"a Claude Code {t} record (sessionId, uuid, message)"
        if t == "summary" and "leafUuid" in record:
            return "a Claude Code summary record (leafUuid)"
        return None

    def _is_session_file(self, path: Path) -> bool:
        return path.suffix == ".jsonl" and not _is_agent_file(path) and path.parent.name != "subagents"

    def _convert_session(self, path: Path, lines: list[Line], options: ConvertOptions) -> Iterator[Converted | Failure]:
        records = [r for _, r, _ in lines if isinstance(r, dict)]
        session_id = next((r["sessionId"] for r in records if isinstance(r.get("sessionId"), str)), None)
        if _is_agent_file(path) and session_id and self._parent_of(path, session_id) is not None:
            yield Failure(str(path), f"a subagent transcript of session {session_id}; converted inside it", skipped=True)
            return
        main = [(n, r, e) for n, r, e in lines if not (isinstance(r, dict) and r.get("isSidechain")) or _is_agent_file(path)]
        sidechains = _sidechain_groups([(n, r) for n, r, _ in lines if isinstance(r, dict) and r.get("isSidechain")
                                        and not _is_agent_file(path)])
        b, info = _build(main)
        subagents: list[tuple[str, TrajectoryBuilder, dict[str, Any]]] = []
        for root, group in sidechains:
            sb, sinfo = _build(group)
            subagents.append((f"sidechain-{root[:12]}", sb, sinfo))
        for f in self._agent_files(path, session_id):
            try:
                sub_lines = list(iter_jsonl_lenient(f))
            except AtifError as exc:
                b.warnings.append(f"subagent transcript {f.name}: {exc}; left out")
                continue
            sb, sinfo = _build(sub_lines)
            agent_id = next((r["agentId"] for _, r, _ in sub_lines if isinstance(r, dict)
                             and isinstance(r.get("agentId"), str)), None) or f.stem.removeprefix("agent-")
            meta = _agent_meta(f)
            sinfo["call_id"] = info["links"].get(agent_id) or meta.get("toolUseId")
            sinfo["ref_extra"] = {k: meta[k] for k in ("agentType", "description") if isinstance(meta.get(k), str)}
            subagents.append((f"agent-{agent_id}", sb, sinfo))
        embedded = [_attach(b, tid, sb, sinfo) for tid, sb, sinfo in subagents]
        traj = b.build(extra=info["extra"] or None)
        if embedded:
            traj["subagent_trajectories"] = embedded
            _add_subagent_totals(traj, embedded)
        key = session_id or path.stem
        trial = make_trial(traj, task_name=path.stem, source_format=self.name, source_path=str(path),
                           source_ids={"session_id": session_id}, trial_id=key,
                           metadata={k: v for k, v in info["meta"].items() if v is not None})
        yield Converted(traj, trial, key, str(path), b.warnings, tally=b.tally())

    @staticmethod
    def _parent_of(path: Path, session_id: str) -> Path | None:
        for cand in (path.parent / f"{session_id}.jsonl", path.parent.parent.parent / f"{session_id}.jsonl"):
            if cand.is_file() and cand != path:
                return cand
        return None

    @staticmethod
    def _agent_files(path: Path, session_id: str | None) -> list[Path]:
        if _is_agent_file(path) or not session_id:
            return []
        found = sorted((path.parent / path.stem / "subagents").glob("agent-*.jsonl"))
        try:
            mtime = path.parent.stat().st_mtime_ns
        except OSError:
            return found
        return found + _sibling_agents(path.parent, mtime).get(session_id, [])


def _agent_meta(path: Path) -> dict[str, Any]:
    """The ``agent-<id>.meta.json`` beside a subagent transcript (``toolUseId``, ``agentType``,
    ``description``; Claude Code 2.1+), or ``{}``."""
    meta = path.with_name(path.name.removesuffix(".jsonl") + ".meta.json")
    if not meta.is_file():
        return {}
    try:
        doc = orjson.loads(meta.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


@functools.lru_cache(maxsize=8)
def _sibling_agents(folder: Path, mtime_ns: int) -> dict[str, list[Path]]:
    """``sessionId`` -> the ``agent-*.jsonl`` transcripts lying in ``folder`` (older Claude Code
    versions), read once per folder state: a folder of many sessions is not rescanned per session."""
    out: dict[str, list[Path]] = {}
    for f in sorted(folder.glob("agent-*.jsonl")):
        first = next(SessionLogAdapter._head(f), None)
        if isinstance(first, dict) and isinstance(first.get("sessionId"), str):
            out.setdefault(first["sessionId"], []).append(f)
    return out


def _sidechain_groups(lines: list[tuple[int, dict[str, Any]]]) -> list[tuple[str, list[Line]]]:
    """Sidechain records grouped by the root of their ``parentUuid`` chain, in order of first appearance."""
    parent = {r.get("uuid"): r.get("parentUuid") for _, r in lines}
    groups: dict[str, list[Line]] = {}
    for n, r in lines:
        node = r.get("uuid")
        seen: set[Any] = set()
        while parent.get(node) in parent and node not in seen:
            seen.add(node)
            node = parent[node]
        groups.setdefault(str(node), []).append((n, r, None))
    return list(groups.items())


def _build(lines: list[Line]) -> tuple[TrajectoryBuilder, dict[str, Any]]:
    """One transcript's records as a builder, plus ``{"extra", "meta", "first_user", "model"}``."""
    records = [r for _, r, _ in lines if isinstance(r, dict)]
    first = next((r for r in records if r.get("type") in ("user", "assistant")), {})
    model = next((m.get("model") for r in records if r.get("type") == "assistant"
                  for m in [obj(r.get("message"))] if isinstance(m.get("model"), str)
                  and not m["model"].startswith("<")), None)
    b = TrajectoryBuilder(agent_name="claude-code", agent_version=str(first.get("version") or "unknown"),
                          model_name=model, session_id=first.get("sessionId"))
    summaries: list[str] = []
    by_message: dict[str, dict[str, Any]] = {}
    first_user: str | None = None
    links: dict[str, str] = {}
    for n, rec, error in lines:
        where = f"line {n}"
        if error is not None:
            b.skip("a line that is not valid JSON", f"{where} ({error})")
            continue
        if not isinstance(rec, dict):
            b.skip("a record that is not an object", where)
            continue
        t = rec.get("type")
        msg = obj(rec.get("message"))
        ts = rec.get("timestamp")
        if t == "summary":
            b.count()
            if isinstance(rec.get("summary"), str):
                summaries.append(rec["summary"])
        elif t == "user" and msg:
            b.count()
            extra = {k: True for k, flag in (("is_meta", "isMeta"), ("is_compact_summary", "isCompactSummary"))
                     if rec.get(flag)}
            add_user_message(b, msg.get("content"), ts, extra=extra or None)
            agent_id = obj(rec.get("toolUseResult")).get("agentId")
            content = msg.get("content")
            if isinstance(agent_id, str) and isinstance(content, list):
                call_id = next((blk.get("tool_use_id") for blk in content
                                if isinstance(blk, dict) and blk.get("type") == "tool_result"), None)
                if isinstance(call_id, str):
                    links[agent_id] = call_id
            if first_user is None:
                first_user = text_of(msg.get("content"))
        elif t == "assistant" and msg:
            b.count()
            mid = msg.get("id")
            if isinstance(mid, str) and mid in by_message:
                _merge(b, by_message[mid], msg)
            else:
                step = add_assistant_message(b, msg, model, ts)
                if isinstance(mid, str):
                    by_message[mid] = step
        elif t == "system" and isinstance(rec.get("content"), str) and rec["content"]:
            b.count()
            b.system(rec["content"], timestamp=ts,
                     extra={k: rec[k] for k in ("subtype", "level") if isinstance(rec.get(k), str)} or None)
        elif t == "system":
            b.skip("a system record without text", f"{where} ({rec.get('subtype')})")
        elif t == "attachment":
            att = obj(rec.get("attachment"))
            kind = att.get("type") if isinstance(att.get("type"), str) else "?"
            added = att.get("addedLines")
            text: str = att["content"] if isinstance(att.get("content"), str) else (
                "\n".join(x for x in added if isinstance(x, str)) if isinstance(added, list) else "")
            if text.strip():
                b.count()
                # Claude Code stamps an attachment when it was gathered, which may be before the
                # prompt it is attached to: such a stamp stays in extra, off the step timeline.
                prev = next((s["timestamp"] for s in reversed(b.steps) if s.get("timestamp")), None)
                stamp = iso_timestamp(ts)
                early = bool(stamp and prev and stamp < prev)
                b.system(text, timestamp=None if early else ts,
                         extra={"attachment": kind, **({"timestamp": stamp} if early else {})})
            else:
                b.skip(f"an attachment record of type {kind!r} without text (context bookkeeping)", where)
        elif t in _KNOWN_OTHER:
            b.skip(f"a {t} record (session bookkeeping, not conversation)", where)
        elif t in _CONVERSATION:
            b.skip(f"a {t} record without a message", where)
        else:
            b.skip(f"an unknown record type {t!r}", where)
    meta = {"cwd": first.get("cwd"), "git_branch": first.get("gitBranch") or None, "claude_code_version": first.get("version")}
    traj_extra: dict[str, Any] = {"summaries": summaries} if summaries else {}
    return b, {"extra": traj_extra, "meta": meta, "first_user": first_user, "links": links}


def _merge(b: TrajectoryBuilder, step: dict[str, Any], msg: Mapping[str, Any]) -> None:
    """Add one more streamed block record of the same message to its agent step."""
    content = msg.get("content")
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        t = block.get("type")
        if t == "text" and isinstance(block.get("text"), str) and block["text"]:
            step["message"] = f"{step['message']}\n{block['text']}" if step.get("message") else block["text"]
        elif t == "thinking" and isinstance(block.get("thinking"), str) and block["thinking"]:
            prev = step.get("reasoning_content")
            step["reasoning_content"] = f"{prev}\n{block['thinking']}" if prev else block["thinking"]
        elif t in ("tool_use", "server_tool_use", "mcp_tool_use"):
            ext = {"type": t} if t != "tool_use" else None
            b.add_tool_call(step, b.tool_call(block.get("id"), block.get("name"), block.get("input"), extra=ext))
        elif t == "redacted_thinking":
            extra = step.setdefault("extra", {})
            extra["redacted_thinking_blocks"] = extra.get("redacted_thinking_blocks", 0) + 1
    metrics = anthropic_metrics(msg.get("usage"))
    if metrics:
        step["metrics"] = metrics
    if isinstance(msg.get("stop_reason"), str):
        step.setdefault("extra", {})["stop_reason"] = msg["stop_reason"]


def _attach(b: TrajectoryBuilder, tid: str, sub: TrajectoryBuilder, info: dict[str, Any]) -> dict[str, Any]:
    """Build a subagent's trajectory, reference it from the Task call that launched it; return it."""
    b.read += sub.read
    for reason, n in sub.skips.items():
        b.skips[reason] = b.skips.get(reason, 0) + n
    b.warnings.extend(f"subagent {tid}: {w}" for w in sub.warnings)
    sub.trajectory_id = tid
    traj = sub.build(extra=info["extra"] or None)
    ref: dict[str, Any] = {"trajectory_id": tid}
    if info.get("ref_extra"):
        ref["extra"] = info["ref_extra"]
    prompt = (info.get("first_user") or "").strip()
    call_id = info.get("call_id")
    for step in b.steps:
        for call in step.get("tool_calls") or []:
            if call["tool_call_id"] == call_id or call_id is None and call["function_name"] in _TASK_TOOLS and prompt \
                    and str(call["arguments"].get("prompt", "")).strip() == prompt:
                results = [r for r in (step.get("observation") or {}).get("results") or []
                           if r.get("source_call_id") == call["tool_call_id"]]
                result = results[0] if results else b.observe(call["tool_call_id"], None)
                result.setdefault("subagent_trajectory_ref", []).append(ref)
                return traj
    b.warnings.append(f"subagent {tid}: no Task call with its prompt; referenced from the last step")
    last = b.steps[-1] if b.steps else b.user("")
    last.setdefault("observation", {"results": []})["results"].append(
        {"content": None, "subagent_trajectory_ref": [ref], "extra": {"unlinked_subagent": True}})
    return traj


def _add_subagent_totals(traj: dict[str, Any], subs: list[dict[str, Any]]) -> None:
    """ATIF token totals are sums over the trajectory's own steps (the validator checks them), while
    ``total_cost_usd`` includes subagents: so subagent costs are added to the cost, and the token
    totals with the subagents included go to ``final_metrics.extra.with_subagents``."""
    fm = traj.setdefault("final_metrics", {})
    both = {k: v for k, v in fm.items() if k.removeprefix("total_") in _TOTALS and isinstance(v, (int, float))}
    for sub in subs:
        for k, v in (sub.get("final_metrics") or {}).items():
            if k.removeprefix("total_") in _TOTALS and isinstance(v, (int, float)):
                both[k] = both.get(k, 0) + v
    if "total_cost_usd" in both:
        fm["total_cost_usd"] = both["total_cost_usd"]
    fm.setdefault("extra", {})["with_subagents"] = dict(sorted(both.items()))
