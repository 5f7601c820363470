"""Re-uploading: trials-file lines stored before are recognised by their bytes, not parsed again."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from store_builders import basic_trials, write_run

from atif import upload
from atif.adapters import sources
from atif.store import Store

STORED = ("SELECT trial_id, trajectory_id, raw_id, record_hash, task_name, epoch, reward, messages "
          "FROM trial_data ORDER BY trial_id")


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []
    real = sources._trial_line

    def counting(line: bytes, where: str, *args: Any, **kwargs: Any) -> Any:
        parsed.append(where.rsplit(":", 1)[1])
        return real(line, where, *args, **kwargs)

    monkeypatch.setattr(sources, "_trial_line", counting)
    return parsed


def test_unchanged_lines_are_not_parsed_and_the_store_is_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = write_run(tmp_path / "out", basic_trials(5))
    with Store("s.duckdb") as store:
        first = upload([run], "exp", store=store, batch_size=2)
        before = store.query(STORED)[1]
        parsed = _count_parses(monkeypatch)
        again = upload([run], "exp", store=store, batch_size=2)
        assert parsed == []
        assert (again.created_trials, again.unchanged_trials, again.errors) == (0, 5, [])
        assert again.ok and first.created_trials == 5
        assert store.query(STORED)[1] == before
        # Another experiment stores its own trials: nothing is recognised there.
        other = upload([run], "exp2", store=store)
        assert other.created_trials == 5 and parsed == ["1", "2", "3", "4", "5"]


def test_a_changed_trajectory_file_or_line_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = write_run(tmp_path / "out", basic_trials(3))
    with Store("s.duckdb") as store:
        upload([run], "exp", store=store)
        # Same content, other bytes (re-indented): unchanged, but found so by parsing it.
        f = run / "trajectories/task-1/1.json"
        f.write_bytes(orjson.dumps(orjson.loads(f.read_bytes())))
        lines = (run / "trials.jsonl").read_bytes().splitlines()
        rec = orjson.loads(lines[2])
        rec["reward"] = 0.25
        lines[2] = orjson.dumps(rec)
        (run / "trials.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        parsed = _count_parses(monkeypatch)
        r = upload([run], "exp", store=store)
        assert parsed == ["2", "3"]
        assert r.unchanged_trials == 2  # line 1, and line 2 whose file only changed its bytes
        assert len(r.errors) == 1 and "already stored with a different trajectory or record" in r.errors[0].reason
        r = upload([run], "exp", store=store, replace=True)
        assert (r.replaced_trials, r.unchanged_trials) == (1, 2)
        assert store.query("SELECT reward FROM trial_data WHERE task_name = 'task-2'")[1] == [(0.25,)]
        # Recognised again from the new bytes, the trial reads back the bytes it was uploaded with.
        parsed.clear()
        assert upload([run], "exp", store=store).unchanged_trials == 3
        assert parsed == ["2"]  # the re-indented file: its line was stored unchanged, with the old bytes' key
        tid = store.trials("exp")[1]["trial_id"]
        assert store.trial(tid)["trajectory_bytes"] != f.read_bytes()  # the first upload's bytes stay


def test_a_deleted_trajectory_file_is_reported_as_before(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(2))
    with Store("s.duckdb") as store:
        upload([run], "exp", store=store)
        (run / "trajectories/task-0/0.json").unlink()
        r = upload([run], "exp", store=store)
        assert r.unchanged_trials == 1
        assert len(r.errors) == 1 and "not found" in r.errors[0].reason


def test_epoch_option_is_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = write_run(tmp_path / "out", basic_trials(2))
    with Store("s.duckdb") as store:
        upload([run], "exp", store=store, epoch=2)
        parsed = _count_parses(monkeypatch)
        r = upload([run], "exp", store=store, epoch=3)
        assert parsed == ["1", "2"] and r.created_trials == 2  # other epoch: other trials
        parsed.clear()
        assert upload([run], "exp", store=store, epoch=3).unchanged_trials == 2
        assert parsed == []


def test_lines_with_warnings_are_always_read_so_the_warnings_come_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dup = b'{"task_name": "task-9", "task_name": "task-9", "reward": 1.0}'
    run = write_run(tmp_path / "out", basic_trials(1), extra_lines=[dup])
    with Store("s.duckdb") as store:
        first = upload([run], "exp", store=store)
        parsed = _count_parses(monkeypatch)
        again = upload([run], "exp", store=store)
        assert parsed == ["2"]
        assert again.unchanged_trials == 2
        assert [w.reason for w in again.warnings] == [w.reason for w in first.warnings]
        assert any("json.duplicate-key" in w.reason for w in again.warnings)


def test_a_re_upload_of_unchanged_trials_does_not_load_pyarrow(tmp_path: Path) -> None:
    """Writing nothing, it needs no Arrow tables: the process skips pyarrow's import (a quarter second)."""
    import subprocess
    import sys

    run = write_run(tmp_path / "out", basic_trials(3))
    script = ("import sys\nfrom atif.cli import main\ncode = 0\ntry:\n    main()\nexcept SystemExit as e:\n"
              "    code = e.code\nprint('exit', code or 0, 'pyarrow' in sys.modules)\n")
    args = ["upload", str(run), "-e", "exp", "--db", str(tmp_path / "s.duckdb"), "--format", "json"]
    outs = [subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=False)
            for _ in range(2)]
    assert outs[0].stdout.strip().splitlines()[-1] == "exit 0 True", outs[0].stderr  # the first upload writes
    assert outs[1].stdout.strip().splitlines()[-1] == "exit 0 False", outs[1].stderr
    assert orjson.loads(outs[1].stdout.strip().rsplit("\n", 1)[0])["unchanged_trials"] == 3


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Trajectory files read (whole) from now on."""
    read: list[str] = []
    real = sources.read_file

    def counting(path: Any, **kwargs: Any) -> bytes:
        if str(path).endswith(".json") and kwargs.get("head") is None:
            read.append(Path(path).name)
        return real(path, **kwargs)

    monkeypatch.setattr(sources, "read_file", counting)
    return read


def test_settled_trajectory_files_are_known_by_their_stat_without_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "SETTLED_NS", 0)  # the files were written moments ago
    run = write_run(tmp_path / "out", basic_trials(3))
    with Store("s.duckdb") as store:
        upload([run], "exp", store=store)
        stats = [r[0] for r in store.query("SELECT input_file_stat FROM trial_data ORDER BY task_name")[1]]
        assert all(s is not None and s.count(":") == 4 for s in stats)
        read = _count_reads(monkeypatch)
        assert upload([run], "exp", store=store).unchanged_trials == 3
        assert read == []
        # Written again with the same bytes: its ctime moved, so it is read and hashed (and still unchanged).
        f = run / "trajectories/task-1/1.json"
        time.sleep(0.05)  # past the file system's timestamp granularity
        f.write_bytes(f.read_bytes())
        read.clear()
        assert upload([run], "exp", store=store).unchanged_trials == 3
        assert read == ["1.json"]
        # Other bytes of the same size with the old mtime put back: ctime still tells, and the change is found.
        g = run / "trajectories/task-2/2.json"
        old = g.stat()
        data = g.read_bytes()
        time.sleep(0.05)
        g.write_bytes(data.replace(b"Please", b"Pleese", 1))
        os.utime(g, ns=(old.st_atime_ns, old.st_mtime_ns))
        assert g.stat().st_size == old.st_size and g.stat().st_mtime_ns == old.st_mtime_ns
        read.clear()
        r = upload([run], "exp", store=store)
        assert "2.json" in read
        assert r.unchanged_trials == 2 and len(r.errors) == 1
        assert "already stored with a different trajectory" in r.errors[0].reason


def test_a_file_changed_moments_before_its_upload_gets_no_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within SETTLED_NS of a change, a later change could share its timestamps: such files are always hashed."""
    run = write_run(tmp_path / "out", basic_trials(2))
    with Store("s.duckdb") as store:
        upload([run], "exp", store=store)
        assert store.query("SELECT count(*) FROM trial_data WHERE input_file_stat IS NOT NULL")[1] == [(0,)]
        read = _count_reads(monkeypatch)
        assert upload([run], "exp", store=store).unchanged_trials == 2
        assert sorted(read) == ["0.json", "1.json"]
