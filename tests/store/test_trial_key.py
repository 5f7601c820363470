"""The integer trial key: written by every trial and rating writer, refused on a collision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from store_builders import basic_trials, make_trajectory, subprocess_env, write_run

from atif import upload
from atif.errors import StoreError
from atif.schema.identity import trial_id_of
from atif.store import Store
from atif.store.keys import check_collisions, trial_key, trial_key_sql


def test_trial_key_is_the_signed_first_16_hex_digits() -> None:
    assert trial_key("0000000000000001" + "a" * 48) == 1
    assert trial_key("7fffffffffffffff" + "0" * 48) == 2**63 - 1
    assert trial_key("8000000000000000" + "0" * 48) == -(2**63)
    assert trial_key("ffffffffffffffff" + "0" * 48) == -1
    # An id the store never makes is keyed by its sha256: still 64 bits, still deterministic.
    assert trial_key("old-trial") == trial_key("old-trial") != trial_key("old-trial2")


def test_sql_and_python_keys_agree() -> None:
    import hashlib

    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(500)]
    ids += ["old-trial", "ABCDEF0123456789ab", "", "ffffffffffffffff", "8000000000000000zz"]
    db = duckdb.connect()
    got = db.execute(
        f"SELECT {trial_key_sql('t')} FROM (SELECT unnest(?::VARCHAR[]) AS t, generate_subscripts(?::VARCHAR[], 1) AS i) "
        "ORDER BY i", [ids, ids]).fetchall()
    assert [g[0] for g in got] == [trial_key(i) for i in ids]


def _rated_trials() -> list[dict[str, Any]]:
    trials = basic_trials(4)
    trials[0]["criterion_ratings"] = [{"criterion": "complete", "rating": "yes"}]
    trials[1]["criterion_ratings"] = [{"criterion": "complete", "rating": "NO", "source": "human"}]
    trials[2]["metadata"] = {"model_name": "from-metadata"}
    trials[2]["_trajectory"]["agent"].pop("model_name")
    trials[3].pop("_trajectory")
    trials[3]["metadata"] = {"model_name": 7}  # not a string: the view shows its JSON text
    return trials


def test_every_writer_stores_the_key_and_the_trials_agent_and_model(tmp_path: Path, criteria: dict[str, Any]) -> None:
    with Store("s.duckdb") as store:
        upload([write_run(tmp_path / "out", _rated_trials())], "exp", criteria=criteria, store=store)
        ids = [r[0] for r in store.query("SELECT trial_id FROM trial_data ORDER BY trial_id")[1]]
        # Rating writer: a judge rating, then a human one that replaces it (the judge's goes to history).
        store.save_rating(ids[0], "safe", "YES", source="judge", judge_model="m")
        store.save_rating(ids[0], "safe", "NO", source="human")
        keys = dict(store.query("SELECT trial_id, trial_key FROM trial_data")[1])
        assert keys == {i: trial_key(i) for i in ids}
        for table in ("rating_data", "rating_history"):
            rows = store.query(f"SELECT trial_id, trial_key FROM {table}")[1]
            assert rows and all(k == trial_key(i) for i, k in rows), table
        assert store.query("SELECT count(*) FROM rating_history")[1] == [(1,)]
        # agent_name / model_name on the trial are what the trials view derives from the trajectory.
        got = store.query(
            "SELECT t.task_name, d.agent_name, d.model_name FROM trial_data d JOIN trials t USING (trial_id) "
            "WHERE d.agent_name IS NOT DISTINCT FROM t.agent_name AND d.model_name IS NOT DISTINCT FROM t.model_name "
            "ORDER BY 1")[1]
        assert got == [("task-0", "test-agent", "gpt-test"), ("task-1", "test-agent", "gpt-test"),
                       ("task-2", "test-agent", "from-metadata"), ("task-3", None, "7")]


def test_a_key_collision_is_refused_and_nothing_is_merged(tmp_path: Path) -> None:
    trials = basic_trials(2)
    victim = trial_id_of("exp", "task-1", "run-1", 1)
    impostor = victim[:16] + ("0" if victim[16] != "0" else "1") + victim[17:]
    with Store("s.duckdb") as store:
        upload([write_run(tmp_path / "a", trials[:1])], "exp", create_missing_tasks=True, store=store)
        # Another trial id with the same first 16 hex digits is stored already.
        store.connection.execute(
            "INSERT INTO trial_data (trial_id, trial_key, experiment, task_name, record_hash) VALUES (?, ?, 'exp', 'x', 'h')",
            [impostor, trial_key(impostor)])
        with pytest.raises(StoreError, match=f"trial {victim} has the same 64-bit trial key as trial {impostor}"):
            upload([write_run(tmp_path / "b", trials)], "exp", create_missing_tasks=True, store=store)
        assert store.query("SELECT trial_id FROM trial_data WHERE trial_key = ?", [trial_key(victim)])[1] == [(impostor,)]


def test_a_collision_within_one_batch_is_refused() -> None:
    db = duckdb.connect()
    db.execute("CREATE TABLE trial_data (trial_id VARCHAR, trial_key BIGINT)")
    a = "ab" * 32
    b = a[:16] + "c" * 48
    db.execute(f"CREATE TABLE batch AS SELECT t AS trial_id, {trial_key_sql('t')} AS trial_key "
               "FROM unnest(?::VARCHAR[]) u(t)", [[a, b]])
    with pytest.raises(StoreError, match="same 64-bit trial key"):
        check_collisions(db, "batch")
    db.execute("DELETE FROM batch WHERE trial_id = ?", [b])
    db.execute("INSERT INTO trial_data SELECT * FROM batch")
    check_collisions(db, "batch")  # the same trial again (a racing writer, a replace): no collision


def test_the_cli_reports_a_collision_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    trials = basic_trials(1)
    trials[0]["_trajectory"] = make_trajectory("task-0")
    victim = trial_id_of("exp", "task-0", "run-0", 1)
    impostor = victim[:16] + ("0" if victim[16] != "0" else "1") + victim[17:]
    db = tmp_path / "s.duckdb"
    Store(db).close()
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO trial_data (trial_id, trial_key, experiment, task_name, record_hash) VALUES (?, ?, 'e', 'x', 'h')",
                [impostor, trial_key(impostor)])
    con.close()
    out = write_run(tmp_path / "out", trials)
    res = subprocess.run(
        [sys.executable, "-c", "from atif.cli import main; main()", "upload", str(out), "-e", "exp", "--create-missing-tasks", "--db", str(db)],
        capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False)
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if "same 64-bit trial key" in ln]
    assert len(lines) == 1 and victim in lines[0] and impostor in lines[0], res.stderr
    assert "Traceback" not in res.stderr
