"""The stored rows and ids of an upload are pinned: a faster upload must store exactly what it stored.

The digest below was taken with the upload as it was before its speed-ups; any change to a
trial id, trajectory id, raw id, record hash, stored byte string or flattened row changes it.
The corpus is the benches' (:mod:`bench.corpus`), built from the real Harbor trajectories under
``fixtures/`` with a fixed seed, plus Harbor's golden ATIF files uploaded as files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from atif import upload
from atif.store import Store, decode_raw
from bench.corpus import generate

# Named columns only: columns added later do not move the pin.
PINNED = {
    "trial_data": "SELECT trial_id, experiment, task_name, epoch, source_trial_id, trajectory_id, raw_id, record_hash, "
                  "reward, rewards, steps, cost_usd, duration_seconds, input_tokens, output_tokens, cached_tokens, "
                  "error, metadata, messages, messages_from_trajectory, input_key, input_file, input_file_key "
                  "FROM trial_data ORDER BY trial_id",
    "trajectory_data": "SELECT trajectory_id, raw_id, raw, raw_encoding, schema_version, agent_name, agent_version, "
                       "model_name, step_count, n_bytes FROM trajectory_data ORDER BY trajectory_id",
    "trajectory_raw": "SELECT raw_id, trajectory_id, raw, raw_encoding, n_bytes FROM trajectory_raw ORDER BY raw_id",
    "step_data": "SELECT trajectory_id, path, step_id, source, timestamp, ts, model_name, message_chars, "
                 "reasoning_chars, tool_call_count, prompt_tokens, completion_tokens, cached_tokens, cost_usd, "
                 "is_copied_context FROM step_data ORDER BY ALL",
    "tool_call_data": "SELECT trajectory_id, path, step_id, call_index, tool_call_id, function_name, arguments, "
                      "result, is_error FROM tool_call_data ORDER BY ALL",
    "tasks": "SELECT collection, name, instruction FROM tasks ORDER BY ALL",
}
DIGEST = "08e28f7e1732272f92fba60e455a60969ba30ebf7f4247ab34e68b6741826ee9"


def _digest(store: Store) -> str:
    h = hashlib.sha256()
    for table, sql in PINNED.items():
        cols, rows = store.query(sql)
        h.update(table.encode())
        for row in rows:
            values: list[Any] = list(row)
            if "raw" in cols:  # compressed frames may differ by zstd version: pin the bytes they hold
                i = cols.index("raw")
                values[i] = hashlib.sha256(decode_raw(values[i], values[cols.index("raw_encoding")])).hexdigest()
            h.update(orjson.dumps(values, default=str))
    return h.hexdigest()


@pytest.mark.parametrize("workers", [1, 2])
def test_stored_rows_and_ids_are_those_of_the_reference_upload(
    tmp_path: Path, fixtures: Path, workers: int
) -> None:
    run = tmp_path / "run"
    generate(run, 240)  # more than one block of lines: with 2 workers, the workers read them
    with Store(tmp_path / "s.duckdb") as store:
        first = upload([run], "pin", store=store, workers=workers, batch_size=100)
        golden = upload([fixtures / "harbor-golden"], "golden", store=store, workers=workers)
        assert first.created_trials == 240 and golden.created_trials == 12
        assert not first.errors and not golden.errors
        assert _digest(store) == DIGEST
        again = upload([run], "pin", store=store, workers=workers, batch_size=100)
        assert (again.created_trials, again.unchanged_trials) == (0, 240)
        assert _digest(store) == DIGEST
