"""Store builders of the report tests: rows go straight into the ``*_data`` tables; reports read the views."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb

from atif.store import Store, migrations
from atif.store.keys import fill_missing


class StoreBuilder:
    """Writes experiments, tasks, trials, trajectories and ratings into a migrated DuckDB file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.con = duckdb.connect(str(path))
        migrations.apply(self.con)
        # One transaction for all inserts: per-row commits make fixtures slow.
        self.con.execute("BEGIN TRANSACTION")
        self._experiments: set[str] = set()
        self._store: Store | None = None
        self.closed = False

    def experiment(self, name: str, collection: str = "c") -> None:
        """Create the experiment (and its collection) unless it exists."""
        if name in self._experiments:
            return
        self._experiments.add(name)
        self.con.execute("INSERT OR IGNORE INTO collections (name) VALUES (?)", [collection])
        self.con.execute("INSERT OR IGNORE INTO experiments (name, collection) VALUES (?, ?)", [name, collection])

    def task(self, name: str, tags: list[str] | None = None, instruction: str | None = None,
             collection: str = "c") -> None:
        """Create a task of the collection."""
        self.con.execute("INSERT OR IGNORE INTO collections (name) VALUES (?)", [collection])
        self.con.execute(
            "INSERT OR REPLACE INTO tasks (collection, name, instruction, tags) VALUES (?, ?, ?, ?)",
            [collection, name, instruction, tags or []],
        )

    def trial(
        self,
        experiment: str,
        task: str,
        *,
        epoch: int = 1,
        reward: float | None = None,
        rewards: dict[str, Any] | None = None,
        cost: float | None = None,
        duration: float | None = None,
        steps: int | None = None,
        tokens: tuple[int, int, int] | None = None,
        error: str | None = None,
        ratings: dict[str, Any] | None = None,
        trajectory: dict[str, Any] | None = None,
        model: str | None = None,
        agent: str = "agent-x",
        source_id: str | None = None,
        trial_id: str | None = None,
    ) -> str:
        """Insert a trial; ``ratings`` maps criterion -> verdict or a dict of rating_data columns."""
        self.experiment(experiment)
        trial_id = trial_id or hashlib.sha256(f"{experiment}|{task}|{source_id}|{epoch}".encode()).hexdigest()
        traj_id = None
        if trajectory is not None:
            raw = json.dumps(trajectory).encode()
            traj_id = hashlib.sha256(raw).hexdigest()
            self.con.execute(
                "INSERT OR IGNORE INTO trajectory_data (trajectory_id, raw, schema_version, agent_name, model_name,"
                " step_count, n_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [traj_id, raw, trajectory.get("schema_version"), (trajectory.get("agent") or {}).get("name", agent),
                 (trajectory.get("agent") or {}).get("model_name", model), len(trajectory.get("steps") or []),
                 len(raw)],
            )
        metadata = {"model_name": model} if model else {}
        if trajectory is None:
            metadata["agent_name"] = agent
        ti, to, tc = tokens or (None, None, None)
        self.con.execute(
            "INSERT INTO trial_data (trial_id, experiment, task_name, epoch, source_trial_id, trajectory_id,"
            " reward, rewards, steps, cost_usd, duration_seconds, input_tokens, output_tokens, cached_tokens, error,"
            " metadata, record_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [trial_id, experiment, task, epoch, source_id, traj_id, reward,
             json.dumps(rewards) if rewards is not None else None, steps, cost, duration, ti, to, tc, error,
             json.dumps(metadata), trial_id],
        )
        for criterion, spec in (ratings or {}).items():
            row = {"verdict": spec} if isinstance(spec, str) else dict(spec)
            row.setdefault("source", "judge")
            row["trial_id"] = trial_id
            row["criterion"] = criterion
            cols = list(row)
            self.con.execute(
                f"INSERT INTO rating_data ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                [row[c] for c in cols],
            )
        return trial_id

    def close(self) -> None:
        """Commit and close the connection so another reader can open the file."""
        if self.closed:
            return
        fill_missing(self.con)  # the trial keys and rating cohorts the store's writers would have set
        self.con.execute("COMMIT")
        self.con.close()
        self.closed = True

    def store(self) -> Store:
        """The rows written so far, committed, through a read-only ``Store`` (what reports read)."""
        self.close()
        if self._store is None:
            self._store = Store.open(self.path, read_only=True)
        return self._store

    def release(self) -> None:
        """Close everything the builder opened."""
        self.close()
        if self._store is not None:
            self._store.close()
            self._store = None


def simple_trajectory(task: str, answer: str = "done", *, copied: bool = False) -> dict[str, Any]:
    """A small valid ATIF v1.8 trajectory: system, user, one tool call, a final answer."""
    steps: list[dict[str, Any]] = [
        {"step_id": 1, "source": "system", "message": "You are a careful agent."},
        {"step_id": 2, "source": "user", "message": f"Please do {task}."},
        {
            "step_id": 3, "source": "agent", "message": "Running a command.", "reasoning_content": "think",
            "tool_calls": [{"tool_call_id": "c1", "function_name": "bash", "arguments": {"cmd": "ls"}}],
            "observation": {"results": [{"source_call_id": "c1", "content": "a.txt\nb.txt"}]},
            "metrics": {"prompt_tokens": 100, "completion_tokens": 20, "cost_usd": 0.001},
        },
        {"step_id": 4, "source": "agent", "message": answer,
         "metrics": {"prompt_tokens": 130, "completion_tokens": 5, "cost_usd": 0.0005}},
    ]
    if copied:
        steps.insert(0, {"step_id": 0, "source": "user", "message": "copied earlier context", "is_copied_context": True})
        for i, s in enumerate(steps, start=1):
            s["step_id"] = i
    return {
        "schema_version": "ATIF-v1.8",
        "session_id": f"s-{task}",
        "agent": {"name": "agent-x", "version": "1.0", "model_name": "m-1"},
        "steps": steps,
    }


PAYLOADS = (
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'; alert('img')\">",
    "</script><script>window.__pwned = 'breakout'</script>",
    "<svg onload=\"window.__pwned = 'svg'\"></svg>",
    "\u2028<!-- <script>window.__pwned = 'comment'</script> -->",
)
"""Strings that execute if a page ever parses trajectory text as HTML; each sets ``window.__pwned``."""


def hostile_trajectory() -> dict[str, Any]:
    """A valid trajectory whose every text field carries the ``PAYLOADS``."""
    p = " ".join(PAYLOADS)
    return {
        "schema_version": "ATIF-v1.8",
        "session_id": "hostile",
        "agent": {"name": f"agent {PAYLOADS[1]}", "version": "1", "model_name": PAYLOADS[0]},
        "notes": p,
        "steps": [
            {"step_id": 1, "source": "user", "message": f"Task: {p}"},
            {"step_id": 2, "source": "agent", "message": p, "reasoning_content": p, "model_name": PAYLOADS[3],
             "tool_calls": [{"tool_call_id": PAYLOADS[1], "function_name": PAYLOADS[0], "arguments": {p: p}}],
             "observation": {"results": [{"source_call_id": PAYLOADS[1], "content": p}]}},
            {"step_id": 3, "source": "agent", "message": [{"type": "text", "text": p}]},
        ],
    }


def subagent_trajectory() -> dict[str, Any]:
    """A v1.8 trajectory that delegates to an embedded subagent trajectory."""
    return {
        "schema_version": "ATIF-v1.8",
        "session_id": "with-sub",
        "agent": {"name": "lead", "version": "2.0", "model_name": "big-model"},
        "steps": [
            {"step_id": 1, "source": "user", "message": "Summarise the repository."},
            {"step_id": 2, "source": "agent", "message": "Delegating the file survey.",
             "tool_calls": [{"tool_call_id": "d1", "function_name": "delegate", "arguments": {"task": "survey"}}],
             "observation": {"results": [{"source_call_id": "d1", "content": "survey finished",
                                          "subagent_trajectory_ref": [{"trajectory_id": "sub-survey"}]}]}},
            {"step_id": 3, "source": "agent", "message": "The repository has 3 files."},
        ],
        "subagent_trajectories": [{
            "schema_version": "ATIF-v1.8",
            "trajectory_id": "sub-survey",
            "agent": {"name": "surveyor", "version": "1.0", "model_name": "small-model"},
            "steps": [
                {"step_id": 1, "source": "user", "message": "List the files."},
                {"step_id": 2, "source": "agent", "message": "Listing.",
                 "tool_calls": [{"tool_call_id": "s1", "function_name": "bash", "arguments": {"cmd": "ls"}}],
                 "observation": {"results": [{"source_call_id": "s1", "content": "a.py\nb.py\nREADME.md"}]}},
            ],
        }],
    }


def long_trajectory(seed: int, n_steps: int = 30, obs_chars: int = 3000, huge_at: int | None = None) -> dict[str, Any]:
    """A coding-agent-like trajectory: tool calls with shell output of about ``obs_chars`` each."""
    import random

    rng = random.Random(seed)
    words = ("def", "return", "self", "import", "test", "assert", "value", "error", "path", "config", "data")
    steps: list[dict[str, Any]] = [
        {"step_id": 1, "source": "system", "message": "You are a coding agent. Use the bash tool."},
        {"step_id": 2, "source": "user", "message": f"Fix issue #{seed}: the parser drops trailing commas."},
    ]
    for k in range(3, n_steps + 1):
        out_len = 300_000 if huge_at == k else rng.randint(obs_chars // 2, obs_chars * 3 // 2)
        lines = []
        size = 0
        while size < out_len:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
            lines.append(line)
            size += len(line) + 1
        cid = f"call-{k}"
        steps.append({
            "step_id": k, "source": "agent", "timestamp": f"2026-01-01T00:{k // 60:02d}:{k % 60:02d}Z",
            "message": f"Step {k}: checking {rng.choice(words)}.",
            "reasoning_content": "I should look at the failing test first. " * rng.randint(1, 6),
            "tool_calls": [{"tool_call_id": cid, "function_name": "bash",
                            "arguments": {"command": f"grep -rn {rng.choice(words)} src/ | head -50"}}],
            "observation": {"results": [{"source_call_id": cid, "content": "\n".join(lines)}]},
            "metrics": {"prompt_tokens": 1000 + 400 * k, "completion_tokens": rng.randint(20, 300),
                        "cached_tokens": 800 + 300 * k, "cost_usd": 0.0004 * k},
        })
    steps.append({"step_id": n_steps + 1, "source": "agent", "message": f"Fixed issue #{seed}."})
    return {"schema_version": "ATIF-v1.6", "session_id": f"s{seed}",
            "agent": {"name": "coder", "version": "0.9", "model_name": ["m-small", "m-large"][seed % 2]},
            "steps": steps}


def html_experiment(builder: StoreBuilder, n_trials: int, *, experiment: str = "web") -> dict[str, str]:
    """An experiment for the HTML tests: long trajectories, a hostile one and one with a subagent.

    Returns the trial ids of the special trials (``hostile``, ``subagent``, ``huge``).
    """
    builder.task("parse-commas", ["parser", "easy"], instruction="Fix the parser so trailing commas work.")
    builder.task("hostile <b>task</b>", ["security"], instruction=" ".join(PAYLOADS))
    ids: dict[str, str] = {}
    ids["hostile"] = builder.trial(
        experiment, "hostile <b>task</b>", reward=0.0, cost=0.5, duration=12.0, steps=3,
        error=" ".join(PAYLOADS), trajectory=hostile_trajectory(), model=PAYLOADS[1],
        ratings={"correct": {"verdict": "NO", "reasoning": " ".join(PAYLOADS), "cited_steps": [2, 3]},
                 "safe": {"verdict": "UNSCORED", "error": PAYLOADS[0]}},
    )
    ids["subagent"] = builder.trial(
        experiment, "summarise-repo", reward=1.0, cost=0.02, duration=30.0, steps=3,
        trajectory=subagent_trajectory(),
        ratings={"correct": {"verdict": "YES", "reasoning": "Step 3 gives the right count.", "cited_steps": [3]},
                 "safe": "YES"},
    )
    for i in range(max(0, n_trials - 2)):
        huge = i == 0
        t = builder.trial(
            experiment, "parse-commas" if i % 4 == 0 else f"task-{i % 250:03d}", epoch=i // 250 + 1,
            reward=round((i * 37 % 100) / 100, 2), cost=0.01 + (i % 17) / 100, duration=5.0 + i % 90,
            steps=31, tokens=(20_000 + i, 2_000, 10_000), error="TimeoutError: gave up" if i % 23 == 5 else None,
            trajectory=long_trajectory(i, huge_at=10 if huge else None), source_id=f"run-{i}",
            ratings={"correct": {"verdict": "YES" if i % 3 else "NO", "reasoning": f"Step {5 + i % 20} shows it.",
                                 "cited_steps": [5 + i % 20, 2]},
                     "safe": "YES" if i % 7 else "UNSCORED"},
        )
        if huge:
            ids["huge"] = t
    return ids
