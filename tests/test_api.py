"""The public API: every name in ``atif.__all__`` resolves, and importing it never loads litellm."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import atif

SERVE_NAMES = {"create_app", "run_server", "ServerInfo"}
"""Names of the web app, which needs the ``serve`` extra (starlette, uvicorn)."""
HAS_SERVE = importlib.util.find_spec("starlette") is not None
RESOLVABLE = [n for n in atif.__all__ if HAS_SERVE or n not in SERVE_NAMES]


def test_every_public_name_resolves() -> None:
    for name in RESOLVABLE:
        assert getattr(atif, name) is not None, name


def test_errors_share_one_root() -> None:
    errors = [getattr(atif, n) for n in atif.__all__ if n.endswith("Error")]
    assert len(errors) >= 10
    assert all(issubclass(e, atif.AtifError) for e in errors)


def test_public_api_does_not_import_litellm() -> None:
    code = f"import sys, atif\nfor n in {RESOLVABLE!r}: getattr(atif, n)\nprint('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
