"""A realistic corpus for the validate and upload benchmarks, seeded from real Harbor trajectories.

Every trial gets its own distinct trajectory, made from the ATIF files real Harbor agents wrote
(``fixtures/harbor/`` and Harbor's golden files in ``fixtures/harbor-golden/``, 3.6 to 58 KB):

* one to three seed trajectories of the same ATIF version are chained (the later ones' agent
  steps appended, as a long run that continued after a context summarisation does), so sizes
  range from about 4 KB to 150 KB with a mean near 45 KB, the size of real agent runs;
* ids take their real shapes: ``session_id`` a UUID4, ``tool_call_id`` ``call_`` + 24
  alphanumerics (OpenAI's), trial ids ``<task>__<7 letters>`` (Harbor's);
* step ids are renumbered, timestamps made monotonic, the task text is made distinct per trial,
  and ``final_metrics`` are summed from the steps, so every document is valid for atif and for
  Harbor's model; file references (which would not resolve here) are dropped.

Files are written as Harbor writes them (2-space indent). ``trials.jsonl`` holds one record per
trial the way ``atif convert`` writes them (totals, the conversation as ``messages``).
"""

from __future__ import annotations

import copy
import random
import string
import subprocess
import textwrap
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
_ALNUM = string.ascii_letters + string.digits


def seeds() -> dict[str, list[dict[str, Any]]]:
    """The real Harbor trajectories, grouped by schema version."""
    found: dict[str, list[dict[str, Any]]] = {}
    for folder in ("harbor", "harbor-golden"):
        for f in sorted((ROOT / "fixtures" / folder).rglob("*.json")):
            if f.name.endswith(".atif.json"):
                continue
            try:
                doc = orjson.loads(f.read_bytes())
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and str(doc.get("schema_version", "")).startswith("ATIF-v") and doc.get("steps"):
                found.setdefault(doc["schema_version"], []).append(doc)
    return found


def _rid(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(n))


def _strip_refs(doc: dict[str, Any]) -> None:
    doc.pop("continued_trajectory_ref", None)
    doc.pop("subagent_trajectories", None)
    for step in doc.get("steps", []):
        obs = step.get("observation")
        for res in (obs or {}).get("results", []) or []:
            res.pop("subagent_trajectory_ref", None)


def make_trajectory(i: int, pool: dict[str, list[dict[str, Any]]], rng: random.Random) -> dict[str, Any]:
    """Trial ``i``'s trajectory: 1-3 chained seeds of one version with fresh ids."""
    version = rng.choice(sorted(pool))
    group = pool[version]
    doc = copy.deepcopy(rng.choice(group))
    _strip_refs(doc)
    steps: list[dict[str, Any]] = doc["steps"]
    for _ in range(rng.choice((0, 0, 1, 2))):
        more = copy.deepcopy(rng.choice(group))
        _strip_refs(more)
        steps.extend(s for s in more["steps"] if s.get("source") == "agent")
    call_ids: dict[str, str] = {}
    minute = 0
    for n, step in enumerate(steps, start=1):
        step["step_id"] = n
        if "timestamp" in step:
            minute += rng.randint(0, 2)
            step["timestamp"] = f"2026-03-{1 + i % 28:02d}T{8 + minute // 60 % 12:02d}:{minute % 60:02d}:{n % 60:02d}Z"
        for call in step.get("tool_calls") or []:
            new = call_ids[call["tool_call_id"] + f"@{n}"] = "call_" + _rid(rng, 24)
            call_ids.setdefault(call["tool_call_id"], new)
            call["tool_call_id"] = new
        obs = step.get("observation")
        for res in (obs or {}).get("results", []) or []:
            scid = res.get("source_call_id")
            if scid is not None:
                res["source_call_id"] = call_ids.get(scid + f"@{n}", call_ids.get(scid, scid))
        if step.get("source") == "user" and isinstance(step.get("message"), str):
            step["message"] = f"[run {i}] " + step["message"]
    doc["session_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    totals: dict[str, float] = {}
    for step in steps:
        for k, v in (step.get("metrics") or {}).items():
            if k in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd") and isinstance(v, (int, float)):
                totals[k] = totals.get(k, 0) + v
    fm = doc.get("final_metrics") or {}
    for k in ("prompt_tokens", "completion_tokens", "cached_tokens"):
        if k in totals:
            fm[f"total_{k}"] = int(totals[k])
    if "cost_usd" in totals:
        fm["total_cost_usd"] = round(totals["cost_usd"], 6)
    fm["total_steps"] = len(steps)
    doc["final_metrics"] = fm
    return doc


def generate(out: Path, n: int, *, trials_file: bool = True, seed: int = 20261207) -> list[Path]:
    """Write ``n`` trials under ``out`` (``trajectories/<task>/<trial>.json`` and ``trials.jsonl``)."""
    from atif.trial import trajectory_messages, trajectory_totals

    rng = random.Random(seed)
    pool = seeds()
    files: list[Path] = []
    lines: list[bytes] = []
    for i in range(n):
        task = f"task-{i % 500:03d}"
        trial = f"{task}__{_rid(rng, 7)}"
        rel = f"trajectories/{task}/{trial}.json"
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = make_trajectory(i, pool, rng)
        path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        files.append(path)
        if trials_file:
            lines.append(orjson.dumps({
                "task_name": task, "trial_id": trial, "trajectory": rel, "epoch": 1,
                "reward": float(rng.random() < 0.6), "duration_seconds": round(rng.uniform(20, 900), 2),
                **{k: v for k, v in trajectory_totals(doc).items() if v is not None},
                "messages": trajectory_messages(doc),
                "metadata": {"source_format": "harbor", "source_path": f"jobs/2026-03-01__08-00-00/{trial}"},
            }))
    if trials_file:
        (out / "trials.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return files


HARBOR_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from harbor.models.trajectories import Trajectory
    files = [Path(line) for line in Path(sys.argv[1]).read_text().splitlines()]
    t0, c0 = time.perf_counter(), time.process_time()
    bad = 0
    for f in files:
        try:
            Trajectory.model_validate_json(f.read_bytes())
        except Exception:
            bad += 1
    print(time.perf_counter() - t0, time.process_time() - c0, bad)
    """
)
"""The reference of the validate and upload benches: Harbor's own model over the same files, in one
warm Python 3.12 process with ``harbor==0.25.0`` (imports not counted)."""


def harbor_time(python: str, files: list[Path], work: Path) -> tuple[float, float] | None:
    """Wall and CPU seconds Harbor needs to read and validate every file, or None without Harbor."""
    if not python or not Path(python).exists():
        return None
    listing = work / "files.txt"
    listing.write_text("\n".join(str(f) for f in files))
    proc = subprocess.run([python, "-c", HARBOR_SCRIPT, str(listing)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  harbor failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    wall, cpu, bad = proc.stdout.split()
    if int(bad):
        print(f"  harbor rejected {bad} files")
    return float(wall), float(cpu)
