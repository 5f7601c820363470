"""``atif serve``: a live web app over the store, with a human review queue that feeds calibration.

- ``create_app(store_path, *, read_only=False, token=None, reviewer=None)``: the ASGI app
  (Starlette): experiments, experiment, trial, compare, calibration and review pages.
- ``run_server(store_path, *, host, port, ...)``: serve it with uvicorn.

Needs the ``serve`` extra (``pip install 'atif[serve]'``: starlette and uvicorn).
"""

from __future__ import annotations

from atif.serve.app import create_app
from atif.serve.run import ServerInfo, run_server, server_info

__all__ = ["ServerInfo", "create_app", "run_server", "server_info"]
