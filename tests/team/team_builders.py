"""Inputs for the team-store tests: many distinct trials built in memory, and a writer process script."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson

from atif.trial import Converted, Trial

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [p for p in (str(HERE), str(HERE.parent / "store")) if p not in sys.path]

from store_builders import CRITERIA, basic_trials, make_trajectory, write_run  # noqa: E402

__all__ = ["CRITERIA", "basic_trials", "child_env", "converted", "make_trajectory", "trial_bytes", "write_run",
           "writer_args"]


def trial_bytes(prefix: str, i: int) -> bytes:
    """The trajectory bytes of trial ``i`` (indented: not the canonical JSON, so bytes are checked, not content)."""
    doc = make_trajectory(f"{prefix}-{i}", answer=f"answer {prefix} {i}", n_tool_steps=1 + i % 3)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def converted(prefix: str, start: int, stop: int) -> list[Converted]:
    """Trials ``prefix-start`` ... ``prefix-(stop-1)``, each with its own trajectory and raw bytes."""
    out = []
    for i in range(start, stop):
        raw = trial_bytes(prefix, i)
        doc = orjson.loads(raw)
        trial = Trial(task_name=f"{prefix}-{i}", trial_id=f"{prefix}-run-{i}", reward=float(i % 2),
                      trajectory=doc, duration_seconds=float(i))
        out.append(Converted(trajectory=doc, trial=trial, trial_key=f"{prefix}-{i}", source=f"mem:{prefix}-{i}",
                             raw=raw))
    return out


WRITER = textwrap.dedent(
    """
    import sys
    from atif.store import Store
    from team_builders import converted

    target, data_path, experiment, prefix, start, stop = sys.argv[1:7]
    items = converted(prefix, int(start), int(stop))
    with Store(target, data_path=data_path) as store:
        result = store.ingest(items, experiment, create_missing_tasks=True, batch_size=int(sys.argv[7]))
    print("RESULT", result.created_trials, result.unchanged_trials, len(result.errors), flush=True)
    """
)


def writer_args(target: str, data_path: Any, experiment: str, prefix: str, start: int, stop: int,
                batch_size: int = 250) -> list[str]:
    """The command line of one writer process."""
    return [sys.executable, "-c", WRITER, target, str(data_path), experiment, prefix, str(start), str(stop),
            str(batch_size)]


def child_env() -> dict[str, str]:
    """Environment for child processes: this checkout of atif and these builders importable."""
    env = dict(os.environ)
    parts = [str(ROOT), str(HERE), str(HERE.parent / "store")]
    env["PYTHONPATH"] = os.pathsep.join(parts + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env
