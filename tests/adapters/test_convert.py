"""The conversion pipeline, the ``atif`` passthrough adapter and the ``atif convert`` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from atif.adapters.base import Converted, Failure
from atif.adapters.convert import convert, iter_convert
from atif.cli import cli
from atif.errors import AdapterError

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "harbor-golden" / "harbor-v0.1.31" / "tests" / "golden"


def chat(text: str = "hi", **top: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": text},
            {"role": "assistant", "content": "hello"},
        ],
        **top,
    }


def atif_doc(**over: Any) -> dict[str, Any]:
    doc = {
        "schema_version": "ATIF-v1.5",
        "session_id": "s-1",
        "agent": {"name": "a", "version": "1"},
        "steps": [
            {"step_id": 1, "source": "user", "message": "do it"},
            {"step_id": 2, "source": "agent", "message": "done",
             "metrics": {"prompt_tokens": 10, "completion_tokens": 2}},
        ],
    }
    doc.update(over)
    return doc


def write(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(obj if isinstance(obj, bytes) else json.dumps(obj).encode())
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# -- output layout ---------------------------------------------------------------------------


def test_writes_trajectories_and_sorted_trials(tmp_path: Path) -> None:
    src = tmp_path / "runs"
    write(src / "b.json", chat("second", task_name="t2"))
    write(src / "a.json", chat("first", task_name="t1"))
    result = convert([src], tmp_path / "out")

    assert result.ok and result.converted == 2
    assert result.adapters == {str(src / "a.json"): "openai-chat", str(src / "b.json"): "openai-chat"}
    lines = (tmp_path / "out" / "trials.jsonl").read_bytes().splitlines()
    trials = [orjson.loads(line) for line in lines]
    assert [t["task_name"] for t in trials] == ["t1", "t2"]
    assert trials[0]["trajectory"] == "trajectories/t1/a.json"
    assert (tmp_path / "out" / trials[0]["trajectory"]).is_file()
    # elluminate's field names, keys sorted
    assert list(trials[0]) == sorted(trials[0])
    for field in ("task_name", "messages", "reward", "steps", "cost_usd", "duration_seconds", "input_tokens",
                  "output_tokens", "cached_tokens", "error", "metadata", "trajectory", "criterion_ratings"):
        assert field in trials[0]
    assert trials[0]["metadata"]["source_format"] == "openai-chat"
    assert trials[0]["messages"][-1] == {"role": "assistant", "content": "hello"}


def test_rerun_is_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "runs"
    for i in range(5):
        write(src / f"c{i}.json", chat(f"q{i}", task_name=f"task{i % 2}"))
    shutil.copytree(GOLDEN / "openhands", src / "openhands")
    outs = []
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        convert([src], out)
        outs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outs[0] == outs[1]
    assert len(outs[0]) == 8  # 7 trajectories + trials.jsonl


def test_trajectory_files_are_canonical_json(tmp_path: Path) -> None:
    write(tmp_path / "in" / "c.json", chat())
    result = convert([tmp_path / "in" / "c.json"], tmp_path / "out")
    path = result.outputs[0]
    data = path.read_bytes()
    assert data.endswith(b"}\n")
    assert data == orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def test_trial_key_collisions_get_a_suffix(tmp_path: Path) -> None:
    write(tmp_path / "x" / "one.json", atif_doc(extra={"task_name": "t"}))
    write(tmp_path / "y" / "two.json", atif_doc(extra={"task_name": "t"}, notes="a different run"))
    write(tmp_path / "z" / "three.json", atif_doc(extra={"task_name": "t"}))  # the same trial as one.json
    result = convert([tmp_path / "x", tmp_path / "y", tmp_path / "z"], tmp_path / "out")
    assert result.converted == 2
    names = sorted(p.name for p in (tmp_path / "out" / "trajectories" / "t").iterdir())
    assert names == ["s-1.json", "s-1~2.json"]
    assert any("is taken" in w for _, w in result.warnings)
    assert [s for s, _ in result.skipped] == [str(tmp_path / "z" / "three.json")]  # issue 12: kept once, as upload does


def test_tasks_file_only_when_an_instruction_is_known(tmp_path: Path) -> None:
    write(tmp_path / "c.json", chat())
    convert([tmp_path / "c.json"], tmp_path / "out")
    assert not (tmp_path / "out" / "tasks.jsonl").exists()


# -- bad input ---------------------------------------------------------------------------------


def test_malformed_json_names_file_and_position(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.json", b'{"messages": [\n  {"role": "user",, }]}')
    good = write(tmp_path / "good.json", chat())
    result = convert([bad, good], tmp_path / "out")
    assert result.converted == 1
    [(source, reason)] = result.failures
    assert source == str(bad)
    assert "malformed JSON" in reason and "line 2" in reason


def test_unrecognised_file_lists_every_adapter_tried(tmp_path: Path) -> None:
    odd = write(tmp_path / "odd.json", {"hello": "world"})
    result = convert([odd], tmp_path / "out")
    [(source, reason)] = result.failures
    assert source == str(odd)
    for name in ("atif", "harbor", "openai-chat", "openai-responses", "anthropic"):
        assert f"{name}:" in reason
    assert "mapping" not in reason.split("tried", 1)[1]


def test_walked_directory_skips_unrecognised_files_and_ignores_other_extensions(tmp_path: Path) -> None:
    write(tmp_path / "d" / "odd.json", {"hello": "world"})
    write(tmp_path / "d" / "notes.md", b"# not an input")
    write(tmp_path / "d" / "c.json", chat())
    result = convert([tmp_path / "d"], tmp_path / "out")
    assert result.ok and result.converted == 1
    assert [s for s, _ in result.skipped] == [str(tmp_path / "d" / "odd.json")]


def test_missing_path_and_empty_directory_fail(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = convert([tmp_path / "nope.json", tmp_path / "empty"], tmp_path / "out")
    reasons = dict(result.failures)
    assert reasons[str(tmp_path / "nope.json")] == "no such file or directory"
    assert "no convertible input" in reasons[str(tmp_path / "empty")]


def test_invalid_result_is_a_failure_and_not_written(tmp_path: Path) -> None:
    doc = atif_doc()
    doc["steps"][0]["step_id"] = 3  # not sequential
    doc["steps"][0]["tool_calls"] = []  # agent-only field on a user step
    src = write(tmp_path / "t" / "bad.json", doc)
    result = convert([src], tmp_path / "out")
    assert result.converted == 0
    [(_source, reason)] = result.failures
    assert "not valid ATIF" in reason and "step.id-sequence" in reason and "step.agent-only-field" in reason
    assert not (tmp_path / "out" / "trajectories").exists()
    assert (tmp_path / "out" / "trials.jsonl").read_bytes() == b""
    assert result.inputs[0].atif_errors


def test_unknown_format_raises() -> None:
    with pytest.raises(AdapterError, match="unknown format"):
        convert([Path("x")], None, source_format="nope", dry_run=True)


def test_forced_format_reports_why_the_adapter_failed(tmp_path: Path) -> None:
    src = write(tmp_path / "c.json", {"hello": "world"})
    result = convert([src], tmp_path / "out", source_format="openai-chat")
    [(_source, reason)] = result.failures
    assert "neither a message list" in reason


# -- iter_convert --------------------------------------------------------------------------------


def test_iter_convert_yields_without_writing(tmp_path: Path) -> None:
    write(tmp_path / "in" / "c.json", chat())
    write(tmp_path / "in" / "odd.json", {"x": 1})
    items = list(iter_convert([tmp_path / "in"]))
    kinds = sorted(type(i).__name__ for i in items)
    assert kinds == ["Converted", "Failure"]
    conv = next(i for i in items if isinstance(i, Converted))
    assert conv.trajectory is not None and conv.trajectory["schema_version"] == "ATIF-v1.8"
    assert conv.trial.trajectory is None
    fail = next(i for i in items if isinstance(i, Failure))
    assert fail.skipped  # found while walking
    assert list(tmp_path.glob("**/trials.jsonl")) == []


# -- the atif passthrough adapter ----------------------------------------------------------------


def test_atif_passthrough_upgrades_and_names(tmp_path: Path) -> None:
    src = write(tmp_path / "my-task" / "run.json", atif_doc(session_id="sess-9"))
    [item] = list(iter_convert([src]))
    assert isinstance(item, Converted)
    assert item.trajectory["schema_version"] == "ATIF-v1.8"
    assert item.trial.metadata["original_schema_version"] == "ATIF-v1.5"
    assert item.trial.task_name == "my-task"
    assert item.trial_key == "sess-9"
    assert item.trial.input_tokens == 10 and item.trial.steps == 2


def test_atif_task_from_extra_and_key_from_stem(tmp_path: Path) -> None:
    doc = atif_doc(schema_version="ATIF-v1.7", extra={"task_name": "named"})
    del doc["session_id"]
    [item] = list(iter_convert([write(tmp_path / "d" / "file-stem.json", doc)]))
    assert isinstance(item, Converted)
    assert (item.trial.task_name, item.trial_key) == ("named", "file-stem")


def test_atif_continuation_is_stitched_and_its_file_skipped(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.mkdir()
    main = json.loads((GOLDEN / "terminus_2" / "hello-world-context-summarization-linear-history.trajectory.json")
                      .read_text())
    cont = json.loads((GOLDEN / "terminus_2" / "hello-world-context-summarization-linear-history.trajectory"
                       ".cont-1.json").read_text())
    write(agent / "trajectory.json", main)
    write(agent / "trajectory.cont-1.json", cont)
    for part in ("summary", "questions", "answers"):
        shutil.copy(GOLDEN / "terminus_2" / f"hello-world-context-summarization.trajectory.summarization-1-{part}.json",
                    agent / f"trajectory.summarization-1-{part}.json")
    result = convert([agent], tmp_path / "out")
    # one stitched trial plus the three subagent files on their own; the continuation is skipped
    assert result.converted == 4
    assert [r for _, r in result.skipped] == ["continuation of trajectory.json; stitched into it"]
    doc = json.loads((tmp_path / "out" / "trajectories" / "agent" / "NORMALIZED_SESSION_ID.json").read_text())
    assert len(doc["steps"]) == len(main["steps"]) + len(cont["steps"])
    assert [s["step_id"] for s in doc["steps"]] == list(range(1, len(doc["steps"]) + 1))
    assert "continued_trajectory_ref" not in doc
    assert doc["extra"]["continuations"][0]["first_step_id"] == len(main["steps"]) + 1
    assert doc["final_metrics"] == cont["final_metrics"]  # Harbor's totals are cumulative
    copied = [s for s in doc["steps"] if s.get("is_copied_context")]
    assert len(copied) == sum(1 for s in cont["steps"] if s.get("is_copied_context"))
    # subagents embedded and referenced by id
    ids = [s["trajectory_id"] for s in doc["subagent_trajectories"]]
    assert ids == [f"trajectory.summarization-1-{p}" for p in ("summary", "questions", "answers")]
    refs = doc["steps"][4]["observation"]["results"][0]["subagent_trajectory_ref"]
    assert [r["trajectory_id"] for r in refs] == ids
    assert all("trajectory_path" not in r and r["extra"]["trajectory_path"] for r in refs)
    assert all(s["schema_version"] == "ATIF-v1.8" for s in doc["subagent_trajectories"])


def test_atif_missing_continuation_is_a_warning(tmp_path: Path) -> None:
    src = write(tmp_path / "t" / "trajectory.json", atif_doc(continued_trajectory_ref="trajectory.cont-1.json"))
    [item] = list(iter_convert([src]))
    assert isinstance(item, Converted)
    assert "continued_trajectory_ref" not in item.trajectory
    assert any("not found" in w for w in item.warnings)


def test_repeated_tool_call_ids_in_a_continuation_are_renamed(tmp_path: Path) -> None:
    call = {"tool_call_id": "c1", "function_name": "ls", "arguments": {}}
    step = {"step_id": 2, "source": "agent", "message": "", "tool_calls": [call],
            "observation": {"results": [{"source_call_id": "c1", "content": "x"}]}}
    first = atif_doc(steps=[{"step_id": 1, "source": "user", "message": "go"}, step],
                     continued_trajectory_ref="trajectory.cont-1.json")
    second = atif_doc(steps=[{**step, "step_id": 1, "is_copied_context": True}])
    write(tmp_path / "t" / "trajectory.cont-1.json", second)
    [item] = [i for i in iter_convert([write(tmp_path / "t" / "trajectory.json", first)])]
    assert isinstance(item, Converted)
    last = item.trajectory["steps"][-1]
    assert last["tool_calls"][0]["tool_call_id"] == "c1~cont1"
    assert last["observation"]["results"][0]["source_call_id"] == "c1~cont1"
    assert last["tool_calls"][0]["extra"]["original_tool_call_id"] == "c1"


# -- the command -------------------------------------------------------------------------------


def test_cli_exit_1_when_something_failed_but_rest_converted(tmp_path: Path) -> None:
    write(tmp_path / "c.json", chat())
    write(tmp_path / "bad.json", b"{")
    res = run("convert", str(tmp_path / "c.json"), str(tmp_path / "bad.json"), "-o", str(tmp_path / "out"))
    assert res.exit_code == 1
    assert "1 converted, 0 skipped, 1 failed" in res.output
    assert "Adapters: openai-chat (1 input)" in res.output
    assert (tmp_path / "out" / "trajectories").is_dir()


def test_cli_dry_run_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path / "c.json", chat())
    res = run("convert", str(tmp_path / "c.json"), "--dry-run")
    assert res.exit_code == 0
    assert f"{tmp_path / 'c.json'}: openai-chat, 1 trial" in res.output
    assert "1 checked" in res.output
    assert not (tmp_path / "out").exists()


def test_cli_dry_run_lists_atif_errors(tmp_path: Path) -> None:
    doc = atif_doc()
    doc["steps"][1]["step_id"] = 5
    write(tmp_path / "t.json", doc)
    res = run("convert", str(tmp_path / "t.json"), "--dry-run")
    assert res.exit_code == 1
    assert "ATIF error: /steps/1/step_id" in res.output


def test_cli_json_format(tmp_path: Path) -> None:
    write(tmp_path / "c.json", chat())
    res = run("convert", str(tmp_path / "c.json"), "-o", str(tmp_path / "out"), "--format", "json")
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert data["converted"] == 1 and data["failed"] == []
    assert data["inputs"][0]["adapter"] == "openai-chat"


def test_cli_needs_out_unless_dry_run(tmp_path: Path) -> None:
    write(tmp_path / "c.json", chat())
    res = CliRunner().invoke(cli, ["convert", str(tmp_path / "c.json")])
    assert res.exit_code == 2
    assert "-o/--out" in res.output


def test_cli_from_forces_the_adapter(tmp_path: Path) -> None:
    write(tmp_path / "c.json", chat())
    res = run("convert", str(tmp_path / "c.json"), "--from", "anthropic", "--dry-run")
    assert res.exit_code == 1
    assert "no chat role" in res.output or "system" in res.output


def test_cli_help_ends_with_example() -> None:
    res = run("convert", "--help")
    assert res.exit_code == 0
    description, _options = res.output.split("Options:")
    example = description.split("Example:")[1]
    lines = [line.strip().split()[:2] for line in example.strip().splitlines()]
    assert len(lines) >= 3 and all(line == ["atif", "convert"] for line in lines)
    assert "--from" in res.output and "--mapping" in res.output and "--dry-run" in res.output


def test_output_inside_the_source_folder_is_not_read_back(tmp_path: Path) -> None:
    write(tmp_path / "c.json", chat())
    first = convert([tmp_path], tmp_path / "out")
    second = convert([tmp_path], tmp_path / "out")
    assert first.converted == second.converted == 1
    assert list(second.adapters) == [str(tmp_path / "c.json")]


def test_convert_reports_progress_per_input_and_draws_nothing(tmp_path: Path) -> None:
    from atif import Progress

    inputs = []
    for i in range(5):
        f = tmp_path / "in" / f"c{i}.json"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(orjson.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                                 {"role": "assistant", "content": "hello"}]}))
        inputs.append(f)
    events: list[Progress] = []
    result = convert(inputs, tmp_path / "out", on_progress=events.append)
    assert result.converted == 5
    assert [(e.stage, e.done, e.total) for e in events] == [("converting", i, 5) for i in range(6)]
    assert [e.detail.endswith(f"c{i}.json") for i, e in enumerate(events[:5])] == [True] * 5


@pytest.mark.parametrize(
    ("name", "kept"),
    [("CON", False), ("con", False), ("NUL", False), ("nul.json", False), ("AUX", False), ("PRN", False),
     ("COM1", False), ("lpt9", False), ("CONSOLE", True), ("COM10", True), ("task-1", True),
     ("my.task_2", True), ("NULL", True)],
)
def test_safe_name_escapes_windows_device_names_only(name: str, kept: bool) -> None:
    from atif.adapters.values import safe_name

    out = safe_name(name)
    assert (out == name) is kept
    if not kept:
        assert out.split(".", 1)[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT9"}
        assert out != safe_name(name.swapcase())  # distinct inputs keep distinct names


def test_a_task_called_con_gets_a_file_name_windows_can_open(tmp_path: Path) -> None:
    src = tmp_path / "c.json"
    src.write_bytes(orjson.dumps({"task_name": "CON", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}))
    result = convert([src], tmp_path / "out")
    [path] = [p for p in result.outputs if p.suffix == ".json"]
    assert path.parent.name.startswith("CON-") and path.parent.name != "CON"


def test_exit_1_when_nothing_was_converted(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(30):
        (folder / f"n{i}.json").write_bytes(b'{"not": "a trajectory"}')
    r = CliRunner().invoke(cli, ["convert", str(folder), "-o", str(tmp_path / "out")])
    assert r.exit_code == 1
    assert "0 converted, 30 skipped, 0 failed" in r.output
    assert "Error: nothing was converted" in r.output
    (folder / "ok.json").write_bytes(orjson.dumps({"messages": [{"role": "user", "content": "hi"},
                                                                {"role": "assistant", "content": "hello"}]}))
    assert CliRunner().invoke(cli, ["convert", str(folder), "-o", str(tmp_path / "out")]).exit_code == 0
