"""Conversion throughput per adapter, as a ratio to ``orjson.loads`` of the same bytes.

Generates a few thousand runs per format (OpenAI chat, OpenAI Responses, Anthropic, Harbor
trial directories, ATIF files), each about 20 steps with tool calls, in a temp directory, and
copies the real-library fixtures of the other formats (LangGraph state and stream updates,
LangSmith run trees, Inspect logs, a mapped custom export) as many times, then times in this
process:

* ``orjson.loads`` of every input file's bytes (the floor: reading JSON at all);
* ``iter_convert``: sniff, convert and validate, nothing written (what ``atif upload`` uses
  on raw runner output);
* ``convert``: the same plus writing trajectories and ``trials.jsonl``.

Framework logs (LangChain run-collector trees, LangGraph v2 stream parts, ``astream_events``,
Harbor LangGraph trials, Agents SDK run states, ``new_items`` and traces) are timed by
:func:`framework_rows`: distinct copies of the real-library fixtures (ids and texts varied per
copy), by library call and by the whole ``atif convert --dry-run`` process against a process
that only ``orjson.loads`` the same files, both measured in the same run.

Run from the repository root::

    python -m bench.convert_bench            # 2,000 runs per format (the full size)
    python -m bench.convert_bench 500        # fewer
    python -m bench.convert_bench --quick    # 100 runs per format, well under 2 minutes

The coding-agent CLI formats (Claude Code, Codex, Gemini CLI, OpenHands) come first, from the
session files the real tools wrote (``fixtures/<format>/real``) and the hand-written samples, each
copy with fresh UUIDs so that every copy is a distinct trial; for them the whole ``atif convert
DIR -o OUT`` process is timed too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atif.adapters.base import Converted
from atif.adapters.convert import convert, iter_convert

QUICK_RUNS = 100
"""Runs per format with ``--quick`` (for ``make bench``; the full size is 2,000)."""
TURNS = 6  # user + 6 x (assistant with a tool call, tool result) + final answer ~ 20 steps/messages


def _args(i: int, t: int) -> dict[str, Any]:
    return {"command": f"grep -rn 'pattern{t}' src/module_{i % 50}/", "timeout": 30}


def _output(i: int, t: int) -> str:
    return "\n".join(f"src/module_{i % 50}/file{k}.py:{k * 7}: match pattern{t}" for k in range(8))


def openai_chat(i: int) -> Any:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a coding agent. Use the shell tool."},
        {"role": "user", "content": f"Find every use of pattern in module {i % 50} and summarise."},
    ]
    for t in range(TURNS):
        cid = f"call_{i}_{t}"
        msgs.append({"role": "assistant", "content": f"Searching step {t}.", "tool_calls": [
            {"id": cid, "type": "function",
             "function": {"name": "shell", "arguments": orjson.dumps(_args(i, t)).decode()}}]})
        msgs.append({"role": "tool", "tool_call_id": cid, "content": _output(i, t)})
    msgs.append({"role": "assistant", "content": f"Found {TURNS * 8} matches in module {i % 50}."})
    return {"id": f"run-{i}", "model": "gpt-4o", "messages": msgs,
            "usage": {"prompt_tokens": 4000 + i % 97, "completion_tokens": 300}}


def openai_responses(i: int) -> Any:
    items: list[dict[str, Any]] = [{"role": "user", "content": f"Find pattern in module {i % 50}."}]
    for t in range(TURNS):
        cid = f"call_{i}_{t}"
        items.append({"type": "reasoning", "id": f"rs_{i}_{t}",
                      "summary": [{"type": "summary_text", "text": f"Step {t}: search again."}]})
        items.append({"type": "function_call", "id": f"fc_{i}_{t}", "call_id": cid, "name": "shell",
                      "arguments": orjson.dumps(_args(i, t)).decode(), "status": "completed"})
        items.append({"type": "function_call_output", "call_id": cid, "output": _output(i, t)})
    items.append({"type": "message", "id": f"msg_{i}", "role": "assistant", "status": "completed",
                  "content": [{"type": "output_text", "text": "Done.", "annotations": []}]})
    return items


def anthropic(i: int) -> Any:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": f"Find pattern in module {i % 50}."}]
    for t in range(TURNS):
        tid = f"toolu_{i}_{t}"
        msgs.append({"id": f"msg_{i}_{t}", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                     "stop_reason": "tool_use",
                     "content": [{"type": "thinking", "thinking": f"Step {t}.", "signature": "sig"},
                                 {"type": "tool_use", "id": tid, "name": "shell", "input": _args(i, t)}],
                     "usage": {"input_tokens": 100, "cache_read_input_tokens": 900,
                               "cache_creation_input_tokens": 0, "output_tokens": 40}})
        msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid,
                                                   "content": _output(i, t)}]})
    msgs.append({"role": "assistant", "content": [{"type": "text", "text": "Done."}]})
    return {"system": "You are a coding agent.", "messages": msgs}


def atif_doc(i: int, version: str = "ATIF-v1.5") -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"step_id": 1, "source": "user", "message": f"Find pattern {i % 50}.",
                                    "timestamp": "2026-01-01T00:00:00Z"}]
    for t in range(TURNS * 3):
        cid = f"call_{i}_{t}"
        steps.append({
            "step_id": len(steps) + 1, "source": "agent", "message": f"Step {t}.",
            "timestamp": f"2026-01-01T00:{t // 60:02d}:{t % 60:02d}Z",
            "tool_calls": [{"tool_call_id": cid, "function_name": "shell", "arguments": _args(i, t)}],
            "observation": {"results": [{"source_call_id": cid, "content": _output(i, t)}]},
            "metrics": {"prompt_tokens": 1000, "completion_tokens": 50, "cost_usd": 0.001},
        })
    return {"schema_version": version, "session_id": f"sess-{i}", "agent": {"name": "bench", "version": "1"},
            "steps": steps}


def harbor_trial(job: Path, i: int) -> None:
    name = f"task-{i % 40}__{i:07d}"
    d = job / name
    (d / "agent").mkdir(parents=True)
    (d / "verifier").mkdir()
    (d / "config.json").write_bytes(orjson.dumps({"task": {"path": f"tasks/task-{i % 40}"}, "trial_name": name,
                                                  "trials_dir": f"jobs/{job.name}", "agent": {"name": "bench"}}))
    (d / "result.json").write_bytes(orjson.dumps({
        "id": f"00000000-0000-0000-0000-{i:012d}", "task_name": f"task-{i % 40}", "trial_name": name,
        "agent_info": {"name": "bench", "version": "1", "model_info": {"name": "gpt-4o", "provider": "openai"}},
        "agent_result": {"n_input_tokens": 18000, "n_cache_tokens": 0, "n_output_tokens": 900, "cost_usd": 0.018},
        "verifier_result": {"rewards": {"reward": float(i % 2)}}, "exception_info": None,
        "started_at": "2026-11-21T08:30:01.000000Z", "finished_at": "2026-11-21T08:31:01.500000Z",
    }))
    (d / "agent" / "trajectory.json").write_bytes(orjson.dumps(atif_doc(i)))
    (d / "verifier" / "reward.txt").write_text(f"{i % 2}\n")


def generate(root: Path, n: int) -> dict[str, Path]:
    """Write ``n`` runs per format under ``root``; return format -> input directory."""
    dirs: dict[str, Path] = {}
    for fmt, make in (("openai-chat", openai_chat), ("openai-responses", openai_responses),
                      ("anthropic", anthropic), ("atif", atif_doc)):
        d = root / fmt
        d.mkdir()
        for i in range(n):
            (d / f"run{i:06d}.json").write_bytes(orjson.dumps(make(i)))
        dirs[fmt] = d
    job = root / "harbor" / "2026-11-21__09-30-00"
    job.mkdir(parents=True)
    (job / "config.json").write_bytes(orjson.dumps({"job_name": job.name}))
    for i in range(n):
        harbor_trial(job, i)
    dirs["harbor"] = job
    return dirs


# Formats whose inputs are copies of a committed fixture: (adapter, fixture, mapping file).
REPLICATED = {
    "langgraph-state": ("langchain", "fixtures/langchain/langgraph_state.json", None),
    "langgraph-updates": ("langchain", "fixtures/langchain/langgraph_updates_v2.json", None),
    "langsmith": ("langsmith", "fixtures/langsmith/run_tree.json", None),
    "inspect": ("inspect", "fixtures/inspect/tool_use.json", None),
    "mapping": ("mapping", "fixtures/mapping/crewlite_export.json", "docs/mappings/crewlite.yaml"),
    "otel-genai": ("otel", "fixtures/otel/genai_spans.jsonl", None),
    "otel-otlp": ("otel", "fixtures/otel/genai_otlp.json", None),
    "openinference": ("otel", "fixtures/otel/openinference_spans.jsonl", None),
    "mini-swe-agent": ("swe-agent", "fixtures/swe-agent/fix_add.traj.json", None),
}


def replicate(root: Path, n: int) -> dict[str, tuple[str, list[Path], Path | None]]:
    """``n`` copies of each fixture: name -> (adapter, files, mapping)."""
    out = {}
    for name, (fmt, fixture, mapping) in REPLICATED.items():
        src = ROOT / fixture
        d = root / name
        d.mkdir()
        data = src.read_bytes()
        files = []
        for i in range(n):
            f = d / f"run{i:06d}{''.join(src.suffixes[-2:]) if src.name.endswith('.traj.json') else src.suffix}"
            f.write_bytes(data)
            files.append(f)
        out[name] = (fmt, files, ROOT / mapping if mapping else None)
    return out


# The coding-agent CLI formats: sessions the real tools wrote (fixtures/<format>/real, see
# fixtures/README.md); Gemini CLI's older .json document and OpenHands from their samples. Each copy gets fresh ids (session, message and
# subagent ids rewritten to new UUID-shaped ones), so every copy is a distinct trial, as in a real
# ~/.claude/projects, ~/.codex/sessions or ~/.gemini/tmp folder.
CLI_SESSIONS: dict[str, tuple[str, str]] = {
    "claude-code": ("claude-code", "fixtures/claude-code/real/-work-demo"),
    "codex": ("codex", "fixtures/codex/real"),
    "gemini-cli": ("gemini-cli", "fixtures/gemini-cli/real/demo/chats"),
    "gemini-cli-json": ("gemini-cli", "fixtures/gemini-cli/session-2025-10-18T14-57-f86f5318.json"),
    "openhands-sdk": ("openhands", "fixtures/openhands/real"),
    "openhands": ("openhands", "fixtures/openhands/fix_slugify.json"),
}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")  # OpenHands conversation folders


def _fresh_ids(text: str, i: int) -> str:
    """``text`` with every UUID (dashed or 32 hex digits) replaced by one derived from it and copy
    number ``i``, of the same shape."""
    text = _UUID.sub(lambda m: str(uuid.uuid5(uuid.NAMESPACE_OID, f"{m.group(0)}/{i}")), text)
    return _HEX_ID.sub(lambda m: uuid.uuid5(uuid.NAMESPACE_OID, f"{m.group(0)}/{i}").hex, text)


def cli_sessions(root: Path, n: int) -> dict[str, tuple[str, Path, list[Path]]]:
    """``n`` distinct copies of each CLI session sample: name -> (adapter, folder, every file)."""
    out = {}
    for name, (fmt, sample) in CLI_SESSIONS.items():
        src = ROOT / sample
        base = src if src.is_dir() else src.parent
        members = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
        dest = root / name
        files = []
        for i in range(n):
            for f in members:
                rel = _fresh_ids(str(f.relative_to(base)), i)
                text = _fresh_ids(f.read_text(), i)
                sid = re.search(r'"sessionId":\s*"([^"]+)"', text)
                if fmt == "gemini-cli" and f.name.startswith("session-") and sid:
                    # a recording's file name ends with its session id's first 8 characters
                    rel = str(Path(rel).with_name(f"session-{i:06d}-{sid.group(1)[:8]}{f.suffix}"))
                elif not src.is_dir() and _UUID.search(f.name) is None:
                    rel = f"{f.stem}-{i:06d}{f.suffix}"
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                files.append(target)
        out[name] = (fmt, dest, files)
    return out


def _parse_files(files: list[Path]) -> None:
    """The floor for a folder of sessions: ``orjson.loads`` of each file (each line of JSON Lines)."""
    for f in files:
        data = f.read_bytes()
        if f.suffix == ".jsonl":
            for line in data.splitlines():
                if line.strip():
                    orjson.loads(line)
        else:
            orjson.loads(data)


def cli_rows(tmp: Path, n: int) -> None:
    """The CLI-format rows: library ``iter_convert`` of the session folder, and the whole ``atif
    convert DIR -o OUT`` process a user runs, each as a ratio to the parse floor of the same files."""
    print(f"\ncoding-agent CLI sessions: {n} distinct copies per sample (real: fixtures/<format>/real)")
    print(f"{'format':<17}{'MB':>7}{'orjson ms':>11}{'iter_convert ms':>17}{'ratio':>7}{'CLI ms':>10}{'ratio':>8}"
          f"{'trials':>8}")
    for name, (fmt, folder, files) in cli_sessions(tmp / "cli", n).items():
        mb = sum(f.stat().st_size for f in files) / 1e6
        t_json = best_of(lambda files=files: _parse_files(files), repeat=9)
        trials = [0]

        def dry(folder: Path = folder, fmt: str = fmt, trials: list[int] = trials) -> None:
            trials[0] = sum(1 for r in iter_convert([folder], source_format=fmt) if isinstance(r, Converted))

        t_iter = best_of(dry)
        assert trials[0] == n, (name, trials[0])
        out = tmp / f"out-cli-{name}"

        def whole(folder: Path = folder, out: Path = out) -> None:
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run([sys.executable, "-c", "from atif.cli import main; main()", "convert", str(folder),
                            "-o", str(out)], check=True, capture_output=True, cwd=ROOT)

        t_cli = best_of(whole, repeat=2)
        print(f"{name:<17}{mb:>7.1f}{t_json * 1e3:>11.1f}{t_iter * 1e3:>17.1f}{t_iter / t_json:>6.1f}x"
              f"{t_cli * 1e3:>10.0f}{t_cli / t_json:>7.0f}x{trials[0]:>8}")


def _parse_all(blobs: list[bytes], lines: bool = False) -> None:
    # Parse and drop each document (each line of JSON Lines), as a converter does; keeping them
    # all would time the allocator.
    for b in blobs:
        if lines:
            for line in b.splitlines():
                if line.strip():
                    orjson.loads(line)
        else:
            orjson.loads(b)


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time (s) of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _dry(src: list[Path], fmt: str, n: int) -> None:
    got = sum(1 for _ in iter_convert(src, source_format=fmt))
    assert got == n, (fmt, got)


def _full(src: list[Path], fmt: str, n: int, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    res = convert(src, out, source_format=fmt)
    assert res.converted == n and res.ok, (fmt, res.failures[:3])


# Framework logs: (adapter, fixture, byte strings made distinct per copy).
FRAMEWORK_LOGS = {
    "lc-run-collector": ("langsmith", "fixtures/langsmith/run_collector.json",
                         [b"01952a00-", b"call_weather_1", b"call_divide_1", b"Paris"]),
    "lg-stream-multi": ("langchain", "fixtures/langchain/langgraph_stream_multi_v2.json",
                        [b"lc_run--scripted-", b"call_weather_1", b"call_divide_1", b"Paris"]),
    "lg-astream-events": ("langsmith", "fixtures/langsmith/astream_events_v2.json",
                          [b"01952a00-", b"call_weather_1", b"call_divide_1", b"Paris"]),
    "harbor-langgraph": ("harbor", "fixtures/harbor/langgraph-trial/hello-world__LgRph7Q",
                         [b"call_weather_1", b"call_divide_1", b"Paris"]),
    "agents-run-state": ("openai-agents", "fixtures/openai-agents/run_state.json",
                         [b"call_handoff_1", b"call_weather_1", b"call_divide_1", b"Paris"]),
    "agents-new-items": ("openai-agents", "fixtures/openai-agents/new_items.json",
                         [b"call_handoff_1", b"call_weather_1", b"call_divide_1", b"Paris"]),
    "agents-trace": ("openai-agents-trace", "fixtures/openai-agents/trace.json",
                     [b"\": \"trace_", b"\": \"span_", b"call_weather_1", b"call_divide_1", b"Paris"]),
}


def _vary(data: bytes, marks: list[bytes], i: int) -> bytes:
    for m in marks:
        data = data.replace(m, m + f"{i:06d}".encode() if not m[-1:].isalnum() else m + f"x{i:06d}".encode())
    return data


def _framework_inputs(root: Path, name: str, fixture: Path, marks: list[bytes], n: int) -> list[Path]:
    """``n`` distinct copies of one fixture (a Harbor trial becomes ``n`` trials of one job)."""
    d = root / name
    d.mkdir()
    if fixture.is_dir():
        job = d / "job"
        job.mkdir()
        (job / "config.json").write_bytes(orjson.dumps({"job_name": "bench"}))
        for i in range(n):
            trial = job / f"{fixture.name.rsplit('__', 1)[0]}__b{i:06d}"
            shutil.copytree(fixture, trial)
            for f in trial.rglob("*.json"):
                f.write_bytes(_vary(f.read_bytes(), [*marks, fixture.name.encode()], i))
        return [job]
    data = fixture.read_bytes()
    files = []
    for i in range(n):
        f = d / f"run{i:06d}{fixture.suffix}"
        f.write_bytes(_vary(data, marks, i))
        files.append(f)
    return files


_ORJSON_PROCESS = (
    "import sys, pathlib, orjson\n"
    "for a in sys.argv[1:]:\n"
    "    p = pathlib.Path(a)\n"
    "    for f in (sorted(p.rglob('*.json')) if p.is_dir() else [p]):\n"
    "        orjson.loads(f.read_bytes())\n"
)


def framework_rows(root: Path, n: int) -> None:
    """Time the framework-log formats: library (``iter_convert``) and whole CLI process, each
    against ``orjson.loads`` of the same bytes (in this process / in a process of its own)."""
    import subprocess

    atif_cli = Path(sys.executable).parent / "atif"
    print(f"\nframework logs: {n} distinct runs each; CLI = `atif convert SRC --from F --dry-run` as a process, "
          "ref = a python process orjson-loading the same files")
    print(f"{'format':<19}{'MB':>6}{'orjson ms':>11}{'iter_convert ms':>17}{'ratio':>7}"
          f"{'ref proc ms':>13}{'CLI ms':>9}{'ratio':>7}")
    for name, (fmt, fixture, marks) in FRAMEWORK_LOGS.items():
        src = _framework_inputs(root, name, ROOT / fixture, marks, n)
        files = sorted(p for s_ in src for p in (s_.rglob("*.json") if s_.is_dir() else [s_]))
        blobs = [p.read_bytes() for p in files]
        mb = sum(map(len, blobs)) / 1e6
        t_json = best_of(lambda blobs=blobs: _parse_all(blobs), repeat=9)
        t_iter = best_of(lambda src=src, fmt=fmt: _dry(src, fmt, n))
        args = [str(p) for p in src]
        t_ref = best_of(lambda args=args: subprocess.run([sys.executable, "-c", _ORJSON_PROCESS, *args], check=True),
                        repeat=3)
        t_cli = best_of(lambda args=args, fmt=fmt: subprocess.run(
            [str(atif_cli), "convert", *args, "--from", fmt, "--dry-run", "--no-progress"],
            check=True, stdout=subprocess.DEVNULL), repeat=3)
        print(f"{name:<19}{mb:>6.1f}{t_json * 1e3:>11.1f}{t_iter * 1e3:>17.1f}{t_iter / t_json:>6.1f}x"
              f"{t_ref * 1e3:>13.0f}{t_cli * 1e3:>9.0f}{t_cli / t_ref:>6.1f}x")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quick = "--quick" in sys.argv[1:]
    n = int(args[0]) if args else QUICK_RUNS if quick else 2000
    tmp = Path(tempfile.mkdtemp(prefix="atif-convert-bench-"))
    try:
        cli_rows(tmp, n)
        dirs = generate(tmp, n)
        print(f"{n} runs per format, about {1 + 2 * TURNS + 1} messages / {1 + TURNS * 3} ATIF steps each")
        print(f"{'format':<17}{'MB':>7}{'orjson ms':>11}{'iter_convert ms':>17}{'ratio':>7}"
              f"{'convert ms':>12}{'ratio':>7}{'runs/s':>9}")
        for fmt, d in dirs.items():
            files = sorted(p for p in d.rglob("*.json") if p.is_file())
            blobs = [p.read_bytes() for p in files]
            mb = sum(map(len, blobs)) / 1e6
            t_json = best_of(lambda blobs=blobs: _parse_all(blobs), repeat=9)
            src = [d] if fmt == "harbor" else files
            t_iter = best_of(lambda src=src, fmt=fmt: _dry(src, fmt, n))
            out = tmp / f"out-{fmt}"
            t_full = best_of(lambda src=src, fmt=fmt, out=out: _full(src, fmt, n, out))
            print(f"{fmt:<17}{mb:>7.1f}{t_json * 1e3:>11.1f}{t_iter * 1e3:>17.1f}{t_iter / t_json:>6.1f}x"
                  f"{t_full * 1e3:>12.1f}{t_full / t_json:>6.1f}x{n / t_full:>9.0f}")
        # Copies convert to the same trial keys, so only the no-writing path is timed for them.
        for name, (fmt, files, mapping) in replicate(tmp, n).items():
            blobs = [p.read_bytes() for p in files]
            mb = sum(map(len, blobs)) / 1e6
            jsonl = files[0].suffix == ".jsonl"
            t_json = best_of(lambda blobs=blobs, jsonl=jsonl: _parse_all(blobs, jsonl), repeat=9)
            t_iter = best_of(lambda files=files, fmt=fmt, mapping=mapping: sum(
                1 for _ in iter_convert(files, source_format=fmt, mapping=mapping)))
            trials = sum(1 for _ in iter_convert(files[:1], source_format=fmt, mapping=mapping))
            print(f"{name:<17}{mb:>7.1f}{t_json * 1e3:>11.1f}{t_iter * 1e3:>17.1f}{t_iter / t_json:>6.1f}x"
                  f"{'-':>12}{'':>7}{n * trials / t_iter:>9.0f}")
        framework_rows(tmp, n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
