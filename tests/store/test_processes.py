"""Real second processes: the write lock, and kill -9 in the middle of an upload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from store_builders import basic_trials, subprocess_env, write_run

from atif import upload
from atif.errors import StoreLockedError
from atif.store import Store

HOLD = textwrap.dedent(
    """
    import sys, time
    from atif.store import Store
    store = Store(sys.argv[1])
    print("READY", flush=True)
    time.sleep(60)
    """
)

# Runs an upload whose third batch stops after its trials are inserted but before the commit.
STALL = textwrap.dedent(
    """
    import sys, time
    from atif import upload
    from atif.store import writer

    insert = writer.insert
    seen = {"trial_batches": 0}

    def stalling_insert(db, table, columns, derived=None, where=""):
        n = insert(db, table, columns, derived, where)
        if table == "trial_data":
            seen["trial_batches"] += 1
            if seen["trial_batches"] == 3:
                print("STALLED", flush=True)
                time.sleep(60)
        return n

    writer.insert = stalling_insert
    upload([sys.argv[2]], "exp", batch_size=4, store=sys.argv[1])
    print("FINISHED", flush=True)
    """
)


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(),
    )


def _wait_for(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if marker in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.stderr.read() if proc.stderr else ''}")
    raise AssertionError(f"no {marker!r} from the child within {timeout} s")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_second_writer_gets_a_one_line_lock_error(tmp_path: Path) -> None:
    db = tmp_path / "locked.duckdb"
    holder = _spawn(HOLD, str(db))
    try:
        _wait_for(holder, "READY")
        with pytest.raises(StoreLockedError) as info:
            Store(db)
        msg = str(info.value)
        assert str(db) in msg and f"PID {holder.pid}" in msg and "\n" not in msg
        with pytest.raises(StoreLockedError):
            Store.open(db, read_only=True)

        cli = subprocess.run(
            [sys.executable, "-c", "from atif.cli import main; main()", "upload", str(tmp_path), "-e", "x",
             "--db", str(db)],
            capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path, timeout=120, check=False,
        )
        assert cli.returncode == 1
        assert cli.stderr.strip().count("\n") == 0
        assert cli.stderr.startswith("Error: ") and "is in use by another process" in cli.stderr
        assert "Traceback" not in cli.stderr
    finally:
        _stop(holder)
    with Store(db) as store:  # free again once the holder is gone
        assert store.experiments() == []


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_kill_9_mid_upload_leaves_whole_batches_and_a_rerun_completes(tmp_path: Path) -> None:
    run = write_run(tmp_path / "out", basic_trials(14))
    db = tmp_path / "k.duckdb"
    child = _spawn(STALL, str(db), str(run))
    try:
        _wait_for(child, "STALLED")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        _stop(child)
    assert child.returncode == -signal.SIGKILL

    with Store(db) as store:
        counts = store.query(
            "SELECT (SELECT count(*) FROM trial_data), (SELECT count(*) FROM trajectory_data), "
            "(SELECT count(*) FROM step_data), (SELECT count(*) FROM tool_call_data), "
            "(SELECT count(*) FROM tasks)")[1][0]
        # Two committed batches of 4; nothing of the third.
        assert counts == (8, 8, 32, 16, 8)
        assert store.query("SELECT created_trials, finished_at FROM uploads")[1] == [(8, None)]

        r = upload([run], "exp", batch_size=4, store=store)
        assert (r.created_trials, r.unchanged_trials, r.errors, r.unmatched) == (6, 8, [], [])
        assert store.query("SELECT count(*), count(DISTINCT task_name) FROM trial_data")[1] == [(14, 14)]
        assert store.query("SELECT count(*) FROM step_data")[1] == [(56,)]


HOLD_FOR = textwrap.dedent(
    """
    import sys, time
    from atif.store import Store
    store = Store(sys.argv[1])
    print("READY", flush=True)
    time.sleep(float(sys.argv[2]))
    store.close()
    print("RELEASED", flush=True)
    time.sleep(60)
    """
)


def _query(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from atif.cli import main; main()", "query", "SELECT count(*) AS n FROM trials",
         "--format", "json", "--db", str(db), *args],
        capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False,
    )


def test_a_read_during_a_write_waits_then_says_who_holds_the_store(tmp_path: Path) -> None:
    db = tmp_path / "busy.duckdb"
    Store(db).close()
    holder = _spawn(HOLD, str(db))
    try:
        _wait_for(holder, "READY")
        t0 = time.monotonic()
        q = _query(db, "--wait", "1.5")
        waited = time.monotonic() - t0
        assert q.returncode == 1 and q.stdout == ""
        assert waited >= 1.5
        [line] = q.stderr.splitlines()
        assert line.startswith(f"Error: {db} is being written by another process (PID {holder.pid})")
        assert "reads wait for it to finish: waited 1.5 s (--wait SECONDS waits longer)" in line
        assert "team store" in line and "one writer at a time" not in line
    finally:
        _stop(holder)


def test_a_read_waits_for_the_writer_to_finish(tmp_path: Path) -> None:
    db = tmp_path / "busy.duckdb"
    Store(db).close()
    holder = _spawn(HOLD_FOR, str(db), "1.5")
    try:
        _wait_for(holder, "READY")
        q = _query(db, "--wait", "30")
        assert q.returncode == 0, q.stderr
        assert q.stdout.strip().replace(" ", "").replace("\n", "") == '[{"n":0}]'
    finally:
        _stop(holder)
