"""The judge against a real OpenAI-compatible HTTP server on 127.0.0.1 that the test runs itself."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest

import atif
from atif.judge import client
from atif.judge.engine import evaluate
from atif.store import Store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "fixtures" / "harbor-golden" / "harbor-v0.1.31" / "tests" / "golden"
CRITERIA = [
    {"label": "hello-file", "question": "Did the agent create hello.txt?", "kind": "llm"},
    {"label": "finished", "question": "Did the agent say it finished?", "kind": "llm"},
]


class JudgeServer:
    """A tiny OpenAI-compatible chat server: answers with ``decide(body)``, after ``delay`` seconds."""

    def __init__(self, decide: Callable[[dict[str, Any]], tuple[int, dict[str, Any], dict[str, str]]],
                 delay: float = 0.0) -> None:
        self.decide = decide
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.answered: list[tuple[float, dict[str, Any]]] = []
        """(time.monotonic() when the whole answer was sent, the request), for 200 answers."""
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                if outer.delay:
                    time.sleep(outer.delay)
                status, payload, headers = outer.decide(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                if status == 200:
                    with outer.lock:
                        outer.answered.append((time.monotonic(), body))

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a killed client resets its connections; that is the point of some tests

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def answer(content: str, prompt_tokens: int = 250, completion_tokens: int = 30) -> tuple[int, dict[str, Any], dict[str, str]]:
    return 200, {
        "id": "chatcmpl-local", "object": "chat.completion", "created": int(time.time()), "model": "house-judge",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }, {}


def reads_the_transcript(body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A judge that really looks: YES when the transcript shows what the question asks about."""
    user = body["messages"][-1]["content"]
    transcript = user[user.index("<<<TRANSCRIPT"):user.index("<<<END TRANSCRIPT")]
    if "hello.txt" in user.split("\n")[0]:
        yes = "File created successfully at: /app/hello.txt" in transcript
    else:
        yes = "All done!" in transcript or "Task complete" in transcript
    return answer(json.dumps({"reasoning": "read the transcript", "rating": "YES" if yes else "NO", "cited_steps": [5]}))


def upload(db: Path, judge: dict[str, Any], files: list[Path] | None = None) -> None:
    files = files or [GOLDEN / "openhands" / "hello-world.trajectory.json",
                      GOLDEN / "terminus_2" / "hello-world-timeout.trajectory.json"]
    with Store(db) as store:
        result = atif.upload(files, "it", create_missing_tasks=True,
                             criteria={"name": "it-set", "criteria": CRITERIA, "judge": judge}, store=store)
        assert result.ok


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "RETRY_BASE_SECONDS", 0.01)


def test_evaluate_against_a_real_server_then_rerun_from_cache(tmp_path: Path) -> None:
    db = tmp_path / "it.duckdb"
    with JudgeServer(reads_the_transcript) as server:
        upload(db, {"model": "openai/house-judge", "api_base": server.api_base, "concurrency": 4})
        with Store(db) as store:
            summary = evaluate(store, "it")
            rows = store.query("SELECT t.task_name, r.criterion, r.verdict, r.reasoning, r.prompt_tokens, "
                               "r.completion_tokens, r.latency_ms, r.cost_usd, r.cache_key "
                               "FROM rating_data r JOIN trial_data t USING (trial_id) ORDER BY ALL")[1]
        assert len(server.requests) == 4 and summary.judged == 4
        by = {(r[0], r[1]): r for r in rows}
        verdicts = {key: row[2] for key, row in by.items()}
        assert verdicts == {("openhands", "hello-file"): "YES", ("openhands", "finished"): "YES",
                            ("terminus_2", "hello-file"): "NO", ("terminus_2", "finished"): "NO"}
        for row in rows:
            assert row[3] == "read the transcript" and (row[4], row[5]) == (250, 30)
            assert row[6] > 0 and row[7] is None and len(row[8]) == 64
        assert all(r["temperature"] == 0 and r["model"] == "house-judge" for r in server.requests)

        with Store(db) as store:
            again = evaluate(store, "it")
            store._db.execute("DELETE FROM rating_data")
            cached = evaluate(store, "it")
        assert again.total == 0 and cached.cached == 4 and len(server.requests) == 4


def test_rate_limit_with_retry_after_over_real_http(tmp_path: Path) -> None:
    db = tmp_path / "it.duckdb"
    state = {"n": 0}

    def limited(body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        state["n"] += 1
        if state["n"] == 1:
            return 429, {"error": {"message": "rate limited", "type": "rate_limit"}}, {"Retry-After": "1"}
        if state["n"] == 2:
            return 503, {"error": {"message": "overloaded"}}, {}
        return reads_the_transcript(body)

    with JudgeServer(limited) as server:
        upload(db, {"model": "openai/house-judge", "api_base": server.api_base, "concurrency": 1},
               files=[GOLDEN / "openhands" / "hello-world.trajectory.json"])
        started = time.perf_counter()
        with Store(db) as store:
            summary = evaluate(store, "it", labels=["hello-file"])
        assert time.perf_counter() - started >= 1.0
    assert summary.judged == 1 and summary.retries == 2 and len(server.requests) == 3


CHILD = """
import sys
from atif.store import Store
from atif.judge.engine import evaluate
with Store(sys.argv[1]) as store:
    evaluate(store, "it", concurrency=2)
"""


def test_kill_9_loses_only_the_calls_in_flight(tmp_path: Path) -> None:
    db = tmp_path / "it.duckdb"
    trials = tmp_path / "trials.jsonl"
    base = json.loads((GOLDEN / "openhands" / "hello-world.trajectory.json").read_text())
    with trials.open("w") as f:
        for i in range(12):
            f.write(json.dumps({"task_name": f"task-{i}", "trajectory": {**base, "session_id": f"s{i}"}}) + "\n")
    with JudgeServer(reads_the_transcript, delay=0.25) as server:
        with Store(db) as store:
            atif.upload([trials], "it", create_missing_tasks=True,
                        criteria={"name": "it-set", "criteria": CRITERIA[:1],
                                   "judge": {"model": "openai/house-judge", "api_base": server.api_base}}, store=store)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(db)], cwd=ROOT, env=dict(os.environ))
        deadline = time.monotonic() + 60
        while len(server.requests) < 6 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        asked_before = len(server.requests)
        assert 6 <= asked_before < 12

        with Store(db) as store:
            saved = store.query("SELECT count(*) FROM rating_data")[1][0][0]
            # Every answer that came back before the kill, except those in flight, is stored.
            assert saved >= asked_before - 2 - 2
            summary = evaluate(store, "it")
            final = store.query("SELECT count(*), count(*) FILTER (WHERE verdict = 'YES') FROM rating_data")[1][0]
        assert final == (12, 12)
        assert summary.total == 12 - saved
        # The re-run asked only for what was never answered (the cache covers answers not yet saved).
        assert len(server.requests) - asked_before <= 12 - saved


CHILD_4 = """
import sys
from atif.store import Store
from atif.judge.engine import evaluate
with Store(sys.argv[1]) as store:
    evaluate(store, "it", concurrency=4)
"""


def _readme_promise() -> float:
    """The window of lost answers the README promises for a killed ``atif evaluate``, in seconds."""
    text = " ".join((ROOT / "README.md").read_text().split())
    match = re.search(r"loses the calls in flight and at most the answers that arrived in its last ([\d.]+) s", text)
    assert match, "the README states what a killed run loses"
    return float(match.group(1))


def test_kill_9_at_concurrency_4_loses_only_the_last_fraction_of_a_second(tmp_path: Path) -> None:
    window = _readme_promise()
    db = tmp_path / "it.duckdb"
    trials = tmp_path / "trials.jsonl"
    base = json.loads((GOLDEN / "openhands" / "hello-world.trajectory.json").read_text())
    with trials.open("w") as f:
        for i in range(80):
            f.write(json.dumps({"task_name": f"task-{i}", "trajectory": {**base, "session_id": f"s{i}"}}) + "\n")
    with JudgeServer(reads_the_transcript, delay=0.05) as server:
        with Store(db) as store:
            atif.upload([trials], "it", store=store, create_missing_tasks=True,
                        criteria={"name": "it-set", "criteria": CRITERIA[:1],
                                  "judge": {"model": "openai/house-judge", "api_base": server.api_base}})
        child = subprocess.Popen([sys.executable, "-c", CHILD_4, str(db)], cwd=ROOT, env=dict(os.environ))
        deadline = time.monotonic() + 60
        while len(server.answered) < 30 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        killed = time.monotonic()
        child.wait()
        with server.lock:
            answered = [(killed - sent, body) for sent, body in server.answered if sent <= killed]
        assert 30 <= len(answered) < 80

        with Store(db) as store:
            saved = {row["task_name"] for row in store.read("SELECT task_name FROM ratings")}
        lost = sorted(age for age, body in answered if _task_of(body) not in saved)
        # What the kill cost: answers that came back but were not yet committed, all of them recent.
        assert all(age < window for age in lost), f"{len(lost)} answers lost, aged (s) {lost}; promised < {window}"

        asked_before = len(server.requests)
        with Store(db) as store:
            summary = evaluate(store, "it")
            final = store.read_one("SELECT count(*), count(*) FILTER (WHERE verdict = 'YES') FROM ratings")
        assert final == (80, 80) and summary.total == 80 - len(saved)
        # The re-run asks only for pairs never answered or lost (the cache covers the rest).
        assert len(server.requests) - asked_before <= 80 - len(saved)


def _task_of(body: dict[str, Any]) -> str:
    match = re.search(r"\b(task-\d+)\b", body["messages"][-1]["content"])
    assert match
    return match.group(1)
