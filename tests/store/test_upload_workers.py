"""Uploading with worker processes stores the same bytes and ids and reports the same as without."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from store_builders import basic_trials, make_trajectory, write_run

from atif import upload
from atif.schema import parallel
from atif.store import Store

TABLES = {
    # input_file_stat records when a file was read (a file written moments before gets none).
    "trial_data": "SELECT * EXCLUDE (created_at, upload_id, input_file_stat) FROM trial_data ORDER BY trial_id",
    "trajectory_data": "SELECT * EXCLUDE (created_at) FROM trajectory_data ORDER BY trajectory_id",
    "trajectory_raw": "SELECT * EXCLUDE (created_at) FROM trajectory_raw ORDER BY raw_id",
    "step_data": "SELECT * FROM step_data ORDER BY ALL",
    "tool_call_data": "SELECT * FROM tool_call_data ORDER BY ALL",
    "tasks": "SELECT collection, name, instruction FROM tasks ORDER BY ALL",
}


def _run(root: Path) -> Path:
    """450 trials (more than one block of lines) with every kind of trouble among them."""
    trials = basic_trials(450)
    bad = make_trajectory("task-7")
    bad["steps"][0]["step_id"] = 5  # invalid ATIF
    trials[7]["_trajectory"] = bad
    trials[9]["_trajectory"] = dict(trials[9]["_trajectory"], final_metrics={"total_prompt_tokens": 1})  # a warning
    trials[300]["_trajectory"] = trials[299]["_trajectory"]  # one content, two trials
    trials[301]["trial_id"] = trials[300]["trial_id"]
    trials[301]["task_name"] = trials[300]["task_name"]  # same trial key, other record
    run = write_run(root, trials, extra_lines=[b"{not json", b'{"task_name": "x", "task_name": "x"}', b"[1]"])
    (run / "tasks.jsonl").write_bytes(b'{"name": "task-3", "instruction": "Do three."}\n')
    return run


def _upload(run: Path, db: str, workers: int) -> tuple[Any, dict[str, Any]]:
    with Store(db) as store:
        r = upload([run], "exp", store=store, workers=workers, batch_size=64)
        again = upload([run], "exp", store=store, workers=workers, batch_size=64)
        tables = {name: store.query(sql)[1] for name, sql in TABLES.items()}
    return (r.created_trials, r.unchanged_trials, [(e.file, e.reason) for e in r.errors],
            [(w.file, w.reason) for w in r.warnings], again.created_trials, again.unchanged_trials,
            [(e.file, e.reason) for e in again.errors]), tables


def test_workers_change_nothing_but_the_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(tmp_path / "run")
    pools: list[int] = []
    real_init = parallel.OrderedPool.__init__

    def counting(self: Any, workers: int, **kwargs: Any) -> None:
        pools.append(workers)
        real_init(self, workers, **kwargs)

    monkeypatch.setattr(parallel.OrderedPool, "__init__", counting)
    one, stored_one = _upload(run, "one.duckdb", 1)
    assert pools == []
    two, stored_two = _upload(run, "two.duckdb", 2)
    assert pools == [2]  # the first upload used workers; the re-upload parses 3 lines, here
    assert two == one
    for name in TABLES:
        assert stored_two[name] == stored_one[name], name
    created, unchanged, errors, warnings, created_again, unchanged_again, errors_again = one
    # 450 lines and a record without trajectory, less an invalid trajectory and a clashing trial key
    assert created == 449 and unchanged == 0
    assert any("invalid ATIF" in reason and "step.id-sequence" in reason for _, reason in errors)
    assert any("final-metrics.mismatch" in reason for _, reason in warnings)
    assert any("json.duplicate-key" in reason for _, reason in warnings)
    assert (created_again, unchanged_again) == (0, 449)
    assert len(errors_again) == len(errors) == 4
    assert [t for t in stored_one["tasks"] if t[2]] == [("exp", "task-3", "Do three.")]
    # Bytes read back as uploaded.
    with Store("two.duckdb") as store:
        trial = next(t for t in store.trials("exp") if t["task_name"] == "task-5")
        assert store.trial(trial["trial_id"])["trajectory_bytes"] == (run / "trajectories/task-5/5.json").read_bytes()
        assert orjson.loads(store.trial(trial["trial_id"])["trajectory_bytes"])["steps"]
