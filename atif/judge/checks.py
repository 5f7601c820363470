"""Criteria decided without a judge model: Python ``function`` checks and tool-call ``match``.

**function** criteria name a module file and a function ``check(trajectory)`` or
``check(trajectory, trial) -> bool | float``. Before any run the check is validated in five
steps, and a failure names the step:

1. *syntax*: the file parses as Python;
2. *function*: it defines a top-level (non-async) function with that name;
3. *parameters*: the function takes one or two positional parameters;
4. *import*: the module imports (in a subprocess);
5. *test call*: calling it on a tiny built-in trajectory returns a bool or a number.

Checks run in a separate Python process with a timeout per call, so a check that hangs, crashes
or exits is recorded as an ``UNSCORED`` rating with the reason, and the run goes on. ``True`` is
YES and ``False`` NO; a number is a score in [0, 1], YES from 0.5.

**match** criteria compare the trajectory's tool calls with a reference list, with LangChain
agentevals' trajectory match modes:

- ``strict``: the same calls in the same order;
- ``unordered``: the same calls (as a multiset) in any order;
- ``subset``: every call the agent made appears in the reference (no extra calls);
- ``superset``: every reference call appears among the agent's calls (extra calls allowed);

and argument matching ``exact`` (equal arguments), ``ignore`` (names only) or ``subset`` (the
agent's arguments are a subset of the reference's: each argument it passed has the reference's
value; as in agentevals). A reference entry given as a bare name matches any arguments. Only the
root trajectory's calls count, and steps marked ``is_copied_context`` are skipped.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atif.errors import CriteriaError

__all__ = [
    "SAMPLE_TRAJECTORY",
    "SAMPLE_TRIAL",
    "CheckResult",
    "FunctionCheck",
    "match_tool_calls",
    "parse_reference",
]

SAMPLE_TRAJECTORY: dict[str, Any] = {
    "schema_version": "ATIF-v1.8",
    "session_id": "atif-check-sample",
    "agent": {"name": "sample-agent", "version": "1.0", "model_name": "sample-model"},
    "steps": [
        {"step_id": 1, "source": "user", "message": "Create hello.txt containing 'Hello'."},
        {
            "step_id": 2,
            "source": "agent",
            "message": "Writing the file.",
            "tool_calls": [
                {"tool_call_id": "call_1", "function_name": "write_file",
                 "arguments": {"path": "hello.txt", "content": "Hello"}}
            ],
            "observation": {"results": [{"source_call_id": "call_1", "content": "wrote 5 bytes"}]},
            "metrics": {"prompt_tokens": 50, "completion_tokens": 10},
        },
        {"step_id": 3, "source": "agent", "message": "Done: hello.txt contains 'Hello'."},
    ],
    "final_metrics": {"total_prompt_tokens": 50, "total_completion_tokens": 10, "total_steps": 3},
}
"""The tiny trajectory of validation step 5."""

SAMPLE_TRIAL: dict[str, Any] = {
    "trial_id": "sample", "task_name": "sample-task", "epoch": 1, "reward": 1.0, "rewards": None,
    "steps": 3, "cost_usd": None, "duration_seconds": 1.0, "input_tokens": 50, "output_tokens": 10,
    "cached_tokens": None, "error": None, "metadata": {}, "messages": None,
    "task": {"name": "sample-task", "instruction": "Create hello.txt containing 'Hello'.", "tags": []},
}
"""The tiny trial of validation step 5."""


@dataclass(slots=True)
class CheckResult:
    """The outcome of a function or match criterion on one trial."""

    verdict: str
    """``YES``, ``NO`` or ``UNSCORED``."""
    reasoning: str | None = None
    error: str | None = None
    cited_steps: list[int] | None = None


# -- function checks ----------------------------------------------------------------------

_WORKER = r"""
import importlib.util, json, math, os, sys, traceback
path, name = sys.argv[1], sys.argv[2]
reply = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)  # the check's own prints go to stderr, never into the protocol
sys.stdout = sys.stderr
def send(obj):
    reply.write(json.dumps(obj) + "\n"); reply.flush()
def why(exc):
    return f"{type(exc).__name__}: {exc}"
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
try:
    spec = importlib.util.spec_from_file_location("atif_user_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, name)
except BaseException as exc:
    send({"ready": False, "error": why(exc)}); sys.exit(0)
import inspect
try:
    n = len([p for p in inspect.signature(fn).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
except (TypeError, ValueError):
    n = 2
send({"ready": True})
stdin = sys.stdin.buffer
while True:
    header = stdin.readline()
    if not header:
        break
    request = json.loads(stdin.read(int(header)))
    try:
        args = (request["trajectory"], request["trial"])[: 1 if n == 1 else 2]
        value = fn(*args)
        if isinstance(value, bool):
            send({"ok": value})
        elif isinstance(value, (int, float)) and math.isfinite(value):
            send({"ok": float(value)})
        else:
            send({"bad": f"{type(value).__name__} {value!r}"[:200]})
    except BaseException as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f" (line {f.lineno})" for f in reversed(tb) if f.filename == path), "")
        send({"error": why(exc)[:500] + where})
"""


def _fail(label: str, step: int, name: str, reason: str) -> CriteriaError:
    return CriteriaError(f"function criterion {label!r}: step {step} ({name}) failed: {reason}")


def _static_checks(label: str, path: Path, function: str) -> None:
    """Steps 1-3, without running the user's code."""
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(label, 1, "syntax", f"no such module file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(label, 1, "syntax", f"cannot read {path}: {exc}") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise _fail(label, 1, "syntax", f"{path.name}, line {exc.lineno}: {exc.msg}") from None
    found: ast.AST | None = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            found = node
    if found is None:
        defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        hint = f"; it defines {', '.join(defined)}" if defined else ""
        raise _fail(label, 2, "function", f"{path.name} has no top-level function {function!r}{hint}")
    if isinstance(found, ast.AsyncFunctionDef):
        raise _fail(label, 2, "function", f"{function!r} is async; a check must be a plain function")
    args = found.args  # type: ignore[attr-defined]
    positional = len(args.posonlyargs) + len(args.args)
    required_kw = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=False) if d is None]
    if positional not in (1, 2) or required_kw:
        raise _fail(
            label, 3, "parameters",
            f"{function}() takes {positional} positional parameter(s)"
            + (f" and requires keyword(s) {', '.join(required_kw)}" if required_kw else "")
            + "; expected check(trajectory) or check(trajectory, trial)",
        )


class FunctionCheck:
    """One function criterion: validated once, then run trial after trial in a worker process."""

    def __init__(self, label: str, module: str | os.PathLike[str], function: str = "check",
                 timeout: float = 10.0) -> None:
        self.label = label
        self.path = Path(module)
        self.function = function
        self.timeout = timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: Any = None
        self._lock = asyncio.Lock()

    async def _start(self) -> str | None:
        """Start the worker; return why the module did not import, or None."""
        # Kept open for the worker's lifetime (closed in _kill); a with-block cannot span that.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, str(self.path), self.function,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._stderr,
            cwd=str(self.path.parent) if self.path.parent.exists() else None,
        )
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), self.timeout)  # type: ignore[union-attr]
        except TimeoutError:
            await self._kill()
            return f"importing took longer than {self.timeout:g} s"
        if not line:
            why = self._stderr_tail()
            await self._kill()
            return f"the worker exited while importing{': ' + why if why else ''}"
        hello = json.loads(line)
        if not hello.get("ready"):
            await self._kill()
            return str(hello.get("error"))
        return None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        elif proc is not None:
            await proc.wait()
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    async def close(self) -> None:
        """Stop the worker process."""
        await self._kill()

    async def validate(self) -> None:
        """The five validation steps; ``CriteriaError`` names the step that failed and why."""
        _static_checks(self.label, self.path, self.function)
        async with self._lock:
            why = await self._start()
            if why is not None:
                raise _fail(self.label, 4, "import", why)
        result = await self.run(SAMPLE_TRAJECTORY, SAMPLE_TRIAL)
        if result.verdict == "UNSCORED":
            await self.close()
            raise _fail(self.label, 5, "test call", f"on the built-in sample trajectory: {result.error}")

    async def run(self, trajectory: Mapping[str, Any] | bytes | None, trial: Mapping[str, Any]) -> CheckResult:
        """Run the check on one trial (``trajectory`` parsed, or its raw JSON bytes)."""
        async with self._lock:
            if self._proc is None or self._proc.returncode is not None:
                why = await self._start()
                if why is not None:
                    return CheckResult("UNSCORED", error=f"check module failed to import: {why}")
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            raw = trajectory if isinstance(trajectory, bytes) else json.dumps(trajectory).encode()
            body = b'{"trajectory":' + raw + b',"trial":' + json.dumps(dict(trial), default=str).encode() + b"}"
            try:
                proc.stdin.write(b"%d\n" % len(body) + body)
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), self.timeout)
            except TimeoutError:
                await self._kill()
                return CheckResult("UNSCORED", error=f"check timed out after {self.timeout:g} s")
            except (BrokenPipeError, ConnectionResetError):
                line = b""
            if not line:
                code = await proc.wait()
                why = self._stderr_tail()
                await self._kill()
                return CheckResult("UNSCORED", error=f"check crashed (exit code {code}){': ' + why if why else ''}")
        reply = json.loads(line)
        if "error" in reply:
            return CheckResult("UNSCORED", error=f"check raised {reply['error']}")
        if "bad" in reply:
            return CheckResult("UNSCORED", error=f"check returned {reply['bad']}; expected a bool or a number in [0, 1]")
        value = reply["ok"]
        if isinstance(value, bool):
            return CheckResult("YES" if value else "NO", reasoning=f"{self.function}() returned {value}")
        if not 0.0 <= value <= 1.0 or math.isnan(value):
            return CheckResult("UNSCORED", error=f"check returned {value:g}; expected a bool or a number in [0, 1]")
        return CheckResult("YES" if value >= 0.5 else "NO",
                           reasoning=f"{self.function}() returned {value:g} (YES from 0.5)")


# -- match criteria -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    args: Any  # dict, or None when the reference gives only a name
    step_id: int | None = None

    def show(self) -> str:
        if self.args is None:
            return self.name
        return f"{self.name}({json.dumps(self.args, sort_keys=True, ensure_ascii=False)[:120]})"


def parse_reference(reference: Sequence[Any], label: str = "?") -> list[_Call]:
    """The reference calls of a match criterion; ``CriteriaError`` for an entry it cannot read."""
    calls = []
    for i, item in enumerate(reference):
        if isinstance(item, str) and item:
            calls.append(_Call(item, None))
            continue
        if isinstance(item, dict):
            nested = item.get("function")
            fn: dict[str, Any] = nested if isinstance(nested, dict) else item
            name = fn.get("function_name") or fn.get("name")
            args = fn.get("arguments", fn.get("args"))
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    raise CriteriaError(
                        f"match criterion {label!r}: reference {i + 1}: arguments are not JSON"
                    ) from None
            if isinstance(name, str) and name and (args is None or isinstance(args, dict)):
                calls.append(_Call(name, args))
                continue
        raise CriteriaError(
            f"match criterion {label!r}: reference {i + 1} must be a tool name or "
            "{function_name, arguments} with arguments an object"
        )
    return calls


def _actual_calls(trajectory: Mapping[str, Any] | None) -> list[_Call]:
    calls = []
    for step in (trajectory or {}).get("steps") or []:
        if not isinstance(step, dict) or step.get("is_copied_context"):
            continue
        for c in step.get("tool_calls") or []:
            if isinstance(c, dict):
                args = c.get("arguments")
                if isinstance(args, str):
                    with contextlib.suppress(ValueError):
                        args = json.loads(args)
                calls.append(_Call(str(c.get("function_name")), args if args is not None else {},
                                   step.get("step_id")))
    return calls


def _steps(calls: Sequence[_Call]) -> list[int]:
    return sorted({c.step_id for c in calls if isinstance(c.step_id, int)})


def _args_match(actual: _Call, ref: _Call, mode: str) -> bool:
    if ref.args is None or mode == "ignore":
        return True
    if mode == "exact":
        return actual.args == ref.args
    if not isinstance(actual.args, dict):
        return False
    return all(k in ref.args and ref.args[k] == v for k, v in actual.args.items())


def _pairs(actual: list[_Call], ref: list[_Call], mode: str) -> dict[int, int]:
    """A maximum matching reference index -> actual index (names equal, arguments matching)."""
    ok = [[j for j, a in enumerate(actual) if a.name == r.name and _args_match(a, r, mode)] for r in ref]
    owner: dict[int, int] = {}  # actual index -> reference index

    def augment(i: int, seen: set[int]) -> bool:
        for j in ok[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(ref)):
        augment(i, set())
    return {i: j for j, i in owner.items()}


def match_tool_calls(
    trajectory: Mapping[str, Any] | None,
    reference: Sequence[Any],
    mode: str = "strict",
    arguments: str = "ignore",
    *,
    label: str = "?",
) -> CheckResult:
    """Compare the trajectory's tool calls with ``reference`` (see the module docstring for the modes)."""
    ref = parse_reference(reference, label)
    actual = _actual_calls(trajectory)
    how = f"mode {mode}, arguments {arguments}"
    if mode == "strict":
        bad = next((i for i, (a, r) in enumerate(zip(actual, ref, strict=False))
                    if a.name != r.name or not _args_match(a, r, arguments)), None)
        if bad is None and len(actual) == len(ref):
            return CheckResult("YES", reasoning=f"all {len(ref)} tool calls match the reference in order ({how})",
                               cited_steps=_steps(actual) or None)
        if bad is not None:
            why = f"call {bad + 1} is {actual[bad].show()}, the reference has {ref[bad].show()}"
        else:
            why = f"the agent made {len(actual)} tool calls, the reference has {len(ref)}"
        return CheckResult("NO", reasoning=f"{why} ({how})",
                           cited_steps=_steps([actual[bad]]) or None if bad is not None else None)
    pairs = _pairs(actual, ref, arguments)
    missing = [ref[i] for i in range(len(ref)) if i not in pairs]
    used = set(pairs.values())
    extra = [a for j, a in enumerate(actual) if j not in used]
    need_all_ref = mode in ("unordered", "superset")
    no_extra = mode in ("unordered", "subset")
    problems = []
    if need_all_ref and missing:
        problems.append("missing " + ", ".join(c.show() for c in missing[:5]) + (" …" if len(missing) > 5 else ""))
    if no_extra and extra:
        problems.append("not in the reference: " + ", ".join(c.show() for c in extra[:5])
                        + (" …" if len(extra) > 5 else ""))
    cited = _steps([actual[j] for j in used])
    if problems:
        return CheckResult("NO", reasoning="; ".join(problems) + f" ({how})",
                           cited_steps=_steps(extra) or cited or None)
    return CheckResult("YES", reasoning=f"{len(pairs)} of {len(ref)} reference calls matched, "
                                        f"{len(extra)} other calls ({how})", cited_steps=cited or None)
