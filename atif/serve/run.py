"""Running the app with uvicorn: where it listens, whether it needs a token, the URL to open."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from atif.serve.app import create_app
from atif.serve.security import new_token

__all__ = ["LOCAL_HOSTS", "ServerInfo", "run_server", "server_info"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Hosts the server may bind without a token; any other host requires one."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Where the server listens and how to open it."""

    host: str
    port: int
    token: str | None
    token_generated: bool

    @property
    def url(self) -> str:
        """The address to open in a browser (with the token when one is needed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")


def server_info(host: str, port: int, token: str | None) -> ServerInfo:
    """The listening address and token: a host other than 127.0.0.1 or localhost gets a fresh token if none is given."""
    token = token or None  # an empty token is no token
    if token is None and host not in LOCAL_HOSTS:
        return ServerInfo(host, port, new_token(), True)
    return ServerInfo(host, port, token, False)


def run_server(store_path: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 8000,
               read_only: bool = False, token: str | None = None, reviewer: str | None = None,
               on_start: Callable[[ServerInfo], None] | None = None,
               data_path: str | os.PathLike[str] | None = None) -> None:
    """Serve the app until interrupted; ``on_start`` gets the address once the socket listens."""
    import uvicorn

    info = server_info(host, port, token)
    app = create_app(store_path, read_only=read_only, token=info.token, reviewer=reviewer, data_path=data_path)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and on_start is not None:
                bound = info.port
                for server in self.servers:
                    for sock in server.sockets:
                        bound = sock.getsockname()[1]
                on_start(replace(info, port=bound))

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            server_header=False, date_header=False, proxy_headers=False)
    _Server(config).run()
