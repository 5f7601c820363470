"""Harbor job and trial directories.

Input: a job directory (``jobs/<job>/`` with ``config.json`` naming ``job_name``, and one
``<task>__<id>/`` trial directory per started trial) or a single trial directory. One trial
record per trial directory that has a ``result.json``:

* **Trajectory** ``agent/trajectory.json`` is ATIF already (Harbor 0.25 writes v1.8 for
  terminus-2, v1.5 for OpenHands). It is passed through as in the ``atif`` adapter
  (:mod:`atif.adapters.atif_files`): ``schema_version`` set to ATIF-v1.8 (the original in
  ``trial.metadata["original_schema_version"]``); continuation files
  (``trajectory.cont-N.json``) **stitched** into one document, keeping copied-context steps
  marked, with the last file's ``final_metrics`` (Harbor writes running totals); subagent
  files (``trajectory.summarization-K-*.json``, any ``trajectory_path`` ref) **embedded** as
  ``subagent_trajectories`` and referred to by ``trajectory_id``. So each trial is one
  self-contained file.
* **LangGraph agent** (Harbor's ``langgraph`` installed agent writes no ``trajectory.json``): its
  runner's ``agent/result.json`` (the graph's final state, messages reduced to ``type``,
  ``content``, ``tool_calls``, ``usage_metadata``) is converted as a LangGraph state by the
  ``langchain`` adapter's rules. Its tool messages lost their ``tool_call_id``, so each result is
  paired with the oldest unanswered call (ToolNode answers in call order): the result's
  ``extra.paired_by`` is ``"position"``, the trajectory's ``extra.tool_results_paired_by_position``
  counts them, and a warning says so.
* **Reward**: ``verifier/reward.json`` wins, then ``result.json``'s
  ``verifier_result.rewards``, then ``verifier/reward.txt``. A single ``reward`` key (what
  ``reward.txt`` becomes) is a float; anything else stays a dict of named rewards. The primary
  reward of named rewards is the one called ``reward``, else the first key in the order the
  verifier wrote them (:meth:`atif.trial.Trial.primary_reward`); its name is in
  ``metadata["primary_reward"]``. A lone reward outside [0, 1] is kept as named rewards.
* **Duration** ``finished_at - started_at`` of the trial (aware UTC; a naive time is read as UTC).
* **Tokens and cost** from ``agent_result``: ``n_input_tokens`` (cached included) ->
  ``input_tokens``, ``n_cache_tokens`` -> ``cached_tokens``, ``n_output_tokens`` ->
  ``output_tokens``, ``cost_usd``. These include subagents; when ``agent_result`` is null the
  trajectory's totals are used.
* **Error** ``exception_info`` as ``"<type>: <message>"`` (else the last line of
  ``exception.txt``). A trial that failed before the agent ran has no trajectory and still
  gets a trial record carrying its error.
* **Instruction** from ``instruction.md`` of the task directory named by ``config.task.path``,
  which is relative to the directory the run started in (the parent of ``jobs_dir``); leading
  canary comment lines are stripped as Harbor does. Tasks not found on this machine have none.
* A trial directory without ``result.json`` (still running, or killed) is skipped with a
  warning; so is one whose ``result.json`` is empty. Malformed JSON is a failure naming the
  file and position.

Task name: ``result.task_name``. Trial key: the trial directory name (``trial_name``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from atif.adapters.atif_files import resolve_trajectory
from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import make_trial
from atif.adapters.jsonio import load_json_cached, read_json
from atif.adapters.langchain import convert_messages, parse_langchain
from atif.adapters.values import obj
from atif.errors import AtifError, ParseError

__all__ = ["HarborAdapter", "strip_canary"]

_CANARY_LINE = re.compile(r"^(<!--.*canary.*-->|#.*canary.*)$", re.IGNORECASE)


def strip_canary(text: str) -> str:
    """Drop leading canary comment lines (and the blank lines after them) of an instruction, as Harbor does."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and _CANARY_LINE.match(lines[i].strip()):
        i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    return "\n".join(lines[i:])


def _json_or_none(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return load_json_cached(path)
    except ParseError:
        return None


def _is_trial_dir(path: Path) -> bool:
    if not path.is_dir():
        return False
    for name in ("result.json", "config.json"):
        doc = _json_or_none(path / name)
        if isinstance(doc, dict) and "trial_name" in doc:
            return True
    return False


def _is_job_dir(path: Path) -> bool:
    if not path.is_dir():
        return False
    config = _json_or_none(path / "config.json")
    if isinstance(config, dict) and "job_name" in config:
        return True
    result = _json_or_none(path / "result.json")
    return isinstance(result, dict) and "n_total_trials" in result


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _rewards(trial_dir: Path, result: Mapping[str, Any], warnings: list[str]) -> tuple[Any, str | None]:
    """``(reward, where it came from)``."""
    named: dict[str, float] | None = None
    origin: str | None = None
    rj = trial_dir / "verifier" / "reward.json"
    if rj.is_file():
        try:
            doc = read_json(rj)
        except ParseError as exc:
            warnings.append(f"{exc}; reward taken from result.json")
            doc = None
        if isinstance(doc, dict):
            named = {str(k): v for k, v in ((k, _number(v)) for k, v in doc.items()) if v is not None}
            skipped = [k for k in doc if _number(doc[k]) is None]
            if skipped:
                warnings.append(f"{rj}: non-numeric rewards {skipped} ignored")
            origin = "verifier/reward.json"
        elif doc is not None:
            warnings.append(f"{rj}: not a JSON object; reward taken from result.json")
    if named is None:
        vr = result.get("verifier_result")
        rewards = vr.get("rewards") if isinstance(vr, dict) else None
        if isinstance(rewards, dict):
            named = {str(k): v for k, v in ((k, _number(v)) for k, v in rewards.items()) if v is not None}
            origin = "result.json"
    if named is None:
        rt = trial_dir / "verifier" / "reward.txt"
        if rt.is_file():
            text = rt.read_text(encoding="utf-8", errors="replace").strip()
            try:
                named = {"reward": float(text)}
                origin = "verifier/reward.txt"
            except ValueError:
                warnings.append(f"{rt}: {text[:40]!r} is not a number; no reward")
    if not named:
        return None, origin
    if list(named) == ["reward"]:
        value = named["reward"]
        if 0.0 <= value <= 1.0:
            return value, origin
        warnings.append(f"reward {value} is outside [0, 1]; kept as the named reward 'reward'")
    return named, origin


def _error(trial_dir: Path, result: Mapping[str, Any]) -> tuple[str | None, str | None]:
    info = result.get("exception_info")
    if isinstance(info, dict) and (info.get("exception_type") or info.get("exception_message")):
        etype = str(info.get("exception_type") or "Exception")
        msg = str(info.get("exception_message") or "").strip()
        return (f"{etype}: {msg}" if msg else etype), etype
    exc_file = trial_dir / "exception.txt"
    if exc_file.is_file():
        lines = [ln for ln in exc_file.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        if lines:
            last = lines[-1].strip()
            return last, (last.split(":", 1)[0].rsplit(".", 1)[-1] if ":" in last else None)
    return None, None


def _instruction(
    trial_dir: Path, result: Mapping[str, Any], config: Mapping[str, Any],
    found: dict[tuple[str, ...], str | None] | None = None,
) -> str | None:
    """The task's instruction; ``found`` remembers each lookup for the trials of one job (they
    share a parent directory and mostly a task, and the lookup stats several candidate paths)."""
    task_path = None
    for src in (result.get("config"), config):
        task = src.get("task") if isinstance(src, dict) else None
        if isinstance(task, dict) and isinstance(task.get("path"), str):
            task_path = task["path"]
            break
    if task_path is None:
        tid = result.get("task_id")
        if isinstance(tid, dict) and isinstance(tid.get("path"), str):
            task_path = tid["path"]
    if not task_path:
        return None
    trials_dir = None
    for src in (config, result.get("config")):
        if isinstance(src, dict) and isinstance(src.get("trials_dir"), str):
            trials_dir = src["trials_dir"]
            break
    if trial_dir.is_symlink():  # its real parents are its own: nothing to share
        found = None
    key = (str(trial_dir.parent), task_path, trials_dir or "")
    if found is not None and key in found:
        return found[key]
    text = _find_instruction(trial_dir, task_path, trials_dir)
    if found is not None:
        found[key] = text
    return text


def _find_instruction(trial_dir: Path, task_path: str, trials_dir: str | None) -> str | None:
    candidates: list[Path] = []
    tp = Path(task_path)
    if tp.is_absolute():
        candidates.append(tp)
    else:
        # The task path is relative to where the run started: trials_dir's root, seen from here.
        if trials_dir and not Path(trials_dir).is_absolute():
            depth = len(Path(trials_dir).parts)
            parents = trial_dir.resolve().parents
            if depth < len(parents):
                candidates.append(parents[depth] / tp)
        for up in trial_dir.resolve().parents[:4]:
            candidates.append(up / tp)
    for c in candidates:
        md = c / "instruction.md"
        if md.is_file():
            try:
                return strip_canary(md.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                return None
    return None


class HarborAdapter:
    """Harbor job directories and trial directories."""

    name = "harbor"
    description = "Harbor job or trial directories (result.json, agent/trajectory.json, verifier/)"

    def sniff(self, path: Path) -> Sniff:
        """A directory whose ``config.json``/``result.json`` is a Harbor job's or trial's."""
        if not path.is_dir():
            return Sniff(False, "not a directory (Harbor input is a job or trial directory)")
        if _is_trial_dir(path):
            return Sniff(True, "a Harbor trial directory")
        if _is_job_dir(path):
            return Sniff(True, "a Harbor job directory")
        return Sniff(False, "no Harbor config.json or result.json (job_name / trial_name)")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trial per trial directory (a job directory yields all of its trials, sorted by name)."""
        if not path.is_dir():
            yield Failure(str(path), "not a directory (Harbor input is a job or trial directory)")
            return
        if _is_trial_dir(path):
            yield from self._trial(path, None, {})
            return
        job: dict[str, Any] = {}
        config = _json_or_none(path / "config.json")
        result = _json_or_none(path / "result.json")
        job["job_name"] = config.get("job_name") if isinstance(config, dict) else None
        job["job_name"] = job["job_name"] or path.name
        if isinstance(result, dict) and isinstance(result.get("id"), str):
            job["job_id"] = result["id"]
        found = 0
        instructions: dict[tuple[str, ...], str | None] = {}
        for child in sorted(path.iterdir(), key=lambda p: p.name):
            if child.is_dir() and not child.name.startswith(".") and _is_trial_dir(child):
                found += 1
                yield from self._trial(child, job, instructions)
        if not found:
            yield Failure(str(path), "a Harbor job directory without trial directories", skipped=True)

    def _trial(
        self, trial_dir: Path, job: Mapping[str, Any] | None, instructions: dict[tuple[str, ...], str | None]
    ) -> Iterator[Converted | Failure]:
        result_path = trial_dir / "result.json"
        if not result_path.is_file():
            yield Failure(str(trial_dir), "no result.json: the trial is still running or was interrupted",
                          skipped=True)
            return
        try:
            if not result_path.read_bytes().strip():
                yield Failure(str(trial_dir), "result.json is empty: the trial did not finish writing it",
                              skipped=True)
                return
            result = load_json_cached(result_path)  # sniffing parsed it already; read only
        except ParseError as exc:
            yield Failure(str(result_path), str(exc.reason))
            return
        if not isinstance(result, dict):
            yield Failure(str(result_path), "result.json is not a JSON object")
            return
        config = _json_or_none(trial_dir / "config.json")
        config = config if isinstance(config, dict) else {}
        warnings: list[str] = []
        trial_name = str(result.get("trial_name") or trial_dir.name)
        task_name = result.get("task_name") or trial_name.rsplit("__", 1)[0]

        traj: dict[str, Any] | None = None
        original_version = None
        tpath = trial_dir / "agent" / "trajectory.json"
        if tpath.is_file():
            try:
                traj, original_version = resolve_trajectory(tpath, warnings)
            except ParseError as exc:
                yield Failure(str(tpath), str(exc.reason))
                return
            except AtifError as exc:
                yield Failure(str(tpath), str(exc))
                return

        tally: dict[str, Any] | None = None
        trajectory_from: str | None = None
        langgraph = trial_dir / "agent" / "result.json"
        if traj is None and langgraph.is_file():
            try:
                state = read_json(langgraph)
            except ParseError as exc:
                yield Failure(str(langgraph), str(exc.reason))
                return
            parsed, why = parse_langchain(state)
            if parsed is None:
                warnings.append(f"{langgraph}: not a LangGraph state ({why}); no trajectory")
            else:
                made = convert_messages(parsed.messages, source=str(langgraph), source_format="harbor/langgraph",
                                        task_name=str(task_name), trial_key=trial_name, agent_name="langgraph")
                traj, tally = made.trajectory, made.tally
                warnings.extend(made.warnings)
                trajectory_from = "agent/result.json"

        reward, reward_origin = _rewards(trial_dir, result, warnings)
        error, etype = _error(trial_dir, result)
        if traj is None and error is None:
            warnings.append(f"{trial_dir}: no agent/trajectory.json and no exception recorded")

        start, end = _parse_time(result.get("started_at")), _parse_time(result.get("finished_at"))
        duration = (end - start).total_seconds() if start and end and end >= start else None

        totals: dict[str, Any] = {}
        ar = result.get("agent_result")
        if isinstance(ar, dict):
            totals = {
                "input_tokens": ar.get("n_input_tokens"),
                "cached_tokens": ar.get("n_cache_tokens"),
                "output_tokens": ar.get("n_output_tokens"),
                "cost_usd": ar.get("cost_usd"),
            }
            totals = {k: v for k, v in totals.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

        agent_info = obj(result.get("agent_info"))
        model_info = obj(agent_info.get("model_info"))
        meta: dict[str, Any] = {
            "agent_name": agent_info.get("name"),
            "agent_version": agent_info.get("version"),
            "model_name": "/".join(str(x) for x in (model_info.get("provider"), model_info.get("name")) if x)
            or None,
            "started_at": result.get("started_at"),
            "finished_at": result.get("finished_at"),
            "exception_type": etype,
            "reward_source": reward_origin,
            "original_schema_version": original_version,
            "trajectory_source": trajectory_from,
            "dataset": result.get("source"),
            "task_checksum": result.get("task_checksum"),
        }
        if trajectory_from and traj is not None:  # the runner kept no model names: Harbor's config has it
            if model_info.get("name") and "model_name" not in traj["agent"]:
                traj["agent"]["model_name"] = str(model_info["name"])
            if agent_info.get("version"):
                traj["agent"]["version"] = str(agent_info["version"])
        if isinstance(reward, dict) and reward:
            meta["primary_reward"] = "reward" if "reward" in reward else next(iter(reward))
        if job:
            meta["job_name"] = job.get("job_name")
        meta = {k: v for k, v in meta.items() if v is not None}
        ids = {
            "trial_id": result.get("id"),
            "trial_name": trial_name,
            "job_id": (job or {}).get("job_id") or config.get("job_id"),
            "session_id": traj.get("session_id") if traj else None,
        }
        try:
            trial = make_trial(
                traj,
                task_name=str(task_name),
                source_format=self.name,
                source_path=str(trial_dir),
                source_ids=ids,
                metadata=meta,
                reward=reward,
                error=error,
                duration_seconds=duration,
                totals=totals,
                trial_id=str(result.get("id") or trial_name),
            )
        except ValueError as exc:  # pydantic rejects the numbers (e.g. negative tokens)
            yield Failure(str(trial_dir), f"cannot build the trial record: {exc}")
            return
        yield Converted(
            trajectory=traj,
            trial=trial,
            trial_key=trial_name,
            source=str(trial_dir),
            warnings=warnings,
            instruction=_instruction(trial_dir, result, config, instructions),
            tally=tally,
        )
