"""Task names (file stem default, --task, --task-from) and trial keys that convert and upload agree on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from atif.adapters.base import Converted, Failure
from atif.adapters.convert import TrialKeys, convert, iter_convert
from atif.cli import cli


def chat(question: str, **top: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": f"re: {question}"}], **top}


def write(path: Path, *records: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    else:
        path.write_bytes(orjson.dumps(records[0]))
    return path


def tasks(out: Path) -> list[str]:
    return [json.loads(line)["task_name"] for line in (out / "trials.jsonl").read_text().splitlines()]


def test_unrelated_chat_logs_in_one_folder_get_their_own_task(tmp_path: Path) -> None:
    write(tmp_path / "runs" / "billing.json", chat("refund?"))
    write(tmp_path / "runs" / "weather.json", chat("rain?"))
    convert([tmp_path / "runs"], tmp_path / "out")
    assert sorted(tasks(tmp_path / "out")) == ["billing", "weather"]


def test_task_names_every_trial(tmp_path: Path) -> None:
    f = write(tmp_path / "runs.jsonl", chat("a"), chat("b"))
    r = CliRunner().invoke(cli, ["convert", str(f), "-o", str(tmp_path / "out"), "--task", "support"])
    assert r.exit_code == 0, r.output
    assert tasks(tmp_path / "out") == ["support", "support"]


def test_task_from_reads_each_trials_own_line(tmp_path: Path) -> None:
    f = write(tmp_path / "runs.jsonl", chat("a", metadata={"case": "c-1"}), chat("b", metadata={"case": "c-2"}))
    r = CliRunner().invoke(cli, ["convert", str(f), "-o", str(tmp_path / "out"), "--task-from", "metadata.case"])
    assert r.exit_code == 0, r.output
    assert sorted(tasks(tmp_path / "out")) == ["c-1", "c-2"]


def test_task_from_that_finds_nothing_fails_that_trial_only(tmp_path: Path) -> None:
    f = write(tmp_path / "runs.jsonl", chat("a", metadata={"case": "c-1"}), chat("b"))
    r = CliRunner().invoke(cli, ["convert", str(f), "-o", str(tmp_path / "out"), "--task-from", "metadata.case"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert f"failed: {f}:2: --task-from 'metadata.case' gives None, not a task name" in r.output
    assert tasks(tmp_path / "out") == ["c-1"]


def test_a_bad_task_from_expression_is_one_line(tmp_path: Path) -> None:
    f = write(tmp_path / "c.json", chat("a"))
    r = CliRunner().invoke(cli, ["convert", str(f), "--dry-run", "--task-from", "metadata.["])
    assert r.exit_code != 0 and "is not a JMESPath expression" in r.output and "Traceback" not in r.output
    both = CliRunner().invoke(cli, ["convert", str(f), "--dry-run", "--task", "x", "--task-from", "y"])
    assert both.exit_code == 2


def test_colliding_keys_get_the_same_new_ids_in_convert_and_in_upload_reading(tmp_path: Path) -> None:
    f = write(tmp_path / "runs.jsonl", chat("a", id="run-1"), chat("b", id="run-1"), chat("a", id="run-1"))
    result = convert([f], tmp_path / "out")
    records = [json.loads(line) for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert sorted(r["trial_id"] for r in records) == ["run-1", "run-1~2"]
    assert sorted(p.name for p in (tmp_path / "out" / "trajectories").rglob("*.json")) == ["run-1.json", "run-1~2.json"]
    assert result.skipped and "the same trial as 'run-1'" in result.skipped[0][1]
    items = list(iter_convert([f]))
    assert sorted(i.trial.trial_id or "" for i in items if isinstance(i, Converted)) == ["run-1", "run-1~2"]
    assert [i.skipped for i in items if isinstance(i, Failure)] == [True]


def test_trial_keys_can_be_shared_across_calls(tmp_path: Path) -> None:
    a = write(tmp_path / "a" / "runs.jsonl", chat("a", id="run-1"))
    b = write(tmp_path / "b" / "runs.jsonl", chat("b", id="run-1"))
    keys = TrialKeys()
    ids = [i.trial.trial_id for f in (a, b) for i in iter_convert([f], keys=keys) if isinstance(i, Converted)]
    assert ids == ["run-1", "run-1~2"]
