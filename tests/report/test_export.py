"""export_dataset: metric, preference, completion, prompt (JSONL and Parquet) and views."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest
from click.testing import CliRunner
from report_builders import StoreBuilder, simple_trajectory

from atif.cli import cli
from atif.errors import ReportError
from atif.report import export_dataset
from atif.report.export import prompt_messages
from atif.store import Store


def _jsonl(p: Path) -> list[dict]:
    return [orjson.loads(line) for line in p.read_bytes().splitlines()]


@pytest.fixture
def exp(builder: StoreBuilder) -> StoreBuilder:
    # task "fix": three attempts; best by reward is epoch 2, worst is epoch 3 (reward tie broken by passes)
    builder.trial("e", "fix", epoch=1, reward=0.5, rewards={"reward": 0.5, "tests": 2},
                  ratings={"a": "YES", "b": "YES"}, trajectory=simple_trajectory("fix", "answer one"))
    builder.trial("e", "fix", epoch=2, reward=1.0, ratings={"a": "YES", "b": "NO"},
                  trajectory=simple_trajectory("fix", "answer two", copied=True))
    builder.trial("e", "fix", epoch=3, reward=0.5, ratings={"a": "NO", "b": "UNSCORED"},
                  trajectory=simple_trajectory("fix", "answer three"))
    # task "tie": two attempts that tie on reward and passes -> no preference pair
    builder.trial("e", "tie", epoch=1, reward=1.0, ratings={"a": "YES"}, trajectory=simple_trajectory("tie"))
    builder.trial("e", "tie", epoch=2, reward=1.0, ratings={"a": "YES"}, trajectory=simple_trajectory("tie"))
    # a trial without trajectory
    builder.trial("e", "solo", reward=0.0, error="crashed")
    return builder


def test_metric_rows(exp: StoreBuilder, tmp_path: Path) -> None:
    res = export_dataset(exp.store(), "e", "metric", "jsonl", tmp_path / "m.jsonl")
    rows = _jsonl(tmp_path / "m.jsonl")
    assert res["rows"] == 6 == len(rows)
    first = rows[0]
    assert (first["task_name"], first["epoch"], first["reward"]) == ("fix", 1, 0.5)
    assert first["verdicts"] == {"a": "YES", "b": "YES"} and first["n_passed"] == 2 and first["n_rated"] == 2
    assert first["rewards"] == {"reward": 0.5, "tests": 2}
    third = rows[2]
    assert third["verdicts"] == {"a": "NO", "b": "UNSCORED"} and third["n_rated"] == 1
    solo = next(r for r in rows if r["task_name"] == "solo")
    assert solo["verdicts"] == {"a": None, "b": None} and solo["error"] == "crashed"


def test_metric_parquet(exp: StoreBuilder, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "m.parquet"
    assert export_dataset(exp.store(), "e", "metric", "parquet", out)["rows"] == 6
    con = duckdb.connect()
    cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{out}')").fetchall()}
    assert cols["verdicts"] == "MAP(VARCHAR, VARCHAR)" and cols["reward"] == "DOUBLE" and cols["epoch"] == "INTEGER"
    row = con.execute(f"SELECT verdicts['b'], rewards->>'tests' FROM read_parquet('{out}') "
                      "WHERE task_name = 'fix' AND epoch = 1").fetchone()
    assert row == ("YES", "2")
    assert not list(tmp_path.glob("sub/*.jsonl")) and not list(tmp_path.glob("sub/*.part"))


def test_preference_pairs(exp: StoreBuilder, tmp_path: Path) -> None:
    res = export_dataset(exp.store(), "e", "preference", "jsonl", tmp_path / "p.jsonl")
    rows = _jsonl(tmp_path / "p.jsonl")
    assert len(rows) == 1 and res["skipped"] == {"all trials of the task tie": 1, "no trajectory": 1}
    p = rows[0]
    assert p["task_name"] == "fix" and (p["chosen_reward"], p["rejected_reward"]) == (1.0, 0.5)
    assert p["rejected_passed"] == 0  # epoch 3 (one NO) loses to epoch 1 (two YES) on passes
    assert [m["role"] for m in p["prompt"]] == ["system", "user"]
    assert p["chosen"][-1] == {"role": "assistant", "content": "answer two"}
    assert p["rejected"][-1]["content"] == "answer three"
    # the copied-context step of the chosen trajectory is not part of the pair
    assert all("copied earlier context" not in str(m) for m in p["prompt"] + p["chosen"])


def test_completion_skips_copied_context(exp: StoreBuilder, tmp_path: Path) -> None:
    res = export_dataset(exp.store(), "e", "completion", "jsonl", tmp_path / "c.jsonl")
    rows = _jsonl(tmp_path / "c.jsonl")
    assert res["rows"] == 5 and res["skipped"] == {"no trajectory": 1}
    two = next(r for r in rows if r["epoch"] == 2 and r["task_name"] == "fix")
    roles = [m["role"] for m in two["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert two["messages"][2]["tool_calls"][0]["function"] == {"name": "bash", "arguments": '{"cmd":"ls"}'}
    assert two["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "a.txt\nb.txt"}
    assert "copied earlier context" not in orjson.dumps(rows).decode()


def test_prompt_is_up_to_the_last_agent_turn(exp: StoreBuilder, tmp_path: Path) -> None:
    export_dataset(exp.store(), "e", "prompt", "parquet", tmp_path / "p.parquet")
    con = duckdb.connect()
    msgs = con.execute(f"SELECT messages FROM read_parquet('{tmp_path / 'p.parquet'}') LIMIT 1").fetchone()[0]
    assert [m["role"] for m in orjson.loads(msgs)] == ["system", "user", "assistant", "tool"]
    assert prompt_messages([{"role": "user", "content": "x"}]) == [{"role": "user", "content": "x"}]
    assert prompt_messages([]) == []


def test_empty_parquet_keeps_its_schema(builder: StoreBuilder, tmp_path: Path) -> None:
    builder.trial("e", "t", reward=1.0)
    out = tmp_path / "c.parquet"
    assert export_dataset(builder.store(), "e", "completion", "parquet", out)["rows"] == 0
    cols = [r[0] for r in duckdb.connect().execute(f"DESCRIBE SELECT * FROM read_parquet('{out}')").fetchall()]
    assert cols == ["trial_id", "experiment", "task_name", "epoch", "reward", "messages"]


def test_views_through_the_store(exp: StoreBuilder, tmp_path: Path) -> None:
    exp.close()
    with Store.open(tmp_path / "atif.duckdb", read_only=True) as store:
        res = export_dataset(store, "e", "views", "parquet", tmp_path / "wh")
    assert any("trials/experiment=e" in f for f in res["files"])
    n = duckdb.connect().execute(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/wh/trials/**/*.parquet', hive_partitioning=true)").fetchone()
    assert n == (6,)


def test_bad_kind_and_format(exp: StoreBuilder, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="unknown export kind"):
        export_dataset(exp.store(), "e", "weights", "jsonl", tmp_path / "x")
    with pytest.raises(ReportError, match="unknown export format"):
        export_dataset(exp.store(), "e", "metric", "csv", tmp_path / "x")
    with pytest.raises(ReportError, match="Parquet only"):
        export_dataset(exp.store(), "e", "views", "jsonl", tmp_path / "x")


def test_cli(exp: StoreBuilder, tmp_path: Path) -> None:
    exp.close()
    db = str(tmp_path / "atif.duckdb")
    r = CliRunner().invoke(cli, ["export", "-e", "e", "--kind", "completion", "-o", str(tmp_path / "c.jsonl"),
                                 "--db", db])
    assert r.exit_code == 0, r.output
    assert "wrote 5 rows (completion, jsonl)" in r.output and "skipped: 1 no trajectory" in r.output
    r = CliRunner().invoke(cli, ["export", "-e", "e", "--kind", "views", "--format", "jsonl", "-o", str(tmp_path / "v"),
                                 "--db", db])
    assert r.exit_code == 2  # the views are Parquet only
    r = CliRunner().invoke(cli, ["export", "-e", "e", "--kind", "metric", "-o", str(tmp_path / "m"), "--db", db])
    assert r.exit_code == 0
    r = CliRunner().invoke(cli, ["export", "-e", "e", "-o", str(tmp_path / "none"), "--db", db])
    assert r.exit_code == 2 and "--kind" in r.output  # no kind and no parquet: which dataset?
    r = CliRunner().invoke(cli, ["export", "-e", "e", "--format", "parquet", "-o", str(tmp_path / "wh"), "--db", db])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "wh" / "trials" / "experiment=e").is_dir()
