"""A varied store for pinning compare and gate: the benchmark's generator, then every pairing case.

``make(path)`` writes 2 x 2,000 trials with the benchmark's shapes (64-hex ids, 5 criteria, 1%
UNSCORED), then makes it awkward: some tasks have several trials of one epoch (paired in
trial-id order, one side longer than the other), some trials have no partner, some rewards,
costs and durations are NULL, and some ratings are missing on one side.

``python tests/report/compare_store.py`` rewrites ``data/compare_golden.json``, the results the
pinning test holds ``compare`` and ``gate`` to.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "data" / "compare_golden.json"
N = 2000


def make(path: Path) -> None:
    """Write the varied store at ``path``."""
    sys.path.insert(0, str(ROOT))
    from atif.store.keys import trial_key_sql
    from bench.report_bench import generate

    generate(path, N)
    con = duckdb.connect(str(path))
    con.execute(f"""
        -- several trials of one task and epoch: copies of 40 trials on side a, 25 on side b (others overlap)
        INSERT INTO trial_data (trial_id, trial_key, experiment, task_name, epoch, source_trial_id, trajectory_id,
                                reward, cost_usd, duration_seconds, record_hash)
        SELECT sha256('dup' || trial_id || i), {trial_key_sql("sha256('dup' || trial_id || i)")}, experiment, task_name, epoch, source_trial_id || '-dup' || i,
               trajectory_id, round(reward * 0.9 + 0.01 * i, 3), cost_usd + 0.001 * i, duration_seconds + i,
               sha256('rdup' || trial_id || i)
        FROM trial_data, range(1, 3) r(i)
        WHERE (experiment = 'bench-a' AND hash(trial_id) % 50 = 0)
           OR (experiment = 'bench-b' AND hash(trial_id) % 80 = 0 AND i = 1);
        INSERT INTO rating_data (trial_id, trial_key, criterion, verdict, source)
        SELECT sha256('dup' || t.trial_id || i), {trial_key_sql("sha256('dup' || t.trial_id || i)")}, r.criterion,
               CASE WHEN hash(t.trial_id, r.criterion, i) % 3 = 0 THEN 'NO' ELSE r.verdict END, 'judge'
        FROM trial_data t JOIN rating_data r USING (trial_id), range(1, 3) x(i)
        WHERE ((t.experiment = 'bench-a' AND hash(t.trial_id) % 50 = 0)
           OR (t.experiment = 'bench-b' AND hash(t.trial_id) % 80 = 0 AND i = 1))
          AND hash(t.trial_id, r.criterion) % 7 <> 0;
        -- trials without a partner
        DELETE FROM rating_data WHERE trial_id IN (SELECT trial_id FROM trial_data WHERE hash(trial_id) % 61 = 3);
        DELETE FROM trial_data WHERE hash(trial_id) % 61 = 3;
        -- missing values and missing ratings
        UPDATE trial_data SET reward = NULL WHERE hash(trial_id) % 37 = 1;
        UPDATE trial_data SET cost_usd = NULL WHERE hash(trial_id) % 41 = 2;
        UPDATE trial_data SET duration_seconds = NULL WHERE hash(trial_id) % 43 = 5;
        DELETE FROM rating_data WHERE hash(trial_id, criterion) % 29 = 4;
        -- a criterion rated on one side only
        INSERT INTO rating_data (trial_id, trial_key, criterion, verdict, source)
        SELECT trial_id, trial_key, 'only-b', CASE WHEN hash(trial_id) % 2 = 0 THEN 'YES' ELSE 'NO' END, 'judge'
        FROM trial_data WHERE experiment = 'bench-b' AND hash(trial_id) % 5 = 0;
    """)
    con.close()


def digest(value: Any) -> str:
    """sha256 of ``value``'s sorted-key JSON: the long per-pair lists are pinned by it."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def pinned(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` of compare with its per-pair lists replaced by their digest and first three entries."""
    out = dict(result)
    for key in ("tasks", "unpaired"):
        out[key] = {kind: {"sha256": digest(items), "n": len(items), "head": items[:3]}
                    for kind, items in result[key].items()}
    return out


def results(path: Path) -> dict[str, Any]:
    """compare and gate on the store at ``path``: the figures the pinning test holds fixed."""
    from atif.report import compare, gate
    from atif.store import Store

    with Store.open(path, read_only=True) as store:
        out: dict[str, Any] = {}
        for seed in (0, 7):
            out[f"compare_seed{seed}"] = pinned(compare(store, "bench-a", "bench-b", seed=seed, max_listed=None))
        out["compare_alpha01"] = pinned(compare(store, "bench-a", "bench-b", alpha=0.01, max_listed=None))
        for ignore in (False, True):
            g = gate(store, "bench-b", min_pass={"*": 0.5}, baseline="bench-a", ignore_unscored=ignore)
            out[f"gate_ignore{ignore}"] = g.to_dict()
        out["gate_reverse"] = gate(store, "bench-a", baseline="bench-b", max_regression=0.0, alpha=0.5).to_dict()
        return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "compare.duckdb"
        make(db)
        GOLDEN.write_text(json.dumps(results(db), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
