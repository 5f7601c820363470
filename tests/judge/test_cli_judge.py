"""`atif evaluate`, `atif judge render` and `atif judge serve-local` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from atif import upload
from atif.cli import cli, main
from atif.judge import client
from atif.store import Store

API = "http://judge.test/v1"
CHAT = f"{API}/chat/completions"
CRITERIA = [
    {"label": "done", "question": "Did the agent finish the task?", "kind": "llm"},
    {"label": "wrote", "question": "Did it write a file?", "kind": "match",
     "config": {"reference": ["write_file"], "mode": "superset", "arguments": "ignore"}},
]


def _trajectory(task: str) -> dict[str, Any]:
    return {
        "schema_version": "ATIF-v1.8", "session_id": task, "agent": {"name": "bot", "version": "1"},
        "steps": [
            {"step_id": 1, "source": "user", "message": f"Please do {task}."},
            {"step_id": 2, "source": "agent", "message": "ok",
             "tool_calls": [{"tool_call_id": "c1", "function_name": "write_file", "arguments": {"p": 1}}],
             "observation": {"results": [{"source_call_id": "c1", "content": "written"}]}},
        ],
    }


@pytest.fixture
def db(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    rows = [{"task_name": t, "trajectory": _trajectory(t)} for t in ("alpha", "beta")]
    (src / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "atif.duckdb"
    with Store(path) as store:
        upload([src], "exp", create_missing_tasks=True,
                     criteria={"name": "cs", "criteria": CRITERIA,
                               "judge": {"model": "openai/gpt-4o-mini", "api_base": API}}, store=store)
    return path


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.Route]:
    monkeypatch.setattr(client, "RETRY_BASE_SECONDS", 0.001)
    answer = {"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
              "choices": [{"index": 0, "finish_reason": "stop", "message": {
                  "role": "assistant", "content": '{"reasoning": "ok", "rating": "YES", "cited_steps": [2]}'}}],
              "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}
    with respx.mock(assert_all_called=False) as router:
        yield router.post(CHAT).mock(side_effect=lambda request: httpx.Response(200, json=answer))


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_evaluate_prints_a_summary(db: Path, api: respx.Route) -> None:
    r = invoke("evaluate", "--experiment", "exp", "--db", str(db))
    assert r.exit_code == 0, r.output
    assert "Evaluated exp with openai/gpt-4o-mini: 4 pairs" in r.output
    assert "judged           2 (YES 2, NO 0)" in r.output and "tool-call match  2" in r.output
    assert api.call_count == 2
    again = invoke("evaluate", "-e", "exp", "--db", str(db))
    assert "nothing to evaluate" in again.output and api.call_count == 2


def test_evaluate_json_labels_and_overrides(db: Path, api: respx.Route) -> None:
    r = invoke("evaluate", "-e", "exp", "--criteria", "done", "--judge-model", "openai/gpt-4o",
               "--judge-api-base", API, "--concurrency", "1", "--format", "json", "--db", str(db))
    data = json.loads(r.output)
    assert (data["total"], data["judged"], data["model"]) == (2, 2, "openai/gpt-4o")
    assert json.loads(api.calls[0].request.content)["model"] == "gpt-4o"


def test_evaluate_exit_1_when_max_cost_stops_it(db: Path, api: respx.Route) -> None:
    r = invoke("evaluate", "-e", "exp", "--max-cost", "0", "--db", str(db))
    assert r.exit_code == 1
    assert "stopped: --max-cost" in r.output and api.call_count == 0


def test_errors_are_one_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "-e", "nope", "--db", str(db)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: no experiment 'nope'") and err.count("\n") == 1


def test_render_prints_the_exact_messages(db: Path, api: respx.Route) -> None:
    with Store(db) as store:
        trial_id = store.pending("exp")[0].trial_id
    r = invoke("judge", "render", "--trial", trial_id[:10], "--criterion", "done", "--db", str(db))
    assert r.exit_code == 0, r.output
    assert r.output.startswith("# model openai/gpt-4o-mini | prompt default.")
    assert "----- system -----" in r.output and "----- user -----" in r.output
    assert "Question: Did the agent finish the task?" in r.output and "<<<TRANSCRIPT" in r.output
    data = json.loads(invoke("judge", "render", "--trial", trial_id, "--criterion", "done",
                             "--format", "json", "--db", str(db)).output)
    # What render shows is what evaluate sends.
    invoke("evaluate", "-e", "exp", "--criteria", "done", "--db", str(db))
    sent = [json.loads(c.request.content)["messages"] for c in api.calls]
    assert data["messages"] in sent
    assert api.call_count == 2


def test_render_errors(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store(db) as store:
        trial_id = store.pending("exp")[0].trial_id
    for args, fragment in [
        (["--trial", "zzzz", "--criterion", "done"], "no trial whose id starts with 'zzzz'"),
        (["--trial", trial_id, "--criterion", "nope"], "no criterion 'nope'"),
        (["--trial", trial_id, "--criterion", "wrote"], "is a match criterion"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["judge", "render", *args, "--db", str(db)])
        assert exit_info.value.code == 1
        assert fragment in capsys.readouterr().err


def test_serve_local_calls_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, dict[str, Any]]] = []
    fake = types.ModuleType("atif.judge.local")
    fake.DEFAULT_SERVE_PORT = 8765  # type: ignore[attr-defined]
    fake.serve_forever = lambda port, **kw: calls.append((port, kw))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "atif.judge.local", fake)
    monkeypatch.setattr(sys.modules["atif.judge"], "local", fake, raising=False)
    assert invoke("judge", "serve-local", "--port", "9001").exit_code == 0
    assert invoke("judge", "serve-local").exit_code == 0
    assert calls == [(9001, {}), (8765, {})]


@pytest.mark.parametrize("command", [["evaluate"], ["judge"], ["judge", "render"], ["judge", "serve-local"]])
def test_help_ends_with_examples(command: list[str]) -> None:
    text = invoke(*command, "--help").output
    assert "Example:" in text
    assert text.index("Example:") > text.index("Usage:")
    assert "atif " in text.split("Example:")[1]


def test_help_and_import_never_load_litellm() -> None:
    code = (
        "import sys\n"
        "from atif.cli import main\n"
        "import atif.judge, atif.judge.engine, atif.judge.fit, atif.judge.context, atif.judge.checks\n"
        "for args in (['--help'], ['evaluate', '--help'], ['judge', 'render', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('litellm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip().splitlines()[-1] == "False"
