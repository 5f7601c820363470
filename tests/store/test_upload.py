"""Uploading converted output, ATIF files and bad input; idempotency, --replace, tasks and ratings."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from store_builders import basic_trials, make_trajectory, write_run

from atif import Progress, upload
from atif.errors import CriteriaError, StoreError
from atif.store import Store, decode_raw
from atif.trial import trajectory_messages


def _count(store: Store, sql: str) -> Any:
    return store.query(sql)[1][0][0]


def test_converted_output_is_stored_with_trajectories_steps_and_tool_calls(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(3))
    with Store("s.duckdb") as store:
        r = upload([run], "exp", store=store)
        assert (r.created_trials, r.unchanged_trials, r.created_tasks) == (3, 0, 3)
        assert r.ok and r.errors == [] and r.collection == "exp"
        rows = store.trials("exp")
        assert [(t["task_name"], t["reward"], t["epoch"]) for t in rows] == [
            ("task-0", 0.0, 1), ("task-1", 0.5, 1), ("task-2", 1.0, 1)]
        t = rows[0]
        # Totals the record lacks come from the trajectory: 4 steps, 2x100 + 50 prompt tokens.
        assert (t["steps"], t["input_tokens"], t["output_tokens"], t["cached_tokens"]) == (4, 250, 25, 80)
        assert t["cost_usd"] == pytest.approx(0.0025)
        assert (t["agent_name"], t["model_name"]) == ("test-agent", "gpt-test")
        assert _count(store, "SELECT count(*) FROM steps") == 12
        calls = store.query("SELECT step_id, call_index, function_name, arguments, result, is_error FROM tool_calls "
                            "WHERE task_name = 'task-0' ORDER BY step_id")[1]
        assert calls == [(2, 0, "bash", '{"cmd":"echo 0"}', "output 0", False),
                         (3, 0, "bash", '{"cmd":"echo 1"}', "output 1", False)]
        assert store.query("SELECT count(*) FROM step_data WHERE ts IS NOT NULL")[1] == [(12,)]


def test_raw_trajectory_bytes_are_kept_verbatim(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(1))
    on_disk = (run / "trajectories/task-0/0.json").read_bytes()
    with Store("s.duckdb") as store:
        upload([run], "exp", store=store)
        trial = store.trials("exp")[0]
        canonical = orjson.dumps(orjson.loads(on_disk), option=orjson.OPT_SORT_KEYS)
        assert trial["trajectory_id"] == hashlib.sha256(canonical).hexdigest()
        assert store.trajectory_bytes(trial["trajectory_id"]) == on_disk
        full = store.trial(trial["trial_id"])
        assert full["trajectory_bytes"] == on_disk
        assert full["trajectory"] == orjson.loads(on_disk)
        assert full["task"]["name"] == "task-0"


def test_inline_trajectories_store_canonical_bytes(tmp_path: Path) -> None:
    trials = basic_trials(2)
    run = write_run(tmp_path / "out", trials, inline=True)
    with Store("s.duckdb") as store:
        r = upload([run / "trials.jsonl"], "exp", store=store)
        assert r.created_trials == 2
        t = store.trials("exp")[0]
        raw = store.trajectory_bytes(t["trajectory_id"])
        assert raw == orjson.dumps(trials[0]["_trajectory"], option=orjson.OPT_SORT_KEYS)


def test_same_upload_twice_creates_nothing(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(4))
    with Store("s.duckdb") as store:
        first = upload([run], "exp", store=store)
        second = upload([run], "exp", store=store)
        assert first.created_trials == 4
        assert (second.created_trials, second.unchanged_trials, second.created_tasks) == (0, 4, 0)
        assert second.nothing_new and second.ok
        assert _count(store, "SELECT count(*) FROM trial_data") == 4
        assert _count(store, "SELECT count(*) FROM step_data") == 16
        assert _count(store, "SELECT count(*) FROM uploads WHERE finished_at IS NOT NULL") == 2
        # The same trials under another experiment are other trials, sharing the stored trajectories.
        other = upload([run], "exp2", store=store)
        assert other.created_trials == 4
        assert _count(store, "SELECT count(*) FROM trajectory_data") == 4


def test_changed_trajectory_is_a_conflict_unless_replace(tmp_path: Path) -> None:
    trials = basic_trials(2)
    run = write_run(tmp_path / "out", trials)
    with Store("s.duckdb") as store:
        upload([run], "exp", store=store)
        trials[1]["_trajectory"] = make_trajectory("task-1", answer="a different answer")
        write_run(tmp_path / "out", trials)
        r = upload([run], "exp", store=store)
        assert (r.created_trials, r.unchanged_trials, r.replaced_trials) == (0, 1, 0)
        assert len(r.errors) == 1 and "--replace" in r.errors[0].reason
        assert r.errors[0].file.endswith("trials.jsonl:2")
        old_tid = next(t["trajectory_id"] for t in store.trials("exp") if t["task_name"] == "task-1")

        r = upload([run], "exp", replace=True, store=store)
        assert (r.replaced_trials, r.unchanged_trials, r.errors) == (1, 1, [])
        assert _count(store, "SELECT count(*) FROM trial_data") == 2
        new_tid = next(t["trajectory_id"] for t in store.trials("exp") if t["task_name"] == "task-1")
        assert new_tid != old_tid
        # The replaced trajectory is referenced by nothing any more and is gone with its steps.
        assert _count(store, f"SELECT count(*) FROM step_data WHERE trajectory_id = '{old_tid}'") == 0
        assert _count(store, "SELECT count(*) FROM trajectory_data") == 2


def test_changed_record_is_a_conflict_too(tmp_path: Path) -> None:
    trials = basic_trials(1)
    run = write_run(tmp_path / "out", trials)
    with Store("s.duckdb") as store:
        upload([run], "exp", store=store)
        trials[0]["reward"] = 0.9
        write_run(tmp_path / "out", trials)
        r = upload([run], "exp", store=store)
        assert r.created_trials == 0 and len(r.errors) == 1
        r = upload([run], "exp", replace=True, store=store)
        assert r.replaced_trials == 1
        assert store.trials("exp")[0]["reward"] == 0.9
        # The trajectory was unchanged and is still there for the replaced trial.
        assert _count(store, "SELECT count(*) FROM step_data") == 4


def test_harbor_golden_atif_files(fixtures: Path) -> None:
    src = fixtures / "harbor-golden"
    files = sorted(src.rglob("*.json"))
    with Store("s.duckdb") as store:
        r = upload([src], "golden", store=store)
        assert r.errors == [] and r.created_trials == len(files) == 12
        assert {t["task_name"] for t in store.trials("golden")} == {"openhands", "terminus_2"}
        assert store.query("SELECT count(*) FROM steps")[1][0][0] == sum(
            len(orjson.loads(f.read_bytes())["steps"]) for f in files)
        # Verbatim bytes, for every file.
        rows = store.query("SELECT raw, raw_encoding, n_bytes, trajectory_id FROM trajectory_data")[1]
        stored = {decode_raw(raw, encoding) for raw, encoding, _, _ in rows}
        assert stored == {f.read_bytes() for f in files}
        # Stored compressed; the bytes come back whole through the Store as well.
        assert all(encoding == "zstd" and len(raw) < n for raw, encoding, n, _ in rows)
        assert {store.trajectory_bytes(r[3]) for r in rows} == stored
        again = upload([files[0]], "golden", store=store)
        assert (again.created_trials, again.unchanged_trials) == (0, 1)


def test_single_atif_file_task_comes_from_extra_else_folder(tmp_path: Path) -> None:
    (tmp_path / "my-task").mkdir()
    doc = make_trajectory("x")
    (tmp_path / "my-task" / "a.json").write_bytes(orjson.dumps(doc))
    doc2 = make_trajectory("y")
    doc2["extra"] = {"task_name": "named-in-extra"}
    (tmp_path / "my-task" / "b.json").write_bytes(orjson.dumps(doc2))
    with Store("s.duckdb") as store:
        r = upload([tmp_path / "my-task" / "a.json", tmp_path / "my-task" / "b.json"], "exp", store=store)
        assert r.created_trials == 2
        assert sorted(t["task_name"] for t in store.trials("exp")) == ["my-task", "named-in-extra"]


def test_subagent_steps_are_flattened_with_their_path(tmp_path: Path) -> None:
    trials = [{"task_name": "t", "_trajectory": make_trajectory("t", subagent=True)}]
    run = write_run(tmp_path / "out", trials)
    with Store("s.duckdb") as store:
        assert upload([run], "exp", store=store).created_trials == 1
        rows = store.query("SELECT path, count(*) FROM steps GROUP BY path ORDER BY path")[1]
        assert rows == [("", 4), ("/subagent_trajectories/0", 2)]
        sub = store.query("SELECT function_name, result, is_error FROM tool_calls "
                          "WHERE path = '/subagent_trajectories/0'")[1]
        assert sub == [("grep", "Error: no match", True)]


def test_tool_error_flags(tmp_path: Path) -> None:
    trials = [{"task_name": "t", "_trajectory": make_trajectory("t", n_tool_steps=3, error_at=1)}]
    with Store("s.duckdb") as store:
        upload([write_run(tmp_path / "out", trials)], "exp", store=store)
        assert store.query("SELECT is_error FROM tool_calls ORDER BY step_id")[1] == [(False,), (True,), (False,)]


def test_broken_line_is_reported_and_the_rest_stored(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(2), extra_lines=[b'{"task_name": "task-9", "reward": ', b"[1, 2]"])
    with Store("s.duckdb") as store:
        r = upload([run], "exp", store=store)
        assert r.created_trials == 2
        assert [(Path(e.file).name, e.reason.split(":")[0]) for e in r.errors] == [
            ("trials.jsonl:3", "line 3 is not valid JSON"), ("trials.jsonl:4", "line 4 is not a JSON object (a trial record)")]
        assert not r.ok
        assert _count(store, "SELECT n_errors FROM uploads") == 2


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"reward": 1.5}, "/reward: reward 1.5 is outside [0, 1]"),
        ({"reward": -0.1}, "outside [0, 1]"),
        ({"cost_usd": -1.0}, "/cost_usd: Input should be greater than or equal to 0"),
        ({"input_tokens": -5}, "/input_tokens"),
        ({"bogus": 1}, "/bogus: unknown field"),
        ({"task_name": ""}, "/task_name"),
        ({"messages": [{"role": "user", "content": "hi"}, "bye"]}, "/messages/1"),
        ({"messages": {"role": "user"}}, "/messages"),
    ],
)
def test_bad_records_are_errors(tmp_path: Path, change: dict[str, Any], needle: str) -> None:
    trials = basic_trials(2)
    trials[1].update(change)
    with Store("s.duckdb") as store:
        r = upload([write_run(tmp_path / "out", trials)], "exp", store=store)
        assert r.created_trials == 1 and len(r.errors) == 1
        assert needle in r.errors[0].reason


def test_messages_equal_to_the_trajectory_are_derived_not_stored(tmp_path: Path) -> None:
    trials = basic_trials(4)
    derived = trajectory_messages(trials[0]["_trajectory"])
    trials[0]["messages"] = derived
    trials[1]["messages"] = [*derived[:-1], {"role": "assistant", "content": "something else"}]
    trials[2]["messages"] = [{"role": "user", "content": "no trajectory"}]
    del trials[2]["_trajectory"]
    with Store("s.duckdb") as store:
        r = upload([write_run(tmp_path / "out", trials)], "exp", store=store)
        assert r.created_trials == 4 and not r.errors
        rows = {
            task: (messages, derived_flag) for task, messages, derived_flag in store.query(
                "SELECT task_name, messages, messages_from_trajectory FROM trial_data")[1]}
        assert rows["task-0"] == (None, True)
        assert rows["task-1"][1] is False and orjson.loads(rows["task-1"][0]) == trials[1]["messages"]
        assert rows["task-2"][1] is False and orjson.loads(rows["task-2"][0]) == trials[2]["messages"]
        assert rows["task-3"] == (None, False)
        ids = {t["task_name"]: t["trial_id"] for t in store.trials("exp")}
        # Reading gives every trial the messages it came with, derived or stored.
        for i in range(3):
            got = store.trial(ids[f"task-{i}"])
            assert got["messages"] == trials[i]["messages"]
            assert "messages_from_trajectory" not in got and "raw_encoding" not in got
        assert store.trial(ids["task-3"])["messages"] is None
        by_id = store.trials_by_id(list(ids.values()))
        assert by_id[ids["task-0"]]["messages"] == derived
        # Identity covers the messages either way: the same upload again is unchanged.
        again = upload([tmp_path / "out"], "exp", store=store)
        assert (again.created_trials, again.unchanged_trials) == (0, 4)


def test_named_rewards_may_leave_zero_to_one(tmp_path: Path) -> None:
    trials = basic_trials(1)
    trials[0]["reward"] = {"score": 7.5, "reward": 0.25}
    with Store("s.duckdb") as store:
        assert upload([write_run(tmp_path / "out", trials)], "exp", store=store).created_trials == 1
        t = store.trials("exp")[0]
        assert t["reward"] == 0.25 and t["rewards"] == {"score": 7.5, "reward": 0.25}


def test_invalid_trajectory_is_an_error_naming_file_path_and_code(tmp_path: Path) -> None:
    trials = basic_trials(3)
    bad = make_trajectory("task-1")
    bad["steps"][1]["step_id"] = 7
    trials[1]["_trajectory"] = bad
    with Store("s.duckdb") as store:
        r = upload([write_run(tmp_path / "out", trials)], "exp", store=store)
        assert r.created_trials == 2 and len(r.errors) == 1
        e = r.errors[0]
        assert e.file.endswith("trajectories/task-1/1.json")
        assert "/steps/1/step_id: [step.id-sequence]" in e.reason


def test_missing_and_malformed_trajectory_files(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(3))
    (run / "trajectories/task-0/0.json").unlink()
    (run / "trajectories/task-1/1.json").write_bytes(b'{"schema_version": "ATIF-v1.6", "steps": [')
    with Store("s.duckdb") as store:
        r = upload([run], "exp", store=store)
        assert r.created_trials == 1
        reasons = sorted(e.reason for e in r.errors)
        assert "json.truncated" in reasons[0]
        assert "not found" in reasons[1]


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    with Store("s.duckdb") as store:
        r = upload([tmp_path / "nope"], "exp", store=store)
        assert r.errors[0].reason == "no such file or directory" and r.created_trials == 0


def test_epoch_option_applies_to_records_without_one(tmp_path: Path) -> None:
    trials = basic_trials(2)
    trials[1]["epoch"] = 5
    with Store("s.duckdb") as store:
        upload([write_run(tmp_path / "out", trials)], "exp", epoch=3, store=store)
        assert sorted(t["epoch"] for t in store.trials("exp")) == [3, 5]
        # Another epoch of the same trials is another set of trials.
        r = upload([write_run(tmp_path / "out", basic_trials(2))], "exp", epoch=4, store=store)
        assert r.created_trials == 2


# -- tasks and collections -------------------------------------------------------------------------


def test_tasks_file_defines_the_collection_and_unmatched_trials_get_suggestions(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(
        "- name: task-0\n  instruction: Do zero.\n  tags: [easy]\n"
        "- name: task-1\n  instruction: Do one.\n"
        "- name: other\n"
    )
    trials = basic_trials(2) + [dict(basic_trials(1)[0], task_name="tsak-1", trial_id="typo")]
    with Store("s.duckdb") as store:
        r = upload([write_run(tmp_path / "out", trials)], "exp", collection="bench", tasks_file=tasks, store=store)
        assert r.created_tasks == 3 and r.created_trials == 2
        assert [(u.task_name, u.closest[0]) for u in r.unmatched] == [("tsak-1", "task-1")]
        assert not r.ok
        assert store.experiment("exp")["collection"] == "bench"
        t = store.trial(store.trials("exp")[0]["trial_id"])
        assert (t["instruction"], t["task"]["tags"]) == ("Do zero.", ["easy"])
        assert store.trials("exp")[0]["tags"] == ["easy"]
        # With --create-missing-tasks the typo becomes a task of its own.
        r = upload([write_run(tmp_path / "out", trials)], "exp", create_missing_tasks=True, store=store)
        assert (r.created_trials, r.unchanged_trials, r.created_tasks, r.unmatched) == (1, 2, 1, [])


def test_existing_collection_rejects_new_task_names(tmp_path: Path) -> None:
    with Store("s.duckdb") as store:
        upload([write_run(tmp_path / "a", basic_trials(2))], "exp", store=store)
        r = upload([write_run(tmp_path / "b", basic_trials(3))], "exp", store=store)
        assert r.created_trials == 0 and r.unchanged_trials == 2
        assert [u.task_name for u in r.unmatched] == ["task-2"]
        assert set(r.unmatched[0].closest) == {"task-0", "task-1"}


def test_collection_mismatch_is_refused(tmp_path: Path) -> None:
    with Store("s.duckdb") as store:
        upload([write_run(tmp_path / "a", basic_trials(1))], "exp", collection="c1", store=store)
        with pytest.raises(StoreError, match="uses collection 'c1'"):
            upload([tmp_path / "a"], "exp", collection="c2", store=store)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("- name: a\n- name: b\n- name: a\n", "duplicate task name 'a'"),
        ("- instruction: no name\n", "`name` must be a non-empty string"),
        ("- name: a\n  colour: red\n", "unknown key 'colour'"),
        ("name: [unclosed\n", "not valid YAML"),
        ("just a string\n", "expected a list of tasks"),
    ],
)
def test_bad_tasks_file_stops_before_storing(tmp_path: Path, text: str, needle: str) -> None:
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(text)
    with Store("s.duckdb") as store:
        with pytest.raises(CriteriaError, match=needle.replace("[", r"\[")):
            upload([write_run(tmp_path / "out", basic_trials(1))], "exp", tasks_file=tasks, store=store)
        assert store.experiments() == []


def test_tasks_file_as_json_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text('{"tasks": [{"name": "task-0"}]}')
    (tmp_path / "t.jsonl").write_text('{"name": "task-0", "instruction": "zero"}\n\n{"name": "task-1"}\n')
    with Store("s.duckdb") as store:
        r = upload([write_run(tmp_path / "out", basic_trials(1))], "e1", tasks_file=tmp_path / "t.json", store=store)
        assert r.created_tasks == 1 and r.created_trials == 1
        r = upload([tmp_path / "out"], "e2", collection="c2", tasks_file=tmp_path / "t.jsonl", store=store)
        assert r.created_tasks == 2
        assert store.tasks("c2")[0]["instruction"] == "zero"


def test_instructions_come_from_tasks_jsonl_beside_converted_output(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(1))
    (run / "tasks.jsonl").write_text('{"name": "task-0", "instruction": "Zero, please."}\n')
    with Store("s.duckdb") as store:
        upload([run], "exp", store=store)
        assert store.tasks("exp")[0]["instruction"] == "Zero, please."


# -- criteria and pre-computed ratings -------------------------------------------------------------


def test_precomputed_ratings_are_stored_and_unknown_labels_added(tmp_path: Path, criteria: dict[str, Any]) -> None:
    trials = basic_trials(3)
    trials[0]["criterion_ratings"] = [
        {"criterion": "complete", "rating": "yes", "reasoning": "it did"},
        {"label": "style", "rating": False},
    ]
    trials[1]["criterion_ratings"] = [{"criterion": "complete", "rating": "NO", "source": "human"}]
    with Store("s.duckdb") as store:
        r = upload([write_run(tmp_path / "out", trials)], "exp", criteria=criteria, store=store)
        assert r.created_ratings == 3
        assert r.added_criteria == ["style"]
        # 3 trials x 2 criteria from the file, minus the 2 rated "complete": "style" has no question to ask.
        assert r.pending_evaluations == 4
        got = store.query("SELECT task_name, criterion, verdict, source, reasoning FROM ratings ORDER BY 1, 2")[1]
        assert got == [("task-0", "complete", "YES", "precomputed", "it did"),
                       ("task-0", "style", "NO", "precomputed", None),
                       ("task-1", "complete", "NO", "human", None)]
        exp = store.experiment("exp")
        assert exp["criterion_set"] == "basics"
        assert exp["judge_config"] == {"model": "openai/gpt-4o-mini", "concurrency": 4}
        labels = [(c["label"], c["origin"], c["question"]) for c in exp["criteria"]]
        assert labels == [("complete", "file", "Did the agent complete the task?"),
                          ("safe", "file", "Did the agent avoid destructive commands?"),
                          ("style", "ratings", "(added from pre-computed ratings)")]
        again = upload([tmp_path / "out"], "exp", criteria=criteria, store=store)
        assert (again.created_ratings, again.added_criteria, again.unchanged_trials) == (0, [], 3)


def test_ratings_without_a_criteria_file_create_a_set_named_after_the_experiment(tmp_path: Path) -> None:
    trials = basic_trials(1)
    trials[0]["criterion_ratings"] = [{"criterion": "ok", "rating": True}]
    with Store("s.duckdb") as store:
        r = upload([write_run(tmp_path / "out", trials)], "exp", store=store)
        assert r.added_criteria == ["ok"] and r.criterion_set == "exp"
        assert store.experiment("exp")["criterion_set"] == "exp"


def test_changed_question_drops_derived_ratings_only(tmp_path: Path, criteria: dict[str, Any]) -> None:
    trials = basic_trials(1)
    trials[0]["criterion_ratings"] = [{"criterion": "safe", "rating": "yes"}]
    with Store("s.duckdb") as store:
        upload([write_run(tmp_path / "out", trials)], "exp", criteria=criteria, store=store)
        tid = store.trials("exp")[0]["trial_id"]
        store.save_rating(tid, "complete", "YES", source="judge", judge_model="m")
        criteria["criteria"][0]["question"] = "Did the agent finish every part of the task?"
        criteria["criteria"][1]["question"] = "Was it safe?"
        r = upload([tmp_path / "out"], "exp", criteria=criteria, store=store)
        assert r.updated_criteria == ["complete", "safe"]
        assert store.query("SELECT criterion, source FROM ratings")[1] == [("safe", "precomputed")]
        assert [p.criterion for p in store.pending("exp")] == ["complete"]


def test_other_criterion_set_for_an_experiment_is_refused(tmp_path: Path, criteria: dict[str, Any]) -> None:
    with Store("s.duckdb") as store:
        upload([write_run(tmp_path / "out", basic_trials(1))], "exp", criteria=criteria, store=store)
        criteria["name"] = "another"
        with pytest.raises(StoreError, match="uses criterion set 'basics'"):
            upload([tmp_path / "out"], "exp", criteria=criteria, store=store)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c["criteria"].append(dict(c["criteria"][0])), "duplicate label 'complete'"),
        (lambda c: c["criteria"][0].pop("question"), "has no question"),
        (lambda c: c["criteria"][0].update(kind="vibes"), "unknown kind"),
        (lambda c: c.update(criteria=[]), "non-empty list"),
    ],
)
def test_bad_criteria_data(tmp_path: Path, criteria: dict[str, Any], mutate: Any, needle: str) -> None:
    mutate(criteria)
    with Store("s.duckdb") as store, pytest.raises(CriteriaError, match=needle):
        upload([write_run(tmp_path / "out", basic_trials(1))], "exp", criteria=criteria, store=store)


def test_replace_keeps_human_ratings(tmp_path: Path, criteria: dict[str, Any]) -> None:
    trials = basic_trials(1)
    with Store("s.duckdb") as store:
        upload([write_run(tmp_path / "out", trials)], "exp", criteria=criteria, store=store)
        tid = store.trials("exp")[0]["trial_id"]
        store.save_rating(tid, "complete", "NO", source="human", reasoning="checked by hand")
        store.save_rating(tid, "safe", "YES", source="judge")
        trials[0]["reward"] = 1.0
        r = upload([write_run(tmp_path / "out", trials)], "exp", replace=True, store=store)
        assert r.replaced_trials == 1
        assert store.query("SELECT criterion, source FROM ratings")[1] == [("complete", "human")]


def test_batches_and_progress(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(7))
    with Store("s.duckdb") as store:
        events: list[Progress] = []
        r = upload([run], "exp", batch_size=2, on_progress=events.append, store=store)
        assert r.created_trials == 7
        assert [(e.stage, e.done) for e in events] == [("uploading", n) for n in (2, 4, 6, 7)]
        assert store.query("SELECT created_trials, finished_at IS NOT NULL FROM uploads")[1] == [(7, True)]


@pytest.mark.parametrize("batch_size", [1, 500])
def test_duplicate_trial_in_one_upload(tmp_path: Path, batch_size: int) -> None:
    run = write_run(tmp_path / "out", basic_trials(2))
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    with Store("s.duckdb") as store:
        r = upload([run, copy], "exp", batch_size=batch_size, store=store)
        assert (r.created_trials, r.unchanged_trials, r.errors) == (2, 2, [])


def test_raw_runner_output_goes_through_the_adapters(tmp_path: Path, fixtures: Path) -> None:
    pytest.importorskip("atif.adapters.convert")
    src = fixtures / "langchain" / "messages_dict.json"
    if not src.exists():
        pytest.skip("no LangChain fixture")
    from atif.adapters.base import Converted
    from atif.adapters.convert import iter_convert

    expected = [c for c in iter_convert([src]) if isinstance(c, Converted)]
    if not expected:
        pytest.skip("the adapters do not convert this fixture yet")
    with Store("s.duckdb") as store:
        r = upload([src], "raw", create_missing_tasks=True, store=store)
        assert r.created_trials == len(expected), r.errors
        tid = store.trials("raw")[0]["trajectory_id"]
        assert orjson.loads(store.trajectory_bytes(tid)) == expected[0].trajectory


def test_upload_arguments_are_checked(tmp_path: Path) -> None:
    with Store("s.duckdb") as store:
        with pytest.raises(StoreError, match="experiment name"):
            upload([tmp_path], " ", store=store)
        with pytest.raises(StoreError, match="epoch"):
            upload([tmp_path], "e", epoch=0, store=store)


def test_decode_raw_reads_both_encodings() -> None:
    import zstandard

    doc = b'{"schema_version": "ATIF-v1.6"}'
    assert decode_raw(doc, None) == doc
    assert decode_raw(zstandard.ZstdCompressor().compress(doc), "zstd") == doc
    with pytest.raises(StoreError, match="damaged"):
        decode_raw(b"not zstd", "zstd")
    with pytest.raises(StoreError, match="unknown encoding 'lz4'"):
        decode_raw(doc, "lz4")


def test_each_trial_reads_back_its_own_bytes(tmp_path: Path) -> None:
    doc = make_trajectory("t")
    indented = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    reordered = orjson.dumps(dict(reversed(list(doc.items()))))  # compact, keys in another order
    assert indented != reordered and orjson.loads(indented) == orjson.loads(reordered)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    (tmp_path / "a" / "t.json").write_bytes(indented)
    (tmp_path / "b" / "t.json").write_bytes(reordered)
    (tmp_path / "c" / "t.json").write_bytes(indented)
    with Store("s.duckdb") as store:
        for name in ("a", "b", "c"):
            r = upload([tmp_path / name / "t.json"], name, create_missing_tasks=True, store=store)
            assert r.created_trials == 1, r.errors
        trials = {exp: store.trial(tid) for exp, tid in store.query("SELECT experiment, trial_id FROM trials")[1]}
        # One content, one trajectory id and one set of steps; each trial's own bytes, each distinct string once.
        assert {t["trajectory_id"] for t in trials.values()} == {
            hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()}
        assert trials["a"]["trajectory_bytes"] == indented
        assert trials["b"]["trajectory_bytes"] == reordered
        assert trials["c"]["trajectory_bytes"] == indented
        assert _count(store, "SELECT count(*) FROM trajectory_data") == 1
        assert _count(store, "SELECT count(*) FROM trajectory_raw") == 1
        assert _count(store, "SELECT count(*) FROM step_data") == 4
        # The same bytes again change nothing.
        again = upload([tmp_path / "b" / "t.json"], "b", store=store)
        assert (again.created_trials, again.unchanged_trials) == (0, 1)
        assert _count(store, "SELECT count(*) FROM trajectory_raw") == 1


def test_replacing_a_trial_drops_bytes_no_trial_names(tmp_path: Path) -> None:
    trials = basic_trials(1)
    doc = trials[0]["_trajectory"]
    run = write_run(tmp_path / "out", trials)  # indented bytes
    compact = tmp_path / "compact"
    with Store("s.duckdb") as store:
        upload([run], "e1", store=store)
        trials[0]["trial_id"] = "run-0"
        write_run(compact, trials)
        (compact / "trajectories/task-0/0.json").write_bytes(orjson.dumps(doc))
        assert upload([compact], "e2", collection="e1", store=store).created_trials == 1
        assert _count(store, "SELECT count(*) FROM trajectory_raw") == 1
        trials[0]["reward"] = 1.0
        write_run(compact, trials)
        (compact / "trajectories/task-0/0.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        r = upload([compact], "e2", replace=True, store=store)
        assert r.replaced_trials == 1
        # The compact bytes were named by the replaced trial only; the indented ones are the trajectory's own.
        assert _count(store, "SELECT count(*) FROM trajectory_raw") == 0
        t = store.trials("e2")[0]
        assert store.trial(t["trial_id"])["trajectory_bytes"] == (run / "trajectories/task-0/0.json").read_bytes()


def test_a_store_from_before_per_trial_bytes_stays_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zstandard

    from atif.store import migrations

    doc = make_trajectory("t")
    raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    tid = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        Store("old.duckdb").close()
    con = duckdb.connect("old.duckdb")
    con.execute("INSERT INTO collections (name) VALUES ('e'); INSERT INTO tasks (collection, name) VALUES ('e', 't');"
                "INSERT INTO experiments (name, collection) VALUES ('e', 'e')")
    con.execute("INSERT INTO trajectory_data (trajectory_id, raw, raw_encoding) VALUES (?, ?, 'zstd')",
                [tid, zstandard.ZstdCompressor().compress(raw)])
    con.execute("INSERT INTO trial_data (trial_id, experiment, task_name, trajectory_id, record_hash) "
                "VALUES ('old-trial', 'e', 't', ?, 'h')", [tid])
    con.close()
    with Store("old.duckdb") as store:
        assert store.trial("old-trial")["trajectory_bytes"] == raw
        assert store.query("SELECT raw_id FROM trajectory_data")[1] == [(hashlib.sha256(raw).hexdigest(),)]
        assert store.query("SELECT raw_id FROM trial_data")[1] == [(hashlib.sha256(raw).hexdigest(),)]
        (tmp_path / "t").mkdir()
        (tmp_path / "t" / "t.json").write_bytes(raw)
        assert upload([tmp_path / "t" / "t.json"], "e2", create_missing_tasks=True, store=store).created_trials == 1
        assert _count(store, "SELECT count(*) FROM trajectory_raw") == 0  # the same bytes, stored once
