"""Racing writers on one team store, as separate processes: no trial twice, no byte changed, no batch lost."""

from __future__ import annotations

import signal
import subprocess
import time

from team_builders import child_env, trial_bytes, writer_args

from atif.store import Store, migrations

N_EACH = 2000
N_SHARED = 1000


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())


def _finish(p: subprocess.Popen[str], timeout: float = 900) -> str:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-2000:]
    return out


def test_racing_writers_leave_each_trial_once_with_its_bytes(team_db) -> None:
    # The catalog exists before the race (its creation racing is another test's subject).
    Store(team_db.target, data_path=team_db.data_path).close()
    procs = [_spawn(writer_args(team_db.target, team_db.data_path, "exp", f"w{k}", 0, N_EACH)) for k in range(4)]
    procs += [_spawn(writer_args(team_db.target, team_db.data_path, "exp", "shared", 0, N_SHARED)) for _ in range(2)]
    results = [_finish(p).split("RESULT ")[1].split() for p in procs]
    for created, unchanged, errors in results[:4]:
        assert (int(created), int(unchanged), int(errors)) == (N_EACH, 0, 0)
    shared = [(int(c), int(u), int(e)) for c, u, e in results[4:]]
    # Between them the two shared writers created each trial once; the rest they found stored.
    assert sum(c for c, _, _ in shared) == N_SHARED
    assert all(c + u == N_SHARED and e == 0 for c, u, e in shared)

    with Store.open(team_db.target, read_only=True, data_path=team_db.data_path) as store:
        total = 4 * N_EACH + N_SHARED
        for table, key in (("trial_data", "trial_id"), ("trajectory_data", "trajectory_id"),
                           ("tasks", "collection, name"), ("experiments", "name"), ("collections", "name")):
            n, distinct = store.read_one(f"SELECT count(*), count(DISTINCT ({key})) FROM {table}")
            assert n == distinct, f"{table} has rows twice"
        assert store.read_one("SELECT count(*) FROM trials") == (total,)
        assert store.read_one("SELECT count(*) FROM experiments") == (1,)
        # Steps were written once per trajectory, whichever writer won.
        assert store.read_one(
            "SELECT count(*) FROM (SELECT trajectory_id, path, step_id FROM step_data GROUP BY ALL HAVING count(*) > 1)"
        ) == (0,)
        rows = store.read("SELECT trial_id, source_trial_id FROM trials")
        by_id = {}
        ids = [r["trial_id"] for r in rows]
        for i in range(0, len(ids), 1000):
            by_id.update(store.trials_by_id(ids[i : i + 1000]))
        for r in rows:
            prefix, _, n = r["source_trial_id"].rpartition("-run-")
            assert by_id[r["trial_id"]]["trajectory_bytes"] == trial_bytes(prefix, int(n))


def test_kill_9_of_one_writer_leaves_the_others_and_a_rerun_completes(team_db) -> None:
    Store(team_db.target, data_path=team_db.data_path).close()
    victim = _spawn(writer_args(team_db.target, team_db.data_path, "exp", "victim", 0, 600, batch_size=50))
    others = [_spawn(writer_args(team_db.target, team_db.data_path, "exp", f"o{k}", 0, 400, batch_size=50))
              for k in range(2)]
    # Kill the victim once some of its batches are in.
    deadline = time.monotonic() + 300
    with Store.open(team_db.target, read_only=True, data_path=team_db.data_path) as store:
        while time.monotonic() < deadline:
            n = store.read_one("SELECT count(*) FROM trial_data WHERE source_trial_id LIKE 'victim-%'")[0]
            if n >= 100 or victim.poll() is not None:
                break
            time.sleep(0.2)
    assert victim.poll() is None, "the victim finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    for p in others:
        _finish(p)
    rerun = _finish(_spawn(writer_args(team_db.target, team_db.data_path, "exp", "victim", 0, 600, batch_size=50)))
    created, unchanged, errors = (int(x) for x in rerun.split("RESULT ")[1].split())
    assert errors == 0 and created + unchanged == 600 and unchanged >= 100
    with Store.open(team_db.target, read_only=True, data_path=team_db.data_path) as store:
        assert store.read_one("SELECT count(*), count(DISTINCT trial_id) FROM trial_data") == (1400, 1400)
        assert store.read_one("SELECT count(*), count(DISTINCT trajectory_id) FROM trajectory_data") == (1400, 1400)


OPEN = "import sys\nfrom atif.store import Store\nStore(sys.argv[1], data_path=sys.argv[2]).close()\nprint('OPENED')"


def test_processes_creating_the_catalog_at_once_create_it_once(team_db) -> None:
    import sys

    procs = [_spawn([sys.executable, "-c", OPEN, team_db.target, str(team_db.data_path)]) for _ in range(3)]
    for p in procs:
        assert "OPENED" in _finish(p, timeout=300)
    with Store.open(team_db.target, read_only=True, data_path=team_db.data_path) as store:
        assert store.read("SELECT id, name FROM _atif_migrations ORDER BY id") == [
            {"id": i, "name": m.__name__} for i, m in enumerate(migrations.MIGRATIONS, start=1)]
        assert store.read_one("SELECT count(*) FROM _atif_lock") == (1,)
        assert store.read_one("SELECT count(*) FROM information_schema.tables "
                              "WHERE table_catalog = current_database() AND table_name = 'trial_data'") == (1,)


def test_a_trial_stored_by_a_racing_writer_is_unchanged_or_a_conflict(team_db, monkeypatch) -> None:
    from team_builders import converted

    from atif.store import ingest

    prepare = ingest.Ingest._prepare
    raced = []

    def prepare_then_race(self, batch):
        prepared = prepare(self, batch)
        if not raced:
            raced.append(1)
            # Between this batch's checks and its commit, another writer stores two of its trials:
            # one with the same record, one with another reward.
            rival_items = converted("t", 0, 2)
            rival_items[1].trial.reward = 0.25
            with Store(team_db.target, data_path=team_db.data_path) as rival:
                rival.ingest(rival_items, "exp", create_missing_tasks=True)
        return prepared

    Store(team_db.target, data_path=team_db.data_path).close()
    monkeypatch.setattr(ingest.Ingest, "_prepare", prepare_then_race)
    with Store(team_db.target, data_path=team_db.data_path) as store:
        result = store.ingest(converted("t", 0, 3), "exp", create_missing_tasks=True)
        assert (result.created_trials, result.unchanged_trials) == (1, 1)
        assert len(result.errors) == 1
        assert "'t-1'" in result.errors[0].file and "another upload stored this trial at the same time" in \
            result.errors[0].reason
        assert store.read_one("SELECT count(*), count(DISTINCT trial_id) FROM trial_data") == (3, 3)
        assert store.read_one("SELECT reward FROM trials WHERE task_name = 't-1'") == (0.25,)
