"""The Harbor adapter, on the generated job and trial directories in ``fixtures/harbor``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from atif.adapters.base import Converted, ConvertOptions, Failure
from atif.adapters.convert import convert
from atif.adapters.harbor import HarborAdapter, strip_canary
from atif.schema.validate import validate

HARBOR = Path(__file__).resolve().parents[2] / "fixtures" / "harbor"
JOB = HARBOR / "jobs" / "2026-11-21__09-30-00"
SINGLE = HARBOR / "single-trial" / "hello-world__RbBvAUC"


def items(path: Path) -> list[Converted | Failure]:
    return list(HarborAdapter().convert(path, ConvertOptions()))


@pytest.fixture(scope="module")
def job() -> dict[str, Converted]:
    return {i.trial_key: i for i in HarborAdapter().convert(JOB, ConvertOptions()) if isinstance(i, Converted)}


def copy_trial(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / "jobs" / "j" / name
    shutil.copytree(JOB / name, dest)
    return dest


def test_sniff() -> None:
    adapter = HarborAdapter()
    assert adapter.sniff(JOB).ok
    assert adapter.sniff(SINGLE).ok
    assert adapter.sniff(JOB / "hello-handoff__VDS3cJk").ok  # running trial: config.json names it
    assert not adapter.sniff(JOB / "result.json").ok
    assert not adapter.sniff(HARBOR / "tasks").ok


def test_job_yields_every_finished_trial_and_skips_the_running_one() -> None:
    out = items(JOB)
    converted = sorted(i.trial_key for i in out if isinstance(i, Converted))
    assert converted == [
        "count-lines__kR4MJNy", "count-lines__uwyFQcA", "hello-handoff__MTqQSiS", "hello-rubric__NKsrmGg",
        "hello-rubric__vYZJ6oo", "hello-world__LqwzREk", "hello-world__UxsdVDJ",
    ]
    [skip] = [i for i in out if isinstance(i, Failure)]
    assert skip.skipped and skip.source.endswith("hello-handoff__VDS3cJk")
    assert "no result.json" in skip.reason


def test_every_trajectory_is_valid_v18(job: dict[str, Converted]) -> None:
    for c in job.values():
        if c.trajectory is not None:
            assert c.trajectory["schema_version"] == "ATIF-v1.8"
            report = validate(c.trajectory, mode="strict")
            assert report.valid, [str(e) for e in report.errors]


def test_reward_txt_gives_a_float(job: dict[str, Converted]) -> None:
    t = job["hello-world__UxsdVDJ"].trial
    assert t.reward == 1.0
    assert job["hello-world__LqwzREk"].trial.reward == 0.0


def test_named_rewards_stay_a_dict_with_the_primary_recorded(job: dict[str, Converted]) -> None:
    t = job["hello-rubric__NKsrmGg"].trial
    assert t.reward == {"file_exists": 1.0, "content_match": 1.0, "exact_bytes": 0.0}
    assert list(t.reward) == ["file_exists", "content_match", "exact_bytes"]  # as the verifier wrote them
    assert t.metadata["primary_reward"] == "file_exists"
    assert t.metadata["reward_source"] == "verifier/reward.json"


def test_times_tokens_cost_from_result(job: dict[str, Converted]) -> None:
    t = job["hello-rubric__vYZJ6oo"].trial
    assert t.duration_seconds == pytest.approx(158.126)  # 08:30:01.420993Z -> 08:32:39.546993Z
    assert (t.input_tokens, t.output_tokens, t.cached_tokens) == (982, 145, 0)
    assert t.cost_usd == pytest.approx(0.003905)
    assert t.error == "AgentTimeoutError: Agent execution timed out after 120.0 seconds"
    assert t.metadata["exception_type"] == "AgentTimeoutError"
    assert t.reward == {"file_exists": 0.0, "content_match": 0.0, "exact_bytes": 0.0}
    assert job["hello-rubric__vYZJ6oo"].trajectory is not None  # exception AND trajectory


def test_trial_without_trajectory_still_has_a_record(job: dict[str, Converted]) -> None:
    c = job["count-lines__kR4MJNy"]
    assert c.trajectory is None
    assert c.trial.error.startswith("EnvironmentStartTimeoutError: ")
    assert c.trial.reward is None and c.trial.steps is None
    assert c.trial.task_name == "count-lines"


def test_ids_and_metadata(job: dict[str, Converted]) -> None:
    t = job["hello-world__UxsdVDJ"].trial
    assert t.trial_id == "dbb31c68-5b20-5113-9628-1ab917d1f920"
    ids = t.metadata["source_ids"]
    assert ids["trial_name"] == "hello-world__UxsdVDJ"
    assert ids["job_id"] == "673bf3d2-0018-56b3-ab7e-91598fc9dbce"
    assert t.metadata["job_name"] == "2026-11-21__09-30-00"
    assert t.metadata["source_format"] == "harbor"
    assert t.metadata["model_name"] == "openai/gpt-4o"


def test_v15_trajectory_is_upgraded_and_the_original_recorded(job: dict[str, Converted]) -> None:
    c = job["hello-world__LqwzREk"]
    assert c.trial.metadata["original_schema_version"] == "ATIF-v1.5"
    assert c.trajectory["schema_version"] == "ATIF-v1.8"


def test_continuation_is_stitched_and_subagents_embedded(job: dict[str, Converted]) -> None:
    c = job["hello-handoff__MTqQSiS"]
    traj = c.trajectory
    agent = JOB / "hello-handoff__MTqQSiS" / "agent"
    main = json.loads((agent / "trajectory.json").read_text())
    cont = json.loads((agent / "trajectory.cont-1.json").read_text())
    assert len(traj["steps"]) == len(main["steps"]) + len(cont["steps"]) == c.trial.steps
    assert traj["final_metrics"]["total_prompt_tokens"] == cont["final_metrics"]["total_prompt_tokens"]
    assert "continued_trajectory_ref" not in traj
    assert len(traj["subagent_trajectories"]) == 3
    refs = [r for s in traj["steps"] for res in (s.get("observation") or {}).get("results", [])
            for r in res.get("subagent_trajectory_ref") or []]
    assert {r["trajectory_id"] for r in refs} == {s["trajectory_id"] for s in traj["subagent_trajectories"]}
    assert c.trial.input_tokens == 7802  # agent_result, which includes the subagents


def test_instruction_from_the_task_directory(job: dict[str, Converted]) -> None:
    assert job["hello-world__UxsdVDJ"].instruction == (HARBOR / "tasks" / "hello-world" / "instruction.md").read_text()
    [single] = [i for i in items(SINGLE) if isinstance(i, Converted)]
    assert single.instruction == (HARBOR / "tasks" / "hello-world" / "instruction.md").read_text()
    assert "job_name" not in single.trial.metadata


def test_strip_canary() -> None:
    text = "<!-- BENCHMARK canary GUID 1234 -->\n# harbor-canary x\n\nDo the thing.\n"
    assert strip_canary(text) == "Do the thing.\n"
    assert strip_canary("Plain.\n# canary later stays\n") == "Plain.\n# canary later stays\n"


def test_reward_json_wins_over_result_json(tmp_path: Path) -> None:
    trial = copy_trial("hello-world__UxsdVDJ", tmp_path)
    (trial / "verifier" / "reward.json").write_text(json.dumps({"reward": 0.25, "style": 3}))
    [c] = items(trial)
    assert isinstance(c, Converted)
    assert c.trial.reward == {"reward": 0.25, "style": 3.0}
    assert c.trial.metadata["primary_reward"] == "reward"
    assert c.trial.primary_reward() == 0.25


def test_reward_txt_is_the_fallback(tmp_path: Path) -> None:
    trial = copy_trial("hello-world__UxsdVDJ", tmp_path)
    result = json.loads((trial / "result.json").read_text())
    result["verifier_result"] = None
    (trial / "result.json").write_text(json.dumps(result))
    (trial / "verifier" / "reward.txt").write_text("0.5\n")
    [c] = items(trial)
    assert isinstance(c, Converted)
    assert c.trial.reward == 0.5
    assert c.trial.metadata["reward_source"] == "verifier/reward.txt"


def test_reward_out_of_range_is_kept_as_named(tmp_path: Path) -> None:
    trial = copy_trial("hello-world__UxsdVDJ", tmp_path)
    (trial / "verifier" / "reward.json").write_text('{"reward": 7}')
    [c] = items(trial)
    assert isinstance(c, Converted)
    assert c.trial.reward == {"reward": 7.0}
    assert any("outside [0, 1]" in w for w in c.warnings)


def test_empty_result_is_skipped_and_malformed_result_fails(tmp_path: Path) -> None:
    empty = copy_trial("hello-world__UxsdVDJ", tmp_path)
    (empty / "result.json").write_text("")
    [f] = items(empty)
    assert isinstance(f, Failure) and f.skipped and "empty" in f.reason
    broken = copy_trial("hello-world__LqwzREk", tmp_path)
    (broken / "result.json").write_text('{"id": "x",\n "task_name": }')
    [f] = items(broken)
    assert isinstance(f, Failure) and not f.skipped
    assert f.source.endswith("result.json") and "line 2" in f.reason


def test_malformed_trajectory_fails_that_trial_only(tmp_path: Path) -> None:
    shutil.copytree(JOB, tmp_path / "job")
    (tmp_path / "job" / "hello-world__UxsdVDJ" / "agent" / "trajectory.json").write_text("{ nope")
    result = convert([tmp_path / "job"], tmp_path / "out")
    assert result.converted == 6
    [(source, reason)] = result.failures
    assert source.endswith("hello-world__UxsdVDJ/agent/trajectory.json") and "line 1" in reason
    assert [r for _, r in result.skipped] == ["no result.json: the trial is still running or was interrupted"]


def test_convert_job_writes_tasks_file(tmp_path: Path) -> None:
    result = convert([JOB], tmp_path / "out")
    assert result.ok and result.converted == 7
    tasks = [json.loads(line) for line in (tmp_path / "out" / "tasks.jsonl").read_text().splitlines()]
    assert [t["name"] for t in tasks] == ["count-lines", "hello-handoff", "hello-rubric", "hello-world"]
    assert all(t["instruction"] for t in tasks)
    trials = [json.loads(line) for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    no_traj = [t for t in trials if t["trajectory"] is None]
    assert len(no_traj) == 2 and all(t["error"] for t in no_traj)


def test_jobs_dir_of_several_jobs_is_walked(tmp_path: Path) -> None:
    shutil.copytree(JOB, tmp_path / "jobs" / "a")
    shutil.copytree(JOB, tmp_path / "jobs" / "b")
    result = convert([tmp_path / "jobs"], tmp_path / "out")
    assert result.adapters == {str(tmp_path / "jobs" / "a"): "harbor", str(tmp_path / "jobs" / "b"): "harbor"}
    # the second job is a byte copy of the first: the same trials, kept once (issue 12: as upload does)
    assert result.converted == 7
    assert len([r for _, r in result.skipped if "kept once" in r]) == 7


def test_outputs_pass_harbors_own_model(tmp_path: Path) -> None:
    trajectories = pytest.importorskip("harbor.models.trajectories")
    convert([JOB, SINGLE], tmp_path / "out")
    files = sorted((tmp_path / "out" / "trajectories").rglob("*.json"))
    assert len(files) == 6
    for f in files:
        doc: Any = json.loads(f.read_text())
        trajectories.Trajectory.model_validate(doc)


def test_forced_harbor_on_a_file_is_a_clear_failure(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_text("{}")
    result = convert([f], tmp_path / "out", source_format="harbor")
    assert result.failures == [(str(f), "not a directory (Harbor input is a job or trial directory)")]


def test_each_trial_of_a_job_gets_its_own_tasks_instruction(job: dict[str, Converted]) -> None:
    """Lookups are shared between the trials of one job; each trial still gets its task's text."""
    tasks = {key.rsplit("__", 1)[0] for key in job}
    assert len(tasks) > 1
    for key, item in job.items():
        if not isinstance(item, Converted):
            continue
        md = HARBOR / "tasks" / key.rsplit("__", 1)[0] / "instruction.md"
        if md.is_file():
            assert item.instruction == strip_canary(md.read_text()), key
