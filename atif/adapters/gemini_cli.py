"""Gemini CLI chat recordings: ``~/.gemini/tmp/<project>/chats/session-*.jsonl`` (or ``.json``).

Gemini CLI 0.5x+ appends a JSON Lines recording (``ChatRecordingService`` of
``@google/gemini-cli-core``); older versions wrote one ``.json`` document
``{"sessionId", "projectHash", "startTime", "lastUpdated", "messages": [...]}``. A recording is
replayed as the CLI itself loads it: the first record (``sessionId``, ``projectHash``,
``startTime``, ``kind``) is the metadata; a record with an ``id`` is a message, and a later record
with the same ``id`` replaces it in place (a reply is written first without, then with its
``toolCalls``); ``{"$set": {...}}`` updates the metadata (``$set.messages`` replaces every
message); ``{"$rewindTo": id}`` drops that message and all after it (counted as skipped). Mapping
of the messages:

* ``type: "user"`` -> a user step (``content`` is a string or a list of ``{"text"}`` parts); a
  user record that only carries ``functionResponse`` parts (the tool results sent back to the
  model, already kept in the reply's ``toolCalls``) is counted as skipped, as a copy;
* ``type: "gemini"`` -> an agent step: ``content`` -> message, ``thoughts`` (``subject`` and
  ``description``) -> reasoning_content, ``toolCalls`` (``id``, ``name``, ``args``) -> tool calls
  whose ``result`` (``functionResponse.response.output`` / ``error``, else ``resultDisplay``) is
  the observation (a ``status`` other than ``success`` kept in its ``extra``), ``tokens`` ->
  metrics (``input`` includes ``cached``; ``thoughts`` and ``tool`` token counts in ``extra``),
  ``model`` -> the step's model;
* ``info`` / ``warning`` / ``error`` messages -> system steps with their type in ``extra``;
  a top-level ``summary`` -> ``extra.summary``.

Subagents (``invoke_agent``): their recordings, ``chats/<session id>/<subagent session id>.jsonl``
(``kind: "subagent"``), become embedded ``subagent_trajectories`` (``trajectory_id``: the
subagent's own session id; ``session_id``: the parent's) referenced from the result of the call
whose ``agentId`` is the subagent's session id (else whose ``prompt`` is its first message). Converted alone, such a file is skipped when its parent session lies beside it.

Task name: the file's stem; trial key: the ``sessionId``; agent ``gemini-cli``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.jsonio import iter_jsonl_lenient, load_json_cached, sniff_json, sniff_jsonl_first
from atif.adapters.values import obj, text_of
from atif.errors import AtifError

__all__ = ["GeminiCliAdapter"]

_SUBAGENT_TOOLS = {"invoke_agent"}


def _is_session(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("messages"), list) and "sessionId" in doc and "projectHash" in doc


def _is_header(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("sessionId"), str) and isinstance(doc.get("projectHash"), str)


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


def _function_responses(content: Any) -> list[str] | None:
    """The ids of a user message made only of ``functionResponse`` parts, else None."""
    if not isinstance(content, list) or not content:
        return None
    ids: list[str] = []
    for part in content:
        fr = part.get("functionResponse") if isinstance(part, dict) else None
        if not isinstance(fr, dict):
            return None
        ids.append(str(fr.get("id")))
    return ids


class _Recording:
    """A recording replayed: metadata, the surviving messages in order, and what was dropped."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.messages: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (where, message)
        self.loose: list[tuple[str, Any]] = []  # messages without an id (a .json document may hold them)
        self.read = 0  # records merged into others (metadata, rewrites, rewinds); messages are counted when built
        self.skips: list[tuple[str, str]] = []  # (reason, where)

    @classmethod
    def of_document(cls, doc: dict[str, Any]) -> _Recording:
        rec = cls()
        rec.meta = {k: v for k, v in doc.items() if k != "messages"}
        rec.loose = [(f"messages[{i}]", m) for i, m in enumerate(doc["messages"])]
        return rec

    @classmethod
    def of_lines(cls, lines: list[tuple[int, Any, str | None]]) -> _Recording:
        rec = cls()
        msgs = rec.messages
        for n, r, error in lines:
            where = f"line {n}"
            if error is not None:
                rec.skips.append(("a line that is not valid JSON", f"{where} ({error})"))
                continue
            if not isinstance(r, dict):
                rec.skips.append(("a record that is not an object", where))
                continue
            rewind = r.get("$rewindTo")
            if isinstance(rewind, str):
                rec.read += 1
                ids = list(msgs)
                cut = ids.index(rewind) if rewind in ids else 0
                for mid in ids[cut:]:
                    rec.skips.append(("a message undone by a later $rewindTo", msgs.pop(mid)[0]))
                continue
            if isinstance(r.get("id"), str):
                if r["id"] in msgs:
                    rec.read += 1  # a rewrite: merged into the message, which is counted once
                msgs[r["id"]] = (where, r)  # a rewrite keeps the first position, as the CLI does
                continue
            update = r.get("$set")
            if isinstance(update, dict):
                rec.read += 1
                if isinstance(update.get("messages"), list):
                    for mid in list(msgs):
                        rec.skips.append(("a message replaced by a later $set.messages", msgs.pop(mid)[0]))
                    for i, m in enumerate(update["messages"]):
                        if isinstance(m, dict) and isinstance(m.get("id"), str):
                            msgs[m["id"]] = (f"{where} $set.messages[{i}]", m)
                        else:
                            rec.skips.append(("a message that is not an object with an id", f"{where} $set.messages[{i}]"))
                rec.meta.update({k: v for k, v in update.items() if k != "messages"})
                continue
            if _is_header(r):
                rec.read += 1
                rec.meta.update({k: v for k, v in r.items() if k != "messages"})
                listed = r.get("messages")
                for i, m in enumerate(listed if isinstance(listed, list) else []):
                    if isinstance(m, dict) and isinstance(m.get("id"), str):  # added, as the CLI loads them
                        msgs[m["id"]] = (f"{where} messages[{i}]", m)
                    else:
                        rec.skips.append(("a message that is not an object with an id", f"{where} messages[{i}]"))
                continue
            rec.skips.append((f"an unknown record with keys {sorted(r)[:4]}", where))
        return rec

    def items(self) -> list[tuple[str, Any]]:
        return self.loose + list(self.messages.values())


def _read(path: Path) -> _Recording:
    """Replay a ``.jsonl`` recording or read a ``.json`` one; :class:`AtifError` if unreadable."""
    if path.suffix.lower() == ".json":
        doc = load_json_cached(path)
        if not _is_session(doc):
            raise AtifError(f"{path}: not a Gemini CLI session")
        return _Recording.of_document(doc)
    rec = _Recording.of_lines(list(iter_jsonl_lenient(path)))
    if not isinstance(rec.meta.get("sessionId"), str):
        raise AtifError(f"{path}: not a Gemini CLI session (no sessionId/projectHash record)")
    return rec


def _build(rec: _Recording) -> tuple[TrajectoryBuilder, str | None]:
    """A recording's steps in a builder; also the text of its first user message."""
    items = rec.items()
    model = next((m["model"] for _, m in items if isinstance(m, dict) and isinstance(m.get("model"), str)), None)
    b = TrajectoryBuilder(agent_name="gemini-cli", model_name=model, session_id=rec.meta.get("sessionId"))
    b.read += rec.read
    for reason, where in rec.skips:
        b.skip(reason, where)
    call_ids = {str(c.get("id")) for _, m in items if isinstance(m, dict)
                for c in m.get("toolCalls") or [] if isinstance(c, dict)}
    first_user: str | None = None
    for where, m in items:
        if not isinstance(m, dict):
            b.skip("a message that is not an object", where)
            continue
        t, ts = m.get("type"), m.get("timestamp")
        if t == "user":
            replies = _function_responses(m.get("content"))
            if replies is not None and all(i in call_ids for i in replies):
                b.skip("a user message of tool results (copies of the reply's toolCalls results)", where)
                continue
            b.count()
            text = text_of(m.get("content")) if replies is None else orjson.dumps(m.get("content")).decode()
            b.user(text, timestamp=ts, extra={"function_responses": True} if replies is not None else None)
            if first_user is None and replies is None:
                first_user = text
        elif t == "gemini":
            b.count()
            thoughts = [": ".join(x for x in (obj(th).get("subject"), obj(th).get("description"))
                                  if isinstance(x, str) and x) for th in m.get("thoughts") or []]
            calls = [c for c in m.get("toolCalls") or [] if isinstance(c, dict)]
            step = b.agent_step(
                text_of(m.get("content")), timestamp=ts, reasoning_content="\n".join(x for x in thoughts if x) or None,
                model_name=m["model"] if isinstance(m.get("model"), str) and m["model"] != model else None,
                tool_calls=[b.tool_call(c.get("id"), c.get("name"), c.get("args")) for c in calls],
                metrics=_metrics(m.get("tokens")))
            for c, call in zip(calls, step.get("tool_calls") or [], strict=False):
                status = c.get("status")
                extra: dict[str, Any] = {"status": status} if isinstance(status, str) and status != "success" else {}
                if isinstance(c.get("agentId"), str):
                    extra["agent_id"] = c["agentId"]
                b.observe(call["tool_call_id"], _result_text(c), extra=extra or None)
        elif t in ("info", "warning", "error"):
            b.count()
            b.system(text_of(m.get("content")), timestamp=ts, extra={"type": t})
        else:
            b.skip(f"a message of unknown type {t!r}", where)
    return b, first_user


def _attach(b: TrajectoryBuilder, sub_id: str, sub: TrajectoryBuilder, prompt: str | None,
            summary: Any) -> dict[str, Any]:
    """Build a subagent's trajectory and reference it from the ``invoke_agent`` call that ran it."""
    b.read += sub.read
    for reason, n in sub.skips.items():
        b.skips[reason] = b.skips.get(reason, 0) + n
    b.warnings.extend(f"subagent {sub_id}: {w}" for w in sub.warnings)
    sub.trajectory_id = sub_id
    traj = sub.build(extra={"summary": summary} if isinstance(summary, str) and summary else None)
    ref = {"trajectory_id": sub_id}
    for step in b.steps:
        for res in (step.get("observation") or {}).get("results") or []:
            if (res.get("extra") or {}).get("agent_id") == sub_id:
                res.setdefault("subagent_trajectory_ref", []).append(ref)
                return traj
    want = (prompt or "").strip()
    for step in b.steps:
        for call in step.get("tool_calls") or []:
            if call["function_name"] in _SUBAGENT_TOOLS and want and str(call["arguments"].get("prompt", "")).strip() == want:
                results = [r for r in (step.get("observation") or {}).get("results") or []
                           if r.get("source_call_id") == call["tool_call_id"]]
                result = results[0] if results else b.observe(call["tool_call_id"], None)
                result.setdefault("subagent_trajectory_ref", []).append(ref)
                return traj
    b.warnings.append(f"subagent {sub_id}: no invoke_agent call names it; referenced from the last step")
    last = b.steps[-1] if b.steps else b.user("")
    last.setdefault("observation", {"results": []})["results"].append(
        {"content": None, "subagent_trajectory_ref": [ref], "extra": {"unlinked_subagent": True}})
    return traj


def _parent_session(path: Path, meta: dict[str, Any]) -> Path | None:
    """The main session file of a subagent recording ``chats/<parent id>/<id>.jsonl``, if it is there."""
    if meta.get("kind") != "subagent":
        return None
    parent_id = path.parent.name
    chats = path.parent.parent
    try:
        names = _session_names(chats, chats.stat().st_mtime_ns)
    except OSError:
        return None
    for name in names.get(parent_id[:8], ()):
        cand = chats / name
        head, _ = sniff_jsonl_first(cand) if cand.suffix == ".jsonl" else sniff_json(cand)
        if isinstance(head, dict) and head.get("sessionId") == parent_id:
            return cand
    return None


@functools.lru_cache(maxsize=8)
def _session_names(chats: Path, mtime_ns: int) -> dict[str, list[str]]:
    """``session-<time>-<id8>.json[l]`` names of a chats folder by their ``id8``, listed once per folder
    state: a folder of many sessions and subagents is not rescanned for each subagent."""
    out: dict[str, list[str]] = {}
    for name in sorted(os.listdir(chats)):
        if name.startswith("session-") and name.endswith((".json", ".jsonl")):
            out.setdefault(name.rsplit(".", 1)[0][-8:], []).append(name)
    return out


def _subagent_files(path: Path, session_id: Any) -> list[Path]:
    """The subagent recordings of a session: ``chats/<session id>/*.jsonl``."""
    folder = path.parent / str(session_id)
    if not isinstance(session_id, str) or not session_id or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".jsonl" and p.is_file())


class GeminiCliAdapter:
    """Gemini CLI chat recordings (JSON Lines, or the older single JSON document)."""

    name = "gemini-cli"
    description = "Gemini CLI chat recordings (chats/session-*.jsonl or .json)"

    def sniff(self, path: Path) -> Sniff:
        """Accept a ``.jsonl`` whose first record has ``sessionId`` and ``projectHash``, or a ``.json``
        document with ``sessionId``, ``projectHash`` and ``messages``."""
        suffix = path.suffix.lower()
        if not path.is_file() or suffix not in (".json", ".jsonl"):
            return Sniff(False, "not a .json or .jsonl file")
        if suffix == ".jsonl":
            head, why = sniff_jsonl_first(path)
            if why:
                return Sniff(False, why)
            if _is_header(head):
                return Sniff(True, "a Gemini CLI chat recording (first record: sessionId, projectHash)")
            return Sniff(False, "the first record has no sessionId/projectHash (not a Gemini CLI recording)")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        if _is_session(doc):
            return Sniff(True, "a Gemini CLI session (sessionId, projectHash, messages)")
        return Sniff(False, "no sessionId/projectHash/messages (not a Gemini CLI session)")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trial per session file, its subagents' recordings embedded."""
        if path.suffix.lower() == ".jsonl":  # a subagent's recording is converted inside its parent: not read twice
            head, _ = sniff_jsonl_first(path)
            parent = _parent_session(path, head) if isinstance(head, dict) else None
            if parent is not None:
                yield Failure(str(path), f"a subagent recording of {parent.name}; converted inside it", skipped=True)
                return
        try:
            rec = _read(path)
        except AtifError as exc:
            yield Failure(str(path), str(exc))
            return
        meta = rec.meta
        session_id = meta.get("sessionId")
        b, _ = _build(rec)
        embedded = []
        for f in _subagent_files(path, session_id):
            try:
                sub = _read(f)
            except AtifError as exc:
                b.warnings.append(f"subagent recording {f.name}: {exc}; left out")
                continue
            sb, prompt = _build(sub)
            sb.session_id = session_id  # ATIF: one run identity for a trajectory and its subagents
            embedded.append(_attach(b, str(sub.meta.get("sessionId") or f.stem), sb, prompt, sub.meta.get("summary")))
        summary = meta.get("summary")
        traj = b.build(extra={"summary": summary} if isinstance(summary, str) and summary else None)
        if embedded:
            traj["subagent_trajectories"] = embedded
        key = str(session_id or path.stem)
        info = {"kind": meta.get("kind"), "start_time": meta.get("startTime"), "directories": meta.get("directories")}
        trial = make_trial(traj, task_name=path.stem, source_format=self.name, source_path=str(path), trial_id=key,
                           source_ids={"session_id": session_id, "project_hash": meta.get("projectHash")},
                           metadata={k: v for k, v in info.items() if v} or None)
        yield Converted(traj, trial, key, str(path), b.warnings, tally=b.tally())
