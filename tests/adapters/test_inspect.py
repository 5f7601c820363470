"""Inspect AI eval logs (.eval zip, zstd or deflate, and .json) to ATIF."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from atif.adapters import Converted, ConvertOptions, Failure, get_adapter
from atif.adapters.inspect import grade_value
from atif.adapters.jsonio import dump_json
from atif.adapters.registry import detect
from atif.errors import AdapterError, ParseError
from atif.schema.validate import validate

ROOT = Path(__file__).resolve().parents[2]
INSPECT = ROOT / "fixtures" / "inspect"
LOGS = ["tool_use.eval", "tool_use.json", "tool_use_v0_3_150.eval", "tool_use_v0_3_150.json"]


def convert(path: Path) -> list[Converted | Failure]:
    return list(get_adapter("inspect").convert(path, ConvertOptions()))


def converted(path: Path) -> list[Converted]:
    items = convert(path)
    assert all(isinstance(i, Converted) for i in items), items
    for i in items:
        assert i.trajectory is not None  # type: ignore[union-attr]
        report = validate(i.trajectory, mode="strict")  # type: ignore[union-attr]
        assert report.valid, [str(x) for x in report.issues]
    return items  # type: ignore[return-value]


def conversation(item: Converted) -> list[Any]:
    """The run-independent part of a trajectory (ids, times and uuids differ per run)."""
    assert item.trajectory is not None
    out = []
    for s in item.trajectory["steps"]:
        out.append((
            s["source"],
            s["message"],
            s.get("reasoning_content"),
            [(c["function_name"], c["arguments"]) for c in s.get("tool_calls") or []],
            [(r["content"], (r.get("extra") or {}).get("status")) for r in (s.get("observation") or {}).get("results", [])],
            s.get("metrics"),
        ))
    return out


@pytest.mark.parametrize("name", LOGS)
def test_one_trial_per_sample_and_epoch(name: str) -> None:
    items = converted(INSPECT / name)
    assert [(i.trial.task_name, i.trial.epoch) for i in items] == [
        ("tool_use/count-lines", 1), ("tool_use/count-lines", 2),
        ("tool_use/find-owner", 1), ("tool_use/find-owner", 2),
    ]
    assert len({i.trial_key for i in items}) == 4
    assert items[0].instruction == "How many lines are in /data/notes.txt? End with 'ANSWER: <number>'."


def test_all_four_logs_hold_the_same_conversation() -> None:
    """zstd (0.3.285) and deflate (0.3.150) archives and both JSON logs read alike."""
    runs = [[conversation(i) for i in converted(INSPECT / name)] for name in LOGS]
    for other in runs[1:]:
        assert other == runs[0]


def test_steps_tool_errors_and_usage() -> None:
    find_owner = converted(INSPECT / "tool_use.eval")[2]
    traj = find_owner.trajectory
    assert traj is not None
    steps = traj["steps"]
    assert [s["source"] for s in steps] == ["system", "user", "agent", "agent", "agent"]  # 7 messages, 2 tool
    failed = steps[2]["observation"]["results"][0]
    assert failed["source_call_id"] == steps[2]["tool_calls"][0]["tool_call_id"] == "call_find_owner_1"
    assert failed["extra"]["status"] == "error"
    assert failed["extra"]["error"] == "ls: cannot access '/data/report.cvs': No such file or directory"
    assert failed["content"] == failed["extra"]["error"]  # the log keeps an empty content for failed calls
    ok = steps[3]["observation"]["results"][0]
    assert "extra" not in ok and "alice" in ok["content"]
    # Inspect's input_tokens exclude cache reads: prompt tokens add them back.
    assert steps[2]["metrics"] == {"prompt_tokens": 300, "completion_tokens": 24}
    assert steps[3]["metrics"] == {"prompt_tokens": 420, "completion_tokens": 24, "cached_tokens": 128}
    t = find_owner.trial
    assert (t.input_tokens, t.output_tokens, t.cached_tokens, t.steps) == (1260, 66, 256, 5)
    assert traj["agent"]["name"] == "inspect-ai" and traj["agent"]["model_name"] == "mockllm/model"
    assert traj["agent"]["tool_definitions"][0]["function"]["name"] == "bash"


def test_timestamps_and_duration_from_events() -> None:
    item = converted(INSPECT / "tool_use.json")[0]
    assert item.trajectory is not None
    stamps = [s.get("timestamp") for s in item.trajectory["steps"]]
    assert all(isinstance(t, str) and t.endswith("Z") for t in stamps)
    assert stamps == sorted(stamps)
    assert stamps[0] == stamps[1]  # the opening prompt takes the sample start
    assert item.trial.duration_seconds is not None and 0 < item.trial.duration_seconds < 5


def test_old_logs_with_local_time_offsets_are_normalised_to_utc() -> None:
    item = converted(INSPECT / "tool_use_v0_3_150.json")[0]
    assert item.trajectory is not None
    agent_ts = item.trajectory["steps"][2]["timestamp"]
    assert agent_ts.endswith("Z")
    raw = json.loads((INSPECT / "tool_use_v0_3_150.json").read_text())
    model_events = [e for e in raw["samples"][0]["events"] if e["event"] == "model"]
    assert model_events[0]["completed"].endswith("+01:00")


def test_scores_become_rewards() -> None:
    items = converted(INSPECT / "tool_use.eval")
    # Two scorers: named rewards, the headline scorer (includes) first.
    assert [i.trial.reward for i in items] == [
        {"includes": 1.0, "used_tools": 1.0},
        {"includes": 0.0, "used_tools": 1.0},
        {"includes": 1.0, "used_tools": 1.0},
        {"includes": 1.0, "used_tools": 1.0},
    ]
    assert list(items[1].trial.reward) == ["includes", "used_tools"]  # type: ignore[arg-type]
    assert items[1].trial.primary_reward() == 0.0
    assert items[1].trial.metadata["scores"]["includes"]["value"] == "I"
    assert items[1].trial.metadata["target"] == "3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("C", 1.0), ("I", 0.0), ("P", 0.5), ("N", 0.0), (True, 1.0), (False, 0.0), (0.25, 0.25), (7, 7.0),
     ("0.75", 0.75), ("maybe", None), ([1], None)],
)
def test_grade_values(value: Any, expected: float | None) -> None:
    assert grade_value(value) == expected


def _tiny_log(tmp_path: Path, mutate: Any) -> Path:
    doc = json.loads((INSPECT / "tool_use.json").read_text())
    doc["samples"] = doc["samples"][:1]
    mutate(doc)
    path = tmp_path / "log.json"
    path.write_text(json.dumps(doc))
    return path


def test_single_scorer_gives_a_plain_reward_and_out_of_range_a_named_one(tmp_path: Path) -> None:
    def one_scorer(value: Any) -> Any:
        def mutate(doc: dict[str, Any]) -> None:
            doc["samples"][0]["scores"] = {"judge": {"value": value}}
        return mutate

    (item,) = converted(_tiny_log(tmp_path, one_scorer("P")))
    assert item.trial.reward == 0.5
    (item,) = converted(_tiny_log(tmp_path, one_scorer(7.5)))
    assert item.trial.reward == {"judge": 7.5}
    (item,) = converted(_tiny_log(tmp_path, one_scorer({"accuracy": 1, "style": "I"})))
    assert item.trial.reward == {"judge/accuracy": 1.0, "judge/style": 0.0}


def test_sample_error_without_messages_keeps_a_trial(tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        s = doc["samples"][0]
        s["messages"], s["events"], s["scores"] = [], [], {}
        s["error"] = {"message": "RuntimeError('sandbox failed to start')", "traceback": "..."}

    (item,) = convert(_tiny_log(tmp_path, mutate))
    assert isinstance(item, Converted)
    assert item.trajectory is None
    assert item.trial.error == "RuntimeError('sandbox failed to start')"
    assert item.trial.reward is None and item.trial.messages is None


def test_reasoning_redaction_attachments_and_parse_errors(tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        s = doc["samples"][0]
        s["attachments"] = {"abc123": "the full system prompt"}
        s["messages"][0]["content"] = "attachment://abc123"
        ai = s["messages"][2]
        ai["content"] = [
            {"type": "reasoning", "reasoning": "count with wc", "signature": "sig"},
            {"type": "reasoning", "reasoning": "", "redacted": True},
            {"type": "text", "text": "I'll count the lines with wc."},
        ]
        ai["tool_calls"][0]["parse_error"] = "Expecting ',' delimiter"

    (item,) = converted(_tiny_log(tmp_path, mutate))
    assert item.trajectory is not None
    steps = item.trajectory["steps"]
    assert steps[0]["message"] == "the full system prompt"
    assert steps[2]["message"] == "I'll count the lines with wc."
    assert steps[2]["reasoning_content"] == "count with wc"
    assert steps[2]["extra"]["reasoning_redacted"] is True
    assert steps[2]["tool_calls"][0]["extra"] == {"invalid": True, "error": "Expecting ',' delimiter"}


def test_a_grader_model_event_is_not_taken_for_an_agent_turn(tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        s = doc["samples"][0]
        grader = copy.deepcopy([e for e in s["events"] if e["event"] == "model"][-1])
        grader["output"]["choices"][0]["message"]["id"] = "grader-msg"
        grader["output"]["usage"] = {"input_tokens": 999, "output_tokens": 9, "total_tokens": 1008}
        s["events"].append(grader)
        s["messages"].append({"id": "canned", "role": "assistant", "content": "Done."})

    (item,) = converted(_tiny_log(tmp_path, mutate))
    assert item.trajectory is not None
    last = item.trajectory["steps"][-1]
    assert last["message"] == "Done." and "metrics" not in last


def test_messages_without_ids_take_model_events_in_order(tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        for m in doc["samples"][0]["messages"]:
            m.pop("id", None)

    (item,) = converted(_tiny_log(tmp_path, mutate))
    assert item.trajectory is not None
    assert [s.get("metrics", {}).get("prompt_tokens") for s in item.trajectory["steps"]] == [None, None, 300, 420]


def test_older_usage_semantics_are_detected(tmp_path: Path) -> None:
    """Logs whose input_tokens already included the cache (total = input + output) are not double-counted."""
    def mutate(doc: dict[str, Any]) -> None:
        for ev in doc["samples"][0]["events"]:
            if ev["event"] == "model" and ev["output"]["usage"].get("input_tokens_cache_read"):
                u = ev["output"]["usage"]
                u["input_tokens"] += u["input_tokens_cache_read"]
                u["total_tokens"] = u["input_tokens"] + u["output_tokens"]

    (item,) = converted(_tiny_log(tmp_path, mutate))
    assert item.trajectory is not None
    assert item.trajectory["steps"][3]["metrics"]["prompt_tokens"] == 420


def test_conversion_is_deterministic() -> None:
    for name in LOGS:
        a, b = converted(INSPECT / name), converted(INSPECT / name)
        assert [dump_json(i.trajectory) for i in a] == [dump_json(i.trajectory) for i in b]
        assert [i.trial.model_dump() for i in a] == [i.trial.model_dump() for i in b]


# ---------------------------------------------------------------------------------------------
# Sniffing and bad input
# ---------------------------------------------------------------------------------------------


def test_logs_are_detected_by_inspect() -> None:
    for name in LOGS:
        adapter, _ = detect(INSPECT / name)
        assert adapter.name == "inspect", name


def test_others_are_declined_with_a_reason(tmp_path: Path) -> None:
    inspect = get_adapter("inspect")
    for path in [ROOT / "fixtures/langchain/model_dump.json", ROOT / "fixtures/langsmith/runs.jsonl", tmp_path]:
        verdict = inspect.sniff(path)
        assert not verdict.ok and verdict.reason
    for name in ("langchain", "langsmith"):
        for log in LOGS:
            verdict = get_adapter(name).sniff(INSPECT / log)
            assert not verdict.ok and verdict.reason, (name, log)
    other_zip = tmp_path / "other.eval"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("readme.txt", "hi")
    assert "header.json" in inspect.sniff(other_zip).reason


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "bad.eval"
    path.write_bytes(b"PK\x03\x04 truncated")
    assert not get_adapter("inspect").sniff(path).ok
    with pytest.raises(ParseError) as exc:
        convert(path)
    assert str(path) in str(exc.value)


def test_corrupt_sample_json_names_the_member(tmp_path: Path) -> None:
    path = tmp_path / "log.eval"
    with zipfile.ZipFile(INSPECT / "tool_use_v0_3_150.eval") as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "samples/count-lines_epoch_1.json":
                data = data[: len(data) // 2]
            dst.writestr(info.filename, data)
    items = convert(path)
    failures = [i for i in items if isinstance(i, Failure)]
    assert len(failures) == 1 and len(items) == 4  # the other samples still convert
    assert "samples/count-lines_epoch_1.json" in failures[0].reason
    assert str(path) in failures[0].reason


def test_truncated_member_raises_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "log.eval"
    with zipfile.ZipFile(INSPECT / "tool_use_v0_3_150.eval") as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "header.json":
                data = data[: len(data) // 2]
            dst.writestr(info.filename, data)
    with pytest.raises(ParseError) as exc:
        convert(path)
    assert "header.json" in str(exc.value) and str(path) in str(exc.value) and "line" in str(exc.value)


def test_zip_without_header_is_an_adapter_error(tmp_path: Path) -> None:
    path = tmp_path / "log.eval"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("samples/a_epoch_1.json", "{}")
    with pytest.raises(AdapterError, match="header.json"):
        convert(path)


def test_json_without_eval_is_declined(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"version": 2, "samples": []}))
    verdict = get_adapter("inspect").sniff(path)
    assert not verdict.ok and "eval.task" in verdict.reason


def test_a_log_without_samples_is_skipped(tmp_path: Path) -> None:
    doc = json.loads((INSPECT / "tool_use.json").read_text())
    doc = copy.deepcopy(doc)
    doc["samples"], doc["status"] = [], "error"
    path = tmp_path / "empty.json"
    path.write_text(json.dumps(doc))
    (item,) = convert(path)
    assert isinstance(item, Failure) and item.skipped and "no samples" in item.reason


# ---------------------------------------------------------------------------------------------
# Expected conversions
# ---------------------------------------------------------------------------------------------
#
# ``tool_use.eval`` and ``tool_use.json`` share a stem, which the ``<case>.atif.json`` convention
# of tests/adapters/test_golden.py cannot tell apart, so these expected outputs live in
# ``fixtures/inspect/expected/<input file name>.json`` (+ ``.trials.jsonl``), in the same shape:
# output path -> ATIF document.


def _pipeline(name: str, out: Path) -> tuple[dict[str, Any], bytes]:
    import os

    from atif.adapters.convert import convert as run_convert

    cwd = os.getcwd()
    os.chdir(INSPECT)
    try:
        result = run_convert([name], out)
    finally:
        os.chdir(cwd)
    assert not result.failures, result.failures
    docs = {
        p.relative_to(out).as_posix(): json.loads(p.read_bytes())
        for p in result.outputs
        if p.relative_to(out).parts[0] == "trajectories"
    }
    return dict(sorted(docs.items())), (out / "trials.jsonl").read_bytes()


@pytest.mark.parametrize("name", LOGS)
def test_expected_conversion(name: str, tmp_path: Path) -> None:
    docs, trials = _pipeline(name, tmp_path / "out")
    expected = INSPECT / "expected"
    assert docs == json.loads((expected / f"{name}.json").read_bytes())
    assert trials == (expected / f"{name}.trials.jsonl").read_bytes()


def test_expected_trajectories_pass_harbors_own_model() -> None:
    trajectories = pytest.importorskip("harbor.models.trajectories")
    for path in sorted((INSPECT / "expected").glob("*.json")):
        for doc in json.loads(path.read_bytes()).values():
            trajectories.Trajectory.model_validate(doc)


if __name__ == "__main__":  # print the candidate expected files of one log, for review
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        d, t = _pipeline(sys.argv[1], Path(tmp) / "out")
        sys.stdout.write(dump_json(d).decode())
        if len(sys.argv) > 2:
            Path(sys.argv[2]).write_bytes(t)
