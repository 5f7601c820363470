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
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.jsonio import load_json_cached, sniff_json
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


class OpenHandsAdapter:
    """OpenHands event-stream trajectories."""

    name = "openhands"
    description = "OpenHands trajectories (event stream: actions and observations)"

    def sniff(self, path: Path) -> Sniff:
        """Accept a ``.json`` list of events with ``source`` and ``action`` / ``observation``."""
        if not path.is_file() or path.suffix.lower() != ".json":
            return Sniff(False, "not a .json file")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        if _events(doc) is None:
            return Sniff(False, "not a list of OpenHands events (source + action/observation)")
        return Sniff(True, "an OpenHands event stream (source, action/observation)")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trial per file."""
        try:
            events = _events(load_json_cached(path))
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
