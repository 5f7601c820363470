"""The offline judge on long runs: p_yes and thresholds, the compact transcript, exact budgets, a quiet server."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import httpx
import pytest
import respx
from click.testing import CliRunner

from atif.errors import JudgeError
from atif.judge import client, local, weights
from atif.judge.context import StepView
from atif.judge.criteria import parse_criteria
from atif.judge.score import decide, p_yes
from atif.judge.transcript import compact_views
from atif.store import Store
from tests.judge.test_engine import API, CHAT, LLM, build_store, run, trajectory

ROOT = Path(__file__).resolve().parents[2]


def lp(p: float) -> float:
    return math.log(p)


# -- p_yes from the verdict token ------------------------------------------------------------

REASON = [("Reason", [("Reason", lp(0.9))]), ("ing", [("ing", lp(0.9))]), (":", [(":", lp(0.9))]),
          (" the answer is", [(" the answer is", lp(0.9))]), (" yes", [(" yes", lp(0.9))])]


@pytest.mark.parametrize(("tokens", "expected"), [
    # the verdict token's own alternatives decide, normalised over YES and NO
    ([("Answer", [("Answer", lp(0.9))]), (":", [(":", lp(0.9))]),
      (" NO", [(" NO", lp(0.6)), (" YES", lp(0.3)), (" Maybe", lp(0.1))])], 0.3 / 0.9),
    # spellings that start YES or NO count for their side
    ([("Answer: ", [("Answer: ", lp(1.0))]), ("YES", [("YES", lp(0.5)), ("Y", lp(0.1)), ("No", lp(0.2))])],
     0.6 / 0.8),
    # a YES in the reasoning is not the verdict: the one after the last Answer label is
    ([*REASON, ("\nAnswer:", [("\nAnswer:", lp(1.0))]), (" NO", [(" NO", lp(0.8)), (" YES", lp(0.2))])], 0.2),
    # no verdict token at all
    ([("I", [("I", lp(1.0))]), (" think", [(" think", lp(1.0))])], None),
    # a verdict token whose alternatives name neither side
    ([("Answer:", [("Answer:", lp(1.0))]), (" YES", [(" Maybe", lp(0.5))])], None),
    # NONE is not NO
    ([("Answer:", [("Answer:", lp(1.0))]), (" NONE", [(" NONE", lp(1.0))])], None),
])
def test_p_yes_reads_the_verdict_token(tokens: list[Any], expected: float | None) -> None:
    got = p_yes(tokens)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@pytest.mark.parametrize(("score", "word", "threshold", "verdict"), [
    (0.7, "YES", None, "YES"),
    (0.4, "YES", None, "NO"),     # the score, not the word, when there is a score
    (0.6, "YES", 0.65, "NO"),
    (0.65, "NO", 0.65, "YES"),    # at the threshold is YES
    (None, "YES", 0.9, "YES"),    # no log-probabilities: the word
    (0.9, "UNSCORED", None, "UNSCORED"),
])
def test_decide_uses_the_threshold(score: float | None, word: str, threshold: float | None, verdict: str) -> None:
    assert decide(score, word, threshold) == verdict


def test_threshold_is_stored_with_the_criterion() -> None:
    cf = parse_criteria({"name": "s", "criteria": [{"label": "a", "question": "Q?", "threshold": 0.62},
                                                   {"label": "b", "question": "Q?"}]})
    assert cf.criteria[0].config() == {"threshold": 0.62}
    assert cf.criteria[1].config() == {}
    with pytest.raises(Exception, match="threshold"):
        parse_criteria({"name": "s", "criteria": [{"label": "a", "question": "Q?", "threshold": 1.5}]})


def test_logprobs_are_read_from_the_response() -> None:
    response = types.SimpleNamespace(choices=[types.SimpleNamespace(logprobs={"content": [
        {"token": " YES", "logprob": -0.1, "top_logprobs": [{"token": " YES", "logprob": -0.1},
                                                             {"token": " NO", "logprob": -2.0}]}]})])
    assert client._logprobs(response) == [(" YES", [(" YES", -0.1), (" NO", -2.0)])]
    assert client._logprobs(types.SimpleNamespace(choices=[types.SimpleNamespace(logprobs=None)])) is None


# -- the compact transcript ------------------------------------------------------------------

POLICY = "# Policy\n" + "Never refund without a receipt. " * 20


def _views() -> list[StepView]:
    return [
        StepView(step_id=1, source="system", message=POLICY),
        StepView(step_id=2, source="user", message="Refund order 7 please."),
        StepView(step_id=3, source="agent", message="Looking.", tool_calls=[
            {"tool_call_id": "c1", "function_name": "get_order", "arguments": '{"id": 7}'}],
            observations=[{"source_call_id": "c1", "content": "{" + '"item": "lamp", ' * 100 + "}"}]),
        StepView(step_id=4, source="system", message=POLICY),
        StepView(step_id=5, source="agent", message="Refunded " + "x" * 900),
    ]


def test_compact_transcript_cuts_tool_output_and_repeats_but_not_the_conversation() -> None:
    views = _views()
    out = compact_views(views, "f00d")
    assert out is not views
    assert out[0].message == POLICY                       # first time: kept whole
    assert "same text as in step 1" in out[3].message and "f00d" in out[3].message
    assert len(out[2].observations[0]["content"]) < 700 and "chars elided f00d" in out[2].observations[0]["content"]
    assert out[1] is views[1] and out[4].message == views[4].message   # user and agent words stay


def test_compact_transcript_returns_the_same_list_when_nothing_is_long() -> None:
    views = [StepView(step_id=1, source="user", message="hi"), StepView(step_id=2, source="agent", message="hello")]
    assert compact_views(views) is views


# -- the quiet server --------------------------------------------------------------------------


def test_native_log_lines_go_to_the_log_file_and_atif_lines_to_the_terminal(tmp_path: Path) -> None:
    log = tmp_path / "home" / "logs" / "llama-server.log"
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from atif.judge.local import _QuietNative
        _QuietNative.enter(Path({str(log)!r}))
        os.write(2, b"E srv  send_error: task id = 0, error: request exceeds the context\\n")
        print("note: atif's own line", file=sys.stderr)
        _QuietNative.leave()
        os.write(2, b"after: back on the terminal\\n")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          check=True)
    assert "send_error" not in done.stderr
    assert "note: atif's own line" in done.stderr and "after: back on the terminal" in done.stderr
    assert "send_error" in log.read_text()


class _Runtime:
    """A stand-in for xllamacpp whose server writes a native log line when it starts."""

    class CommonParams:
        def __init__(self) -> None:
            self.model = types.SimpleNamespace(path=None)
            self.cpuparams = types.SimpleNamespace(n_threads=0)
            self.cpuparams_batch = types.SimpleNamespace(n_threads=0)

    class Server:
        def __init__(self, params: Any) -> None:
            os.write(2, b"llama_model_loader: loaded meta data\n")
            self.listening_address = "http://127.0.0.1:1"


def test_server_start_sends_native_lines_to_atif_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ATIF_HOME", str(tmp_path))
    monkeypatch.setattr(local, "_import_xllamacpp", lambda: _Runtime)
    monkeypatch.setattr(local, "ensure_model", lambda name: tmp_path / "m.gguf")
    monkeypatch.setattr(local.LocalServer, "_wait_healthy", lambda self: None)
    with local.LocalServer():
        pass
    assert "llama_model_loader" not in capfd.readouterr().err
    assert "llama_model_loader" in local.log_path().read_text()
    assert local.log_path() == tmp_path / "logs" / "llama-server.log"


# -- exact token counts -----------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def test_count_tokens_uses_the_served_template_and_tokenizer(api: respx.MockRouter) -> None:
    server = local.LocalServer(api_key="k")
    server._address = "http://127.0.0.1:9"
    template = api.post("http://127.0.0.1:9/apply-template").mock(
        return_value=httpx.Response(200, json={"prompt": "<|im_start|>user\nhi<|im_end|>"}))
    tokenize = api.post("http://127.0.0.1:9/tokenize").mock(
        return_value=httpx.Response(200, json={"tokens": [1, 2, 3, 4, 5]}))
    assert server.count_tokens([{"role": "user", "content": "hi"}]) == 5
    assert json.loads(template.calls[0].request.content) == {"messages": [{"role": "user", "content": "hi"}]}
    assert json.loads(tokenize.calls[0].request.content)["content"] == "<|im_start|>user\nhi<|im_end|>"
    assert tokenize.calls[0].request.headers["authorization"] == "Bearer k"
    api.post("http://127.0.0.1:9/tokenize").mock(return_value=httpx.Response(500, text="boom"))
    with pytest.raises(JudgeError, match="count a prompt's tokens"):
        server.count_tokens([{"role": "user", "content": "hi"}])
    server.stop()


# -- the engine with a local model ------------------------------------------------------------


class _CountingServer:
    """A LocalServer stand-in with a 2,000-token context and an exact (here: 1 token per 4 chars) counter."""

    counted: ClassVar[list[int]] = []

    def __init__(self, model: str) -> None:
        self.n_ctx = 2000

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def litellm_kwargs(self) -> dict[str, str]:
        return {"model": "openai/qwen-tiny", "api_base": API, "api_key": "k"}

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        n = sum(len(m["content"]) for m in messages) // 4 + 10
        self.counted.append(n)
        return n


def _local(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("atif.judge.local")
    fake.LocalServer = _CountingServer  # type: ignore[attr-defined]
    fake.is_local_model = lambda m: m.startswith("local/")  # type: ignore[attr-defined]
    fake.log_path = lambda: Path("/tmp/llama-server.log")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "atif.judge.local", fake)


def _answer(word: str, yes: float) -> httpx.Response:
    content = f"Reasoning: looked at it\nAnswer: {word}"
    tokens = [{"token": "Reasoning: looked at it\nAnswer:", "logprob": 0.0, "top_logprobs": []},
              {"token": f" {word}", "logprob": math.log(yes if word == "YES" else 1 - yes),
               "top_logprobs": [{"token": " YES", "logprob": math.log(yes)},
                                {"token": " NO", "logprob": math.log(1 - yes)}]}]
    body = {"id": "x", "object": "chat.completion", "created": 1, "model": "qwen-tiny",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                         "logprobs": {"content": tokens}}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 12, "total_tokens": 912}}
    return httpx.Response(200, json=body)


def test_local_ratings_carry_p_yes_and_the_threshold_decides(tmp_path: Path, api: respx.MockRouter,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _local(monkeypatch)
    criteria = [{"label": "done", "question": "Did the agent finish the task?", "kind": "llm",
                 "config": {"threshold": 0.8}}, LLM[1]]
    db = build_store(tmp_path, criteria, judge={"model": "local/qwen-tiny", "api_base": None})
    route = api.post(CHAT).mock(side_effect=lambda request: _answer("YES", 0.7))
    run(db)
    body = json.loads(route.calls[0].request.content)
    assert body["logprobs"] is True and body["top_logprobs"] >= 5
    with Store(db) as store:
        rows = {(r[0], r[1]): r[2:] for r in store.query(
            "select task_name, criterion, verdict, p_yes from ratings")[1]}
    assert rows[("alpha", "done")] == ("NO", pytest.approx(0.7))       # below its 0.8 threshold
    assert rows[("alpha", "polite")] == ("YES", pytest.approx(0.7))    # default 0.5


def test_local_prompts_are_counted_exactly_and_fitted_before_sending(tmp_path: Path, api: respx.MockRouter,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _local(monkeypatch)
    _CountingServer.counted = []
    long_run = trajectory("alpha", observation="row " * 6000, n_extra=40)
    db = build_store(tmp_path, LLM[:1], judge={"model": "local/qwen-tiny", "api_base": None},
                     trials=[{"task_name": "alpha", "trajectory": long_run}])
    route = api.post(CHAT).mock(side_effect=lambda request: _answer("YES", 0.9))
    summary = run(db)
    assert summary.calls == 1 and route.call_count == 1
    sent = json.loads(route.calls[0].request.content)
    assert _CountingServer.counted and _CountingServer.counted[-1] <= 2000 - 64
    assert sum(len(m["content"]) for m in sent["messages"]) // 4 + 10 <= 2000 - 64
    with Store(db) as store:
        assert store.query("select truncated from ratings")[1] == [(True,)]


def test_an_overflow_of_an_exactly_counted_prompt_is_not_retried(tmp_path: Path, api: respx.MockRouter,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _local(monkeypatch)
    db = build_store(tmp_path, LLM[:1], judge={"model": "local/qwen-tiny", "api_base": None})
    route = api.post(CHAT).mock(return_value=httpx.Response(400, json={"error": {
        "message": "request (10880 tokens) exceeds the available context size (8192 tokens)", "type": "error"}}))
    summary = run(db)
    assert route.call_count == 2 and summary.calls == 2   # one call per pair, none repeated
    with Store(db) as store:
        errors = [r[0] for r in store.query("select error from ratings")[1]]
    assert all("context window" in e for e in errors)


# -- atif judge models -------------------------------------------------------------------------


def test_judge_models_lists_the_local_models(monkeypatch: pytest.MonkeyPatch) -> None:
    from atif.cli import cli

    monkeypatch.setattr(local, "installed", lambda spec: True)
    result = CliRunner().invoke(cli, ["judge", "models"])
    assert result.exit_code == 0, result.output
    assert "local/qwen2.5-coder-0.5b  (default): 491 MB, context 8192 tokens, installed" in result.output
    assert "balanced accuracy" in result.output
    result = CliRunner().invoke(cli, ["judge", "models", "--format", "json"])
    rows = json.loads(result.output)
    assert rows[0]["model"] == "local/qwen2.5-coder-0.5b" and rows[0]["installed"] is True


@pytest.mark.parametrize(("scored", "expected"), [
    # separable: the cut falls midway between the classes
    ([(0.9, True), (0.8, True), (0.6, False), (0.5, False)], 0.7),
    # all scores above 0.5 (a model that says YES to everything): the cut still separates
    ([(0.76, True), (0.74, True), (0.71, False), (0.69, False)], 0.725),
    # one class only: nothing to fit
    ([(0.9, True), (0.8, True)], None),
])
def test_fit_threshold_balances_tpr_and_tnr(scored: list[tuple[float, bool]], expected: float | None) -> None:
    from atif.judge.score import fit_threshold

    got = fit_threshold(scored)
    assert got == (pytest.approx(expected) if expected is not None else None)


# -- the official source, pinned -----------------------------------------------------------------


def _hub_spec(monkeypatch: pytest.MonkeyPatch, data: bytes) -> local.LocalModelSpec:
    import dataclasses
    import hashlib

    spec = dataclasses.replace(local.LOCAL_MODELS["qwen2.5-coder-0.5b"], name="hubby", packages=("no-such-dist-x",),
                               sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    monkeypatch.setitem(local.LOCAL_MODELS, "hubby", spec)
    return spec


def _fake_hub(monkeypatch: pytest.MonkeyPatch, served: bytes) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def hf_hub_download(**kwargs: Any) -> str:
        calls.append(kwargs)
        path = Path(kwargs["local_dir"]) / kwargs["filename"]
        path.write_bytes(served)
        return str(path)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download))
    monkeypatch.setattr(weights, "_hub_available", lambda spec: True)
    return calls


def test_without_the_packages_the_model_comes_from_its_pinned_official_revision(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATIF_HOME", str(tmp_path))
    spec = _hub_spec(monkeypatch, b"GGUF weights")
    calls = _fake_hub(monkeypatch, b"GGUF weights")
    path = local.ensure_model("hubby")
    assert path.read_bytes() == b"GGUF weights"
    assert calls == [{"repo_id": "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
                      "filename": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                      "revision": "ebb2015119c907b064c512bf053e945850b5875f", "local_dir": calls[0]["local_dir"]}]
    assert local.ensure_model("hubby") == path and len(calls) == 1   # verified and stamped: no second download
    assert spec.hub_revision and len(spec.hub_revision) == 40


def test_a_hub_file_with_another_digest_is_never_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATIF_HOME", str(tmp_path))
    _hub_spec(monkeypatch, b"GGUF weights")
    _fake_hub(monkeypatch, b"tampered weights")
    with pytest.raises(JudgeError, match="sha256 .* expected"):
        local.ensure_model("hubby")
    assert not list((tmp_path / "models").glob("*.gguf"))


def test_model_source_must_be_known(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATIF_HOME", str(tmp_path))
    monkeypatch.setenv("ATIF_MODEL_SOURCE", "ftp")
    with pytest.raises(JudgeError, match="ATIF_MODEL_SOURCE"):
        local.ensure_model("qwen2.5-coder-0.5b")
