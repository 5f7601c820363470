"""OpenHands trajectories: the event stream OpenHands saves (``save_trajectory_path``, the
trajectory download), a JSON list of serialised events (or ``{"trajectory": [...]}``).

Each event has ``id``, ``timestamp``, ``source`` (``user``, ``agent``, ``environment``) and either
an ``action`` with ``args`` or an ``observation`` with ``content``, ``extras`` and ``cause`` (the
id of the action it answers). Mapping:

* ``system`` action -> a system step (``args.content``); ``message`` actions -> user or agent steps
  (``args.content``);
* actions with ``tool_call_metadata`` (``run``, ``read``, ``edit``, ``think``, ``finish`` ...) -> tool
  calls named ``function_name`` with the arguments the model sent (from ``model_response``, else
  ``args``); the actions of one model response (same ``model_response.id``) form one agent step,
  whose message is the response's text (else the action's ``thought``) and whose metrics are the
  response's ``usage``;
* the action's own ``args`` (OpenHands' runtime fields) and its display ``message`` are kept in the
  tool call's ``extra``;
* observations answer their action's tool call (by ``tool_call_metadata.tool_call_id``, else by
  ``cause``); an observation of a plain message action is a user step;
* runtime events (``agent_state_changed``, ``recall``, ``null`` ...) are counted as skipped.

Task name: the file's stem; trial key: the same; agent: the ``agent_class`` of the system action
(``CodeActAgent``) at its ``openhands_version``.

**OpenHands SDK (V1) conversations**: the folder a ``Conversation`` persists
(``<persistence_dir>/<conversation id>/``: ``base_state.json`` and ``events/event-<n>-<id>.json``,
one event per file), or a JSON list of such events. Events have a ``kind``:

* ``SystemPromptEvent`` -> a system step (``system_prompt`` and ``dynamic_context`` text); its
  ``tools`` -> the agent's ``tool_definitions``;
* ``MessageEvent`` -> a user or agent step (``llm_message`` text, ``reasoning_content``);
* ``ActionEvent`` -> tool calls (``tool_call``: id, name, the model's arguments), the actions of one
  model response (same ``llm_response_id``) forming one agent step whose message is their
  ``thought`` and whose metrics are that response's ``token_usages`` entry in
  ``base_state.json`` ``stats`` (``cache_read_tokens`` -> cached, ``cache_write_tokens`` and
  ``reasoning_tokens`` in ``metrics.extra``); ``summary`` and ``security_risk`` in the call's extra;
* ``ObservationEvent`` (``observation.content`` text, ``is_error``, ``exit_code``),
  ``AgentErrorEvent`` (``error``) and ``UserRejectObservation`` (``rejection_reason``) -> results of
  their tool call;
* other kinds (conversation state updates, pauses, condensations) are counted as skipped.

Agent ``openhands-sdk`` (the agent ``kind`` in ``extra``), model the agent's ``llm.model``; task
name and trial key: the conversation id (the folder's name); ``total_cost_usd`` from the
accumulated cost of the conversation's LLMs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.jsonio import load_json_cached, sniff_json
from atif.adapters.jsonio import read_json as load_json
from atif.adapters.openai import chat_metrics
from atif.adapters.values import obj, text_of
from atif.errors import AtifError

__all__ = ["OpenHandsAdapter"]

_RUNTIME = {"agent_state_changed", "recall", "null", "change_agent_state", "condensation", "user_rejected"}


def _events(doc: Any) -> list[Any] | None:
    events = doc.get("trajectory") if isinstance(doc, dict) else doc
    if isinstance(events, list) and events and all(isinstance(e, dict) for e in events) and any(
        ("action" in e or "observation" in e) and "source" in e for e in events
    ):
        return events
    return None


def _model_call(meta: dict[str, Any], call_id: Any) -> tuple[str, Any]:
    """``(text of the model response, the arguments of this call)`` from ``tool_call_metadata``."""
    message = obj(obj((obj(meta.get("model_response")).get("choices") or [{}])[0]).get("message"))
    for tc in message.get("tool_calls") or []:
        if obj(tc).get("id") == call_id:
            return text_of(message.get("content")), obj(tc.get("function")).get("arguments")
    return text_of(message.get("content")), None



_V1_KINDS = {"SystemPromptEvent", "MessageEvent", "ActionEvent", "ObservationEvent", "AgentErrorEvent",
             "UserRejectObservation"}


def _v1_events(doc: Any) -> list[dict[str, Any]] | None:
    """A list of OpenHands SDK events (each with a ``kind``, some conversational), else None."""
    if isinstance(doc, list) and doc and all(isinstance(e, dict) and isinstance(e.get("kind"), str) for e in doc) \
            and any(e["kind"] in _V1_KINDS for e in doc):
        return doc
    return None


def _v1_folder(path: Path) -> list[Path] | None:
    """The event files of an SDK conversation folder (``events/event-*.json``), else None."""
    events = path / "events"
    if not events.is_dir():
        return None
    files = sorted(p for p in events.iterdir() if p.name.startswith("event-") and p.suffix == ".json")
    return files or None


def _texts(parts: Any) -> str:
    return "\n".join(t for p in parts or [] for t in [obj(p).get("text")] if isinstance(t, str))


def _v1_metrics(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    m: dict[str, Any] = {k: usage[src] for k, src in (("prompt_tokens", "prompt_tokens"),
                                                      ("completion_tokens", "completion_tokens"),
                                                      ("cached_tokens", "cache_read_tokens"))
                         if isinstance(usage.get(src), int)}
    extra = {k: usage[k] for k in ("cache_write_tokens", "reasoning_tokens") if isinstance(usage.get(k), int) and usage[k]}
    if extra:
        m["extra"] = extra
    return m or None


def _convert_v1(events: list[tuple[str, dict[str, Any]]], state: dict[str, Any], key: str,
                source: str, name: str, unreadable: list[tuple[str, str]] | None = None) -> Converted:
    """One SDK conversation: ``events`` as ``(where, event)`` in order, ``state`` its base_state.json."""
    agent = obj(state.get("agent"))
    model = obj(agent.get("llm")).get("model")
    metrics = [obj(m) for m in obj(obj(state.get("stats")).get("usage_to_metrics")).values()]
    usage = {u["response_id"]: u for m in metrics for u in m.get("token_usages") or []
             if isinstance(u, dict) and isinstance(u.get("response_id"), str) and u["response_id"]}
    b = TrajectoryBuilder(agent_name="openhands-sdk", model_name=model if isinstance(model, str) else None,
                          session_id=state.get("id") if isinstance(state.get("id"), str) else None,
                          agent_extra={"kind": agent["kind"]} if isinstance(agent.get("kind"), str) else None)
    by_response: dict[str, dict[str, Any]] = {}
    for where, why in unreadable or []:
        b.skip(f"an unreadable event file ({why})", where)
    for where, e in events:
        kind, ts = e.get("kind"), e.get("timestamp")
        if kind == "SystemPromptEvent":
            b.count()
            b.system("\n\n".join(t for t in (_texts([e.get("system_prompt")]), _texts([e.get("dynamic_context")])) if t),
                     timestamp=ts)
            tools = [{"type": "function", "function": {"name": t.get("title") or obj(t.get("annotations")).get("title")
                                                       or t.get("kind"), "description": t.get("description")}}
                     for t in e.get("tools") or [] if isinstance(t, dict)]
            if tools:
                b.agent["tool_definitions"] = tools
        elif kind == "MessageEvent":
            b.count()
            msg = obj(e.get("llm_message"))
            text = _texts(msg.get("content")) if isinstance(msg.get("content"), list) else text_of(msg.get("content"))
            if e.get("source") == "agent":
                reasoning = msg.get("reasoning_content") if isinstance(msg.get("reasoning_content"), str) else None
                rid = e.get("llm_response_id")
                b.agent_step(text, timestamp=ts, reasoning_content=reasoning or None,
                             metrics=_v1_metrics(usage.get(rid)) if isinstance(rid, str) else None)
            else:
                b.user(text, timestamp=ts)
        elif kind == "ActionEvent":
            b.count()
            tc = obj(e.get("tool_call"))
            extra = {k: e[k] for k in ("summary", "security_risk") if isinstance(e.get(k), str) and e[k]}
            call = b.tool_call(tc.get("id") or e.get("tool_call_id"), tc.get("name") or e.get("tool_name"),
                               tc.get("arguments"), extra=extra or None)
            rid = e.get("llm_response_id")
            step = by_response.get(rid) if isinstance(rid, str) else None
            if step is None:
                reasoning = e.get("reasoning_content") if isinstance(e.get("reasoning_content"), str) else None
                step = b.agent_step(_texts(e.get("thought")), timestamp=ts, reasoning_content=reasoning or None,
                                    metrics=_v1_metrics(usage.get(rid)) if isinstance(rid, str) else None)
                if isinstance(rid, str):
                    by_response[rid] = step
            b.add_tool_call(step, call)
        elif kind == "ObservationEvent":
            b.count()
            o = obj(e.get("observation"))
            ext: dict[str, Any] = {"observation": o["kind"]} if isinstance(o.get("kind"), str) else {}
            if o.get("is_error"):
                ext["is_error"] = True
            if isinstance(o.get("exit_code"), int):
                ext["exit_code"] = o["exit_code"]
            b.observe(e.get("tool_call_id"), _texts(o.get("content")) + _texts(e.get("extended_content")),
                      extra=ext or None)
        elif kind == "AgentErrorEvent":
            b.count()
            b.observe(e.get("tool_call_id"), str(e.get("error") or ""), extra={"is_error": True})
        elif kind == "UserRejectObservation":
            b.count()
            b.observe(e.get("tool_call_id"), str(e.get("rejection_reason") or ""), extra={"rejected": True})
        else:
            b.skip(f"a {kind} event (conversation state, not conversation)", where)
    traj = b.build()
    cost = sum(m["accumulated_cost"] for m in metrics if isinstance(m.get("accumulated_cost"), (int, float)))
    if cost:
        traj.setdefault("final_metrics", {})["total_cost_usd"] = cost
    trial = make_trial(traj, task_name=key, source_format=name, source_path=source, trial_id=key,
                       source_ids={"conversation_id": state.get("id")} if state.get("id") else None)
    return Converted(traj, trial, key, source, b.warnings, tally=b.tally())


class OpenHandsAdapter:
    """OpenHands event-stream trajectories."""

    name = "openhands"
    description = "OpenHands trajectories (event stream: actions and observations)"

    def sniff(self, path: Path) -> Sniff:
        """Accept a ``.json`` list of events with ``source`` and ``action`` / ``observation``, an SDK
        conversation folder (``events/event-*.json``) or a ``.json`` list of SDK events (``kind``)."""
        if path.is_dir():
            if _v1_folder(path) is not None:
                return Sniff(True, "an OpenHands SDK conversation folder (events/event-*.json)")
            return Sniff(False, "no events/event-*.json (not an OpenHands SDK conversation folder)")
        if not path.is_file() or path.suffix.lower() != ".json":
            return Sniff(False, "not a .json file")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        if _v1_events(doc) is not None:
            return Sniff(True, "a list of OpenHands SDK events (kind)")
        if _events(doc) is None:
            return Sniff(False, "not a list of OpenHands events (source + action/observation)")
        return Sniff(True, "an OpenHands event stream (source, action/observation)")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trial per file (or SDK conversation folder)."""
        if path.is_dir():
            yield from self._convert_folder(path)
            return
        try:
            doc = load_json_cached(path)
        except AtifError as exc:
            yield Failure(str(path), str(exc))
            return
        v1 = _v1_events(doc)
        if v1 is not None:
            yield _convert_v1([(f"events[{i}]", e) for i, e in enumerate(v1)], {}, path.stem, str(path), self.name)
            return
        try:
            events = _events(doc)
        except AtifError as exc:
            yield Failure(str(path), str(exc))
            return
        if events is None:
            yield Failure(str(path), "not an OpenHands event stream")
            return
        system = next((obj(e.get("args")) for e in events if e.get("action") == "system"), {})
        model = next((obj(obj(e.get("tool_call_metadata")).get("model_response")).get("model") for e in events
                      if obj(obj(e.get("tool_call_metadata")).get("model_response")).get("model")), None)
        b = TrajectoryBuilder(agent_name=str(system.get("agent_class") or "openhands"),
                              agent_version=str(system.get("openhands_version") or "unknown"),
                              model_name=model if isinstance(model, str) else None)
        by_response: dict[str, dict[str, Any]] = {}
        call_of_event: dict[Any, str] = {}
        for i, e in enumerate(events):
            where = f"event {e.get('id', i)}"
            args, ts = obj(e.get("args")), e.get("timestamp")
            action, observation = e.get("action"), e.get("observation")
            meta = obj(e.get("tool_call_metadata"))
            if action == "system":
                b.count()
                b.system(text_of(args.get("content")), timestamp=ts)
            elif action in _RUNTIME or observation in _RUNTIME:
                b.skip(f"a {action or observation} event (runtime state, not conversation)", where)
            elif action == "message" and not meta:
                b.count()
                text = text_of(args.get("content"))
                if e.get("source") == "agent":
                    b.agent_step(text, timestamp=ts)
                else:
                    b.user(text, timestamp=ts)
            elif action is not None and meta:
                b.count()
                cid = meta.get("tool_call_id")
                text, raw_args = _model_call(meta, cid)
                arguments = raw_args if raw_args is not None else {
                    k: v for k, v in args.items() if k not in ("thought", "is_input", "blocking", "hidden")}
                runtime = {k: v for k, v in args.items() if k != "thought" and v not in (None, "", [], {})}
                call = b.tool_call(cid, meta.get("function_name") or action, arguments,
                                   extra={"action": action, "args": runtime, "display": e.get("message") or None})
                rid = obj(meta.get("model_response")).get("id")
                step = by_response.get(rid) if isinstance(rid, str) else None
                if step is None:
                    thought = args.get("thought") if isinstance(args.get("thought"), str) else ""
                    step = b.agent_step(text or thought, timestamp=ts,
                                        metrics=chat_metrics(obj(meta.get("model_response")).get("usage")))
                    if isinstance(rid, str):
                        by_response[rid] = step
                b.add_tool_call(step, call)
                call_of_event[e.get("id")] = call["tool_call_id"]
                if action == "finish" and isinstance(args.get("final_thought"), str) and args["final_thought"]:
                    step.setdefault("extra", {})["final_thought"] = args["final_thought"]
            elif action is not None:
                b.count()
                b.agent_step(text_of(args.get("thought") or e.get("message")), timestamp=ts,
                             extra={"action": action, "args": args} if args else {"action": action})
            elif observation is not None:
                b.count()
                cid = meta.get("tool_call_id") or call_of_event.get(e.get("cause"))
                content = e.get("content") if isinstance(e.get("content"), str) else text_of(e.get("content"))
                ext: dict[str, Any] = {"observation": observation}
                if isinstance(e.get("message"), str) and e["message"]:
                    ext["display"] = e["message"]
                exit_code = obj(obj(e.get("extras")).get("metadata")).get("exit_code")
                if isinstance(exit_code, int):
                    ext["exit_code"] = exit_code
                b.observe(cid, content, extra=ext)
            else:
                b.skip("an event that is neither an action nor an observation", where)
        traj = b.build()
        key = path.stem
        trial = make_trial(traj, task_name=key, source_format=self.name, source_path=str(path), trial_id=key)
        yield Converted(traj, trial, key, str(path), b.warnings, tally=b.tally())

    def _convert_folder(self, path: Path) -> Iterator[Converted | Failure]:
        events: list[tuple[str, dict[str, Any]]] = []
        bad: list[tuple[str, str]] = []
        for f in _v1_folder(path) or []:
            where = f"events/{f.name}"
            try:
                e = load_json(f)
            except AtifError as exc:
                bad.append((where, str(exc)))
                continue
            if isinstance(e, dict):
                events.append((where, e))
            else:
                bad.append((where, "not an object"))
        state: Any = {}
        state_error = None
        if (path / "base_state.json").is_file():
            try:
                state = load_json(path / "base_state.json")
            except AtifError as exc:
                state_error = f"base_state.json: {exc}; converted without its model, usage and cost"
        if not events:
            yield Failure(str(path), "no readable event" + (f" ({bad[0][0]}: {bad[0][1]})" if bad else ""))
            return
        conv = _convert_v1(events, obj(state), path.name, str(path), self.name, bad)
        if state_error:
            conv.warnings.append(state_error)
        yield conv
