"""HTML pages without a browser: escaping, inert data blocks, CSP, size budget, trial lookup."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from report_builders import (
    PAYLOADS,
    StoreBuilder,
    hostile_trajectory,
    long_trajectory,
    simple_trajectory,
    subagent_trajectory,
)

from atif.cli import cli
from atif.errors import NotFoundError, ReportError
from atif.report import render_report_html, render_trial_html, resolve_trial_id
from atif.report.embed import slim
from atif.store import Store

_BLOB = re.compile(r'<script type="application/x-atif-gzip-base64" id="traj-(\d+)">([A-Za-z0-9+/=]*)</script>')


def _blobs(page: str) -> dict[int, dict]:
    return {int(i): orjson.loads(gzip.decompress(base64.b64decode(b))) for i, b in _BLOB.findall(page)}


def _data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="atif-data">(.*?)</script>', page, re.DOTALL)
    assert m
    return orjson.loads(m.group(1))


@pytest.fixture
def hostile(builder: StoreBuilder) -> tuple[StoreBuilder, str]:
    builder.task("evil <b>task</b>", ["x"], instruction=" ".join(PAYLOADS))
    tid = builder.trial("e", "evil <b>task</b>", reward=0.0, error=" ".join(PAYLOADS), model=PAYLOADS[1],
                        trajectory=hostile_trajectory(),
                        ratings={"c": {"verdict": "NO", "reasoning": PAYLOADS[0], "cited_steps": [2]}})
    builder.trial("e", "fine", reward=1.0, trajectory=simple_trajectory("fine"), ratings={"c": "YES"})
    return builder, tid


def test_untrusted_text_never_appears_as_markup(hostile: tuple[StoreBuilder, str]) -> None:
    b, tid = hostile
    for page in (render_report_html(b.store(), "e"), render_trial_html(b.store(), tid)):
        for p in PAYLOADS:
            assert p.strip() not in page
        for needle in ("<img", "<svg onload", "<script>window", "</script><script>window"):
            assert needle not in page
        # only our own script tags: the data block, one block per trial, the code
        n_trials = len(_data(page)["trials"])
        assert page.count("<script") == n_trials + 2
        assert page.lower().count("</script") == n_trials + 2


def test_server_side_text_is_escaped(hostile: tuple[StoreBuilder, str]) -> None:
    b, _ = hostile
    page = render_report_html(b.store(), "e")
    # the error cause table is rendered in Python
    assert "&lt;script&gt;window.__pwned = &#x27;script&#x27;&lt;/script&gt;" in page


def test_data_blocks_round_trip_exactly(hostile: tuple[StoreBuilder, str]) -> None:
    b, tid = hostile
    b.close()
    with Store.open(b.path, read_only=True) as store:  # a Store also supplies task instructions
        page = render_report_html(store, "e")
    data = _data(page)
    assert data["mode"] == "report" and data["criteria"] == ["c"]
    i = [t["trial_id"] for t in data["trials"]].index(tid)
    row = data["trials"][i]
    assert row["task_name"] == "evil <b>task</b>" and row["error"] == " ".join(PAYLOADS)
    # the trajectory's model name wins over the trial metadata
    assert row["verdicts"] == ["NO"] and row["model_name"] == PAYLOADS[0]
    blob = _blobs(page)[i]
    assert blob["trajectory"] == hostile_trajectory()
    assert blob["ratings"][0]["reasoning"] == PAYLOADS[0] and blob["ratings"][0]["cited_steps"] == [2]
    assert blob["instruction"] == " ".join(PAYLOADS) and blob["capped"] is False


def test_csp_allows_only_the_page_script(hostile: tuple[StoreBuilder, str]) -> None:
    b, _ = hostile
    page = render_report_html(b.store(), "e")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    code = re.search(r"<script>(.*?)</script></body>", page, re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp.split("script-src")[1]
    assert "http://" not in page and "https://" not in page


def test_code_never_assigns_inner_html() -> None:
    from atif.report.assets import JS

    assert "innerHTML" not in JS and "outerHTML" not in JS and "insertAdjacentHTML" not in JS
    assert "eval(" not in JS and "new Function" not in JS and "document.write" not in JS


def test_size_budget_cuts_long_text_with_a_marker(builder: StoreBuilder) -> None:
    for i in range(30):
        builder.trial("big", f"t{i}", reward=0.5, trajectory=long_trajectory(i, n_steps=20, obs_chars=8000),
                      source_id=str(i))
    builder.trial("big", "small", reward=1.0, trajectory=simple_trajectory("small"))
    unlimited = render_report_html(builder.store(), "big", budget_bytes=10**9)
    page = render_report_html(builder.store(), "big", budget_bytes=400_000)
    sizes = [len(b) for _, b in _BLOB.findall(page)]
    assert sum(sizes) <= 400_000 < sum(len(b) for _, b in _BLOB.findall(unlimited))
    blobs = _blobs(page)
    names = [t["task_name"] for t in _data(page)["trials"]]
    small = blobs[names.index("small")]
    assert small["trajectory"] == simple_trajectory("small") and small["capped"] is False
    big = blobs[names.index("t0")]
    assert big["capped"] is True
    text = orjson.dumps(big["trajectory"]).decode()
    assert re.search(r"\u2026\[[0-9,]+ characters elided in this page; the store keeps the full text\]\u2026", text)


def test_slim_drops_token_ids_and_tool_definitions() -> None:
    doc = {"agent": {"name": "a", "tool_definitions": [{"type": "function", "function": {"name": "bash"}}]},
           "steps": [{"step_id": 1, "source": "agent", "message": "x" * 100,
                      "metrics": {"prompt_token_ids": [1, 2], "completion_token_ids": [3], "logprobs": [-0.1],
                                  "prompt_tokens": 2}}]}
    lengths: list[int] = []
    out, cut = slim(doc, 48 + 12, lengths)
    assert out["agent"]["tool_definitions"] == ["bash"]
    assert out["steps"][0]["metrics"] == {"prompt_tokens": 2}
    assert cut and "characters elided" in out["steps"][0]["message"]
    msg = out["steps"][0]["message"]
    assert msg.startswith("x" * 45 + "\n") and msg.endswith("\n" + "x" * 12) and "[43 characters elided" in msg
    assert sorted(lengths) == sorted([1, 5, len(out["steps"][0]["message"])])
    assert slim(doc, 100)[1] is False


def test_max_trials_keeps_errors_and_worst_first(builder: StoreBuilder) -> None:
    for i in range(10):
        builder.trial("e", f"t{i}", reward=i / 10, error="boom" if i == 9 else None)
    page = render_report_html(builder.store(), "e", max_trials=3)
    names = sorted(t["task_name"] for t in _data(page)["trials"])
    assert names == ["t0", "t1", "t9"]
    assert "The table holds 3 of 10 trials" in page
    with pytest.raises(ReportError):
        render_report_html(builder.store(), "e", max_trials=0)


def test_trial_view_and_id_prefixes(builder: StoreBuilder) -> None:
    tid = builder.trial("e", "sub", reward=1.0, trajectory=subagent_trajectory(), ratings={"c": "YES"})
    builder.trial("e", "plain", reward=1.0)
    assert resolve_trial_id(builder.store(), tid[:8]) == tid
    assert resolve_trial_id(builder.store(), tid.upper()) == tid
    with pytest.raises(ReportError, match="too short"):
        resolve_trial_id(builder.store(), "ab")
    with pytest.raises(NotFoundError):
        resolve_trial_id(builder.store(), "ffffffffffff0000")
    page = render_trial_html(builder.store(), tid[:10])
    data = _data(page)
    assert data["mode"] == "trial" and [t["trial_id"] for t in data["trials"]] == [tid]
    assert _blobs(page)[0]["trajectory"]["subagent_trajectories"][0]["trajectory_id"] == "sub-survey"


def test_ambiguous_prefix(builder: StoreBuilder) -> None:
    builder.trial("e", "a", trial_id="abcd" + "1" * 60)
    builder.trial("e", "b", trial_id="abcd" + "2" * 60)
    with pytest.raises(ReportError, match="ambiguous"):
        resolve_trial_id(builder.store(), "abcd")
    assert resolve_trial_id(builder.store(), "abcd2") == "abcd" + "2" * 60


def test_cli_writes_html_md_json(hostile: tuple[StoreBuilder, str], tmp_path: Path) -> None:
    b, tid = hostile
    b.close()
    db = str(tmp_path / "atif.duckdb")
    r = CliRunner().invoke(cli, ["report", "-e", "e", "--format", "html", "-o", str(tmp_path / "r.html"), "--db", db])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    r = CliRunner().invoke(cli, ["view", tid[:12], "-o", str(tmp_path / "v.html"), "--db", db])
    assert r.exit_code == 0, r.output
    assert _data((tmp_path / "v.html").read_text())["mode"] == "trial"
    r = CliRunner().invoke(cli, ["report", "-e", "e", "--format", "json", "--by", "tag", "--db", db])
    assert r.exit_code == 0 and orjson.loads(r.output)["by"] == "tag"
    r = CliRunner().invoke(cli, ["report", "-e", "e", "--db", db])
    assert r.exit_code == 0 and r.output.startswith("## atif report: e")
    r = CliRunner().invoke(cli, ["report", "-e", "e", "--db", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 1 and isinstance(r.exception, NotFoundError)
