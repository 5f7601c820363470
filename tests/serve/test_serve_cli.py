"""``atif serve`` on the command line: help, lazy imports, the install hint, a real server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from atif.cli import cli


def test_help() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "Example" in result.output and "--read-only" in result.output


def test_atif_help_imports_no_web_stack() -> None:
    code = ("import sys; from atif.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('starlette', 'uvicorn', 'duckdb', 'litellm', 'atif.serve') if m in sys.modules]\n"
            "print('LOADED', bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "serve" in out and out.strip().endswith("LOADED []")


def test_missing_extra_gives_a_one_line_hint(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
            "from atif.cli import main; main(['serve', '--db', 'x.duckdb'])")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == "Error: atif serve needs the serve extra: pip install 'atif[serve]' (starlette, uvicorn)"


def _start(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", "from atif.cli import main; main()", "serve", "--port", "0", *args], cwd=cwd,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, "ATIF_SERVE_TOKEN": ""})
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"(http://\S+)", line)
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no URL printed: {line!r} {proc.stderr.read()}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_serves_on_localhost_without_token(store_path: Path) -> None:
    proc, url = _start(["--db", str(store_path)], store_path.parent)
    try:
        assert url.startswith("http://127.0.0.1:") and "token" not in url
        r = httpx.get(url, timeout=10)
        assert r.status_code == 200 and "mini" in r.text
    finally:
        _stop(proc)


def test_beyond_localhost_a_token_is_generated_and_required(store_path: Path) -> None:
    proc, url = _start(["--db", str(store_path), "--host", "127.0.0.2"], store_path.parent)
    try:
        assert url.startswith("http://127.0.0.2:") and "?token=" in url
        base, _token = url.split("?token=")
        assert httpx.get(base, timeout=10).status_code == 401
        assert httpx.get(base + "api/version", timeout=10).status_code == 401
        assert httpx.get(base, params={"token": "wrong"}, timeout=10).status_code == 401
        with httpx.Client(timeout=10, follow_redirects=True) as c:
            r = c.get(url)
            assert r.status_code == 200 and "mini" in r.text
            assert c.get(base + "api/version").status_code == 200  # the cookie carries it from now on
    finally:
        _stop(proc)
