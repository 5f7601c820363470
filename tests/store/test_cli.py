"""``atif upload``, ``query``, ``experiments``, ``trials``: CliRunner for most, the real script end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner
from store_builders import basic_trials, subprocess_env, write_run

from atif.cli import cli
from atif.errors import CriteriaError, JudgeError
from atif.store import Store

CRITERIA_YAML = """\
name: coding-basics
judge:
  model: openai/gpt-4o-mini
  api_base: http://127.0.0.1:8000/v1
  concurrency: 16
criteria:
  - label: task-complete
    question: Did the agent complete the requested task?
  - label: tests-pass
    question: Do the tests pass?
    kind: function
    module: checks.py
"""


def _atif(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("atif")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from atif.cli import main; main()"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, env=subprocess_env(), timeout=120,
                          check=False)


def test_upload_prints_counts_and_is_idempotent(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(3))
    runner = CliRunner()
    first = runner.invoke(cli, ["upload", str(run), "--experiment", "nightly"])
    assert first.exit_code == 0, first.output
    assert "Experiment nightly (collection nightly)" in first.output
    assert "created trials       3" in first.output and "created tasks        3" in first.output
    second = runner.invoke(cli, ["upload", str(run), "-e", "nightly"])
    assert second.exit_code == 0
    assert "nothing new: all 3 trials were already stored" in second.output
    assert "unchanged trials     3" in second.output
    assert (tmp_path / "atif.duckdb").exists()


def test_upload_with_criteria_and_ratings(tmp_path: Path) -> None:
    (tmp_path / "criteria.yaml").write_text(CRITERIA_YAML)
    trials = basic_trials(2)
    trials[0]["criterion_ratings"] = [{"criterion": "task-complete", "rating": "YES"},
                                      {"criterion": "polite", "rating": "NO"}]
    run = write_run(tmp_path / "out", trials)
    result = CliRunner().invoke(cli, ["upload", str(run), "-e", "e", "--criteria", str(tmp_path / "criteria.yaml"),
                                      "--db", "x.duckdb"])
    assert result.exit_code == 0, result.output
    assert "criterion set coding-basics" in result.output
    assert "created ratings      2" in result.output
    assert "pending evaluations  3" in result.output
    assert "added criteria       polite" in result.output
    with Store("x.duckdb") as store:
        exp = store.experiment("e")
        assert exp["judge_config"] == {"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:8000/v1",
                                       "concurrency": 16}
        fn = next(c for c in exp["criteria"] if c["kind"] == "function")
        assert fn["config"]["module"] == str((tmp_path / "checks.py").resolve())


def test_upload_json_reports_errors_and_exits_1(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(2), extra_lines=[b"{oops"])
    result = CliRunner().invoke(cli, ["upload", str(run), "-e", "e", "--format", "json"])
    assert result.exit_code == 1
    data = orjson.loads(result.output)
    assert data["created_trials"] == 2 and data["ok"] is False
    assert data["errors"][0]["file"].endswith("trials.jsonl:3")
    assert "line 3 is not valid JSON" in data["errors"][0]["reason"]


def test_upload_lists_unmatched_tasks_with_suggestions(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["upload", str(write_run(tmp_path / "a", basic_trials(2))), "-e", "e"])
    trials = basic_trials(2)
    trials[1]["task_name"] = "tsak-1"
    result = runner.invoke(cli, ["upload", str(write_run(tmp_path / "b", trials)), "-e", "e"])
    assert result.exit_code == 1
    assert "unmatched trials     1" in result.output
    assert "task 'tsak-1'; closest: task-1" in result.output
    assert "--create-missing-tasks" in result.output


def test_upload_bad_criteria_file_is_an_atif_error(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("name: x\ncriteria:\n  - label: a\n")
    result = CliRunner().invoke(cli, ["upload", str(tmp_path), "-e", "e", "--criteria", str(tmp_path / "c.yaml")])
    assert isinstance(result.exception, CriteriaError)
    assert "/criteria/0/question: required field is missing" in str(result.exception)


def test_upload_evaluate_without_the_judge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "atif.judge.engine", None)
    monkeypatch.delitem(sys.modules["atif"].__dict__, "evaluate", raising=False)
    run = write_run(tmp_path / "out", basic_trials(1))
    result = CliRunner().invoke(cli, ["upload", str(run), "-e", "e", "--evaluate"])
    assert isinstance(result.exception, JudgeError)
    assert "--evaluate needs the judge" in str(result.exception)
    with Store() as store:  # the upload itself was stored before the judge was asked for
        assert len(store.trials("e")) == 1


def test_query_formats(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["upload", str(write_run(tmp_path / "out", basic_trials(2))), "-e", "e"])
    sql = "SELECT task_name, reward, metadata FROM trials ORDER BY task_name"
    as_json = runner.invoke(cli, ["query", sql, "--format", "json"])
    assert as_json.exit_code == 0
    assert orjson.loads(as_json.output) == [
        {"task_name": "task-0", "reward": 0.0, "metadata": {}},
        {"task_name": "task-1", "reward": 0.5, "metadata": {}},
    ]
    as_csv = runner.invoke(cli, ["query", "SELECT task_name, reward FROM trials ORDER BY 1", "--format", "csv"])
    assert as_csv.output.splitlines() == ["task_name,reward", "task-0,0.0", "task-1,0.5"]
    table = runner.invoke(cli, ["query", "SELECT task_name, reward FROM trials ORDER BY 1"])
    assert "task_name" in table.output and "task-1" in table.output and "0.5" in table.output
    out = tmp_path / "r.parquet"
    pq = runner.invoke(cli, ["query", "SELECT * FROM trials", "--format", "parquet", "-o", str(out)])
    assert pq.exit_code == 0 and out.exists()
    no_out = runner.invoke(cli, ["query", "SELECT 1", "--format", "parquet"])
    assert no_out.exit_code == 2
    to_file = runner.invoke(cli, ["query", "SELECT 1 AS one", "--format", "json", "-o", str(tmp_path / "o.json")])
    assert to_file.exit_code == 0 and orjson.loads((tmp_path / "o.json").read_bytes()) == [{"one": 1}]


def test_experiments_and_trials_listing(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(cli, ["experiments", "--db", "new.duckdb"])
    assert "no such store" in str(empty.exception)
    runner.invoke(cli, ["upload", str(write_run(tmp_path / "out", basic_trials(2))), "-e", "nightly"])
    exps = runner.invoke(cli, ["experiments", "--format", "json"])
    [e] = orjson.loads(exps.output)
    assert (e["name"], e["collection"], e["n_trials"]) == ("nightly", "nightly", 2)
    trials = runner.invoke(cli, ["trials", "--experiment", "nightly", "--format", "csv"])
    lines = trials.output.splitlines()
    assert lines[0].startswith("trial_id,task_name,epoch,reward") and len(lines) == 3
    table = runner.invoke(cli, ["trials", "-e", "nightly"])
    assert "task-0" in table.output
    missing = runner.invoke(cli, ["trials", "-e", "nope"])
    assert "no experiment 'nope'" in str(missing.exception)


@pytest.mark.parametrize("name", ["upload", "query", "experiments", "trials"])
def test_help_ends_with_an_example(name: str) -> None:
    cmd = cli.get_command(click.Context(cli, info_name="atif"), name)
    assert cmd is not None and cmd.help is not None
    assert "Example:" in cmd.help
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_end_to_end_with_the_installed_script(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(3))
    up = _atif("upload", str(run), "-e", "nightly", "--format", "json", cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert orjson.loads(up.stdout)["created_trials"] == 3
    q = _atif("query", "SELECT n_trials, reward_mean FROM experiment_metrics", "--format", "json", cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    assert orjson.loads(q.stdout) == [{"n_trials": 3, "reward_mean": 0.5}]
    refused = _atif("query", "DELETE FROM trial_data", cwd=tmp_path)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        (
            "Error: queries are read-only: DELETE statements are refused "
            "(only SELECT, WITH ... SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)"
        )
    ]
    bad = _atif("upload", str(write_run(tmp_path / "bad", basic_trials(1), extra_lines=[b"nope"])), "-e", "nightly",
                cwd=tmp_path)
    assert bad.returncode == 1
    assert "errors               1" in bad.stdout and "line 2 is not valid JSON" in bad.stdout


def test_upload_of_inputs_none_of_which_converts_exits_1(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(300):
        (junk / f"{i:03d}.json").write_text('{"not": "a trajectory"}')
    result = CliRunner().invoke(cli, ["upload", str(junk), "-e", "e", "--format", "json"])
    assert result.exit_code == 1, result.output
    data = orjson.loads(result.output)
    assert data["created_trials"] == 0 and data["ok"] is False
    [error] = data["errors"]
    assert error["file"] == str(junk) and error["reason"].startswith("nothing to upload: no trial found")


def test_upload_of_an_empty_trials_file_exits_1(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", [])
    result = CliRunner().invoke(cli, ["upload", str(run), "-e", "e"])
    assert result.exit_code == 1
    assert f"{run}: nothing to upload: no trial found" in result.output


def test_upload_names_the_task_of_raw_runner_output(tmp_path: Path) -> None:
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "openai"
    db = str(tmp_path / "atif.duckdb")
    src = tmp_path / "run.json"
    src.write_bytes((fixtures / "chat_object.json").read_bytes())
    runner = CliRunner()
    r = runner.invoke(cli, ["upload", str(src), "-e", "a", "--create-missing-tasks", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["upload", str(src), "-e", "b", "--task", "refund-flow", "--create-missing-tasks",
                            "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["upload", str(src), "-e", "c", "--task", "x", "--task-from", "y", "--db", db])
    assert r.exit_code == 2 and "not both" in r.output
    with Store(db, read_only=True) as store:
        assert [t["task_name"] for t in store.trials("a")] == ["run"]  # the file's stem by default
        assert [t["task_name"] for t in store.trials("b")] == ["refund-flow"]
