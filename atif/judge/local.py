"""The offline judge: a small GGUF model served in-process by llama.cpp, no API key, no internet.

A judge model string ``local/<name>`` names an entry of ``LOCAL_MODELS``, whose verified
weights :mod:`atif.judge.weights` provides. ``LocalServer`` runs llama.cpp's OpenAI-compatible
server inside this process (``xllamacpp``) on an ephemeral loopback port, so the judge talks
to it through the same litellm path as any hosted model (``litellm_kwargs()``); its native log
lines go to a file under the atif home, never to the terminal, and it counts prompt tokens with
the served model's own template and tokenizer. ``model_table`` lists the models for
``atif judge models``.

Nothing here imports litellm, and ``xllamacpp`` is imported only when a server starts, so
importing this module costs nothing when the local judge is not used.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from atif.errors import JudgeError
from atif.judge.weights import (
    DEFAULT_LOCAL_MODEL,
    INSTALL_HINT,
    LOCAL_MODELS,
    LOCAL_PREFIX,
    MEASURED,
    LocalModelSpec,
    atif_home,
    ensure_model,
    installed,
    is_local_model,
    local_model_spec,
)

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "DEFAULT_SERVE_PORT",
    "INSTALL_HINT",
    "LOCAL_MODELS",
    "LOCAL_PREFIX",
    "MEASURED",
    "YES_NO_GRAMMAR",
    "LocalModelSpec",
    "LocalServer",
    "atif_home",
    "default_threads",
    "ensure_model",
    "installed",
    "is_local_model",
    "local_model_spec",
    "log_path",
    "measure_speed",
    "measured",
    "model_table",
    "serve_forever",
]

YES_NO_GRAMMAR = 'root ::= ("YES" | "NO")'
"""GBNF that lets the model say nothing but YES or NO (request body field ``grammar``)."""

DEFAULT_SERVE_PORT = 8765
"""Port of ``atif judge serve-local`` when none is given."""


def log_path() -> Path:
    """Where the in-process llama.cpp server writes its log: ``atif_home()/logs/llama-server.log``."""
    return atif_home() / "logs" / "llama-server.log"


class _QuietNative:
    """Sends file descriptor 2, where llama.cpp writes its log, to the log file while a server runs.

    Python's own ``sys.stderr`` (atif's messages, the progress bar) is moved to a copy of the
    terminal's descriptor first, so only the native library's lines are diverted. Servers may
    nest (a count says when the last one stops).
    """

    _lock = threading.Lock()
    _depth = 0
    _saved_fd: int | None = None
    _saved_stream: Any = None

    @classmethod
    def enter(cls, path: Path) -> None:
        with cls._lock:
            cls._depth += 1
            if cls._depth > 1:
                return
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError:
                return  # no writable home: the log stays on the terminal, as before
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            cls._saved_fd = os.dup(2)
            os.dup2(log, 2)
            os.close(log)
            if _fileno(sys.stderr) == 2:
                cls._saved_stream = sys.stderr
                terminal = open(os.dup(cls._saved_fd), "w", buffering=1,  # noqa: SIM115 - closed in leave()
                                   encoding=sys.stderr.encoding or "utf-8", errors="backslashreplace")
                sys.stderr = terminal

    @classmethod
    def leave(cls) -> None:
        with cls._lock:
            cls._depth = max(0, cls._depth - 1)
            if cls._depth or cls._saved_fd is None:
                return
            if cls._saved_stream is not None:
                diverted, sys.stderr = sys.stderr, cls._saved_stream
                cls._saved_stream = None
                with contextlib.suppress(OSError, ValueError):
                    diverted.close()
            os.dup2(cls._saved_fd, 2)
            os.close(cls._saved_fd)
            cls._saved_fd = None


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def default_threads() -> int:
    """CPU threads for llama.cpp: two, but one core fewer than the machine has unless both are idle.

    llama.cpp's threads meet at a barrier after every layer, so one thread stalled by any
    other busy process stalls them all: on a 2-core machine with one core taken, two
    threads generated ~1 token/s where one thread kept ~9. On a 2-core machine whose cores
    are both idle when the server starts, two threads read a 2,937-token prompt in 28 s
    instead of 52 s (``bench/judge_long``), so both are used then. ``ATIF_LOCAL_THREADS``
    sets the number outright.
    """
    given = os.environ.get("ATIF_LOCAL_THREADS", "").strip()
    if given:
        try:
            return max(1, int(given))
        except ValueError:
            raise JudgeError(f"ATIF_LOCAL_THREADS={given!r}: expected a whole number of threads") from None
    cores = os.cpu_count() or 1
    if cores == 2:
        idle = idle_cores()
        if idle is not None and idle >= 1.75:
            return 2
    return max(1, min(2, cores - 1))


def idle_cores(seconds: float = 0.25) -> float | None:
    """How many cores were idle over the next ``seconds`` (``/proc/stat``), or None where it cannot tell."""

    def sample() -> tuple[int, int] | None:
        try:
            with open("/proc/stat", "rb") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != b"cpu":
            return None
        ticks = [int(v) for v in fields[1:]]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        return idle, sum(ticks[:8])

    first = sample()
    time.sleep(seconds)
    second = sample()
    if first is None or second is None or second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * (os.cpu_count() or 1)


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise JudgeError(f"the local judge needs the llama.cpp runtime (xllamacpp): {INSTALL_HINT}") from None
    return xllamacpp


class LocalServer:
    """llama.cpp's OpenAI-compatible server for one local model, inside this process.

    ``start()`` verifies the weights, loads them (about 1-2 s, ~700 MiB resident at the
    default 8192-token context) and returns once ``/health`` answers. The server listens
    on loopback only, on an ephemeral port unless one is given, and wants a bearer key
    (``api_key``, random per server) so neither a browser page nor another local user can
    read prompts through it; its web UI and ``/slots`` endpoint are off, and CORS allows
    no origin. One slot serves requests in turn, which keeps a trajectory's prefix in the
    KV cache across its criteria.

    Example::

        with LocalServer() as server:
            litellm.completion(**server.litellm_kwargs(), messages=[...])
    """

    def __init__(
        self,
        model: str = DEFAULT_LOCAL_MODEL,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        api_key: str | None = None,
        verbosity: int = 1,
        startup_timeout: float = 120.0,
        quiet: bool = True,
    ) -> None:
        self.spec = local_model_spec(model)
        if n_ctx is not None and not 256 <= n_ctx <= self.spec.n_ctx_train:
            raise JudgeError(
                f"context size {n_ctx} for local/{self.spec.name} must be between 256 and {self.spec.n_ctx_train}"
            )
        self.n_ctx = n_ctx or self.spec.n_ctx
        self.n_threads = n_threads or default_threads()
        self.port = port
        self.host = host
        self.api_key = api_key if api_key is not None else secrets.token_urlsafe(24)
        """Bearer key every request must carry; empty string means none is required."""
        self.verbosity = verbosity
        self.startup_timeout = startup_timeout
        self.quiet = quiet
        """Send llama.cpp's log lines to :func:`log_path` instead of the terminal."""
        self._quieted = False
        self._http: Any = None
        self._server: Any = None
        self._address: str | None = None

    @property
    def model_alias(self) -> str:
        """The model id the server answers to."""
        return self.spec.alias

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._server is not None

    @property
    def address(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._address is None:
            raise JudgeError("the local judge server is not running")
        return self._address

    @property
    def api_base(self) -> str:
        """OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``."""
        return self.address + "/v1"

    def litellm_kwargs(self) -> dict[str, str]:
        """``model``, ``api_base`` and ``api_key`` for a litellm call to this server."""
        return {
            "model": f"openai/{self.model_alias}",
            "api_base": self.api_base,
            "api_key": self.api_key or "none",
        }

    def start(self) -> Self:
        """Verify and load the model, start serving, and wait until ``/health`` answers."""
        if self._server is not None:
            return self
        xllamacpp = _import_xllamacpp()
        path = ensure_model(self.spec.name)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = {self.spec.alias}
        params.hostnames = [self.host]
        params.port = self.port
        params.n_ctx = self.n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = self.n_threads
        params.cpuparams_batch.n_threads = self.n_threads
        params.verbosity = self.verbosity
        params.ui = False
        params.endpoint_slots = False
        params.cors_origins = ""
        if self.api_key:
            params.api_keys = [self.api_key]
        if self.quiet and not self._quieted:
            _QuietNative.enter(log_path())
            self._quieted = True
        try:
            server = xllamacpp.Server(params)
        except RuntimeError as exc:
            self.stop()
            where = f"{self.host}:{self.port}" if self.port else self.host
            raise JudgeError(
                f"the local judge server did not start ({exc}); is port {where} already in use, "
                f"or is {path} unreadable? (its log: {log_path()})"
            ) from exc
        self._server = server
        self._address = str(server.listening_address).rstrip("/")
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        import httpx

        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                # trust_env=False: a user HTTP(S)_PROXY must not capture loopback traffic.
                response = httpx.get(self.address + "/health", timeout=5.0, trust_env=False)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        raise JudgeError(
            f"the local judge server at {self.address} was not healthy after {self.startup_timeout:g} s ({last})"
        )

    def count_tokens(self, messages: Sequence[dict[str, Any]]) -> int:
        """Prompt tokens of ``messages`` exactly as the server will see them.

        The server applies the model's own chat template (``/apply-template``) and tokenizer
        (``/tokenize``), so a prompt counted within the context never overflows it.
        """
        import httpx

        if self._http is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._http = httpx.Client(base_url=self.address, headers=headers, timeout=60.0, trust_env=False)
        try:
            applied = self._http.post("/apply-template", json={"messages": list(messages)})
            applied.raise_for_status()
            counted = self._http.post("/tokenize", json={"content": applied.json()["prompt"], "add_special": True,
                                                         "parse_special": True})
            counted.raise_for_status()
            return len(counted.json()["tokens"])
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            raise JudgeError(f"the local judge server could not count a prompt's tokens: {exc}") from exc

    def stop(self) -> None:
        """Stop serving and free the model (idempotent)."""
        server, self._server, self._address = self._server, None, None
        http, self._http = self._http, None
        if http is not None:
            http.close()
        # The native server shuts down and frees its memory when its last reference goes.
        del server
        if self._quieted:
            self._quieted = False
            _QuietNative.leave()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self._address or "stopped"
        return f"LocalServer(local/{self.spec.name}, n_ctx={self.n_ctx}, {state})"


def serve_forever(
    port: int = DEFAULT_SERVE_PORT,
    *,
    model: str = DEFAULT_LOCAL_MODEL,
    n_ctx: int | None = None,
    host: str = "127.0.0.1",
    api_key: str = "",
    echo: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve a local judge model in the foreground until Ctrl-C (or until ``stop`` is set).

    Prints the OpenAI-compatible URL and model id, so other tools, or atif runs pointed at
    the URL, can share one loaded model. No key is required unless ``api_key`` is given,
    so give one before binding ``host`` to anything but loopback.
    """
    say = echo or (lambda line: print(line, file=sys.stdout, flush=True))
    server = LocalServer(model, n_ctx=n_ctx, port=port, host=host, api_key=api_key, verbosity=2)
    started = time.monotonic()
    server.start()
    try:
        say(
            f"local/{server.spec.name} loaded in {time.monotonic() - started:.1f} s, context {server.n_ctx} tokens"
        )
        say(f"OpenAI-compatible API at {server.api_base}  (model id: {server.model_alias})")
        say(f"server log: {log_path()}")
        say("Press Ctrl-C to stop.")
        waiter = stop or threading.Event()
        # A timed wait keeps the main thread responsive to Ctrl-C on every platform.
        while not waiter.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        say("stopped")



def measure_speed(model: str = DEFAULT_LOCAL_MODEL, *, prompt_tokens: int = 1024) -> dict[str, float]:
    """Prompt and generation speed of ``model`` on this machine now (tokens per second).

    Starts a server, reads a prompt of about ``prompt_tokens`` tokens and writes 16 tokens.
    """
    import httpx

    with LocalServer(model) as server:
        filler = "The agent called a tool and read its result. " * max(1, prompt_tokens // 10)
        headers = {"Authorization": f"Bearer {server.api_key}"} if server.api_key else {}
        response = httpx.post(
            server.api_base + "/chat/completions", headers=headers, timeout=600.0, trust_env=False,
            json={"model": server.model_alias, "messages": [{"role": "user", "content": filler}],
                  "max_tokens": 16, "temperature": 0, "ignore_eos": True},
        )
        response.raise_for_status()
        timings = response.json().get("timings") or {}
    return {"prompt_per_second": float(timings.get("prompt_per_second") or 0.0),
            "generated_per_second": float(timings.get("predicted_per_second") or 0.0)}


def measured() -> dict[str, dict[str, Any]]:
    """Figures ``bench/judge_long`` recorded per model (``run.py --record``), shipped as ``measured.json``.

    Each: balanced accuracy, TPR, TNR and ROC AUC on the held-out labelled runs, seconds for the
    first and each further criterion, with the date, load average, cores and command of the run.
    Falls back to the figures in :data:`atif.judge.weights.MEASURED` for a model not in the file.
    """
    import json
    from importlib import resources

    try:
        recorded = json.loads(resources.files("atif.judge").joinpath("measured.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    return {name: dict(recorded.get(name) or MEASURED.get(name) or {}) for name in LOCAL_MODELS}


def model_table(*, measure: bool = False) -> list[dict[str, Any]]:
    """Every local model atif can run: size, context, whether installed, recorded and (``measure``) live speed."""
    rows = []
    figures = measured()
    for name, spec in sorted(LOCAL_MODELS.items()):
        row: dict[str, Any] = {
            "model": LOCAL_PREFIX + name, "size_mb": round(spec.size / 1e6), "context": spec.n_ctx,
            "installed": installed(spec), "install": spec.install, "default": name == DEFAULT_LOCAL_MODEL,
            **figures.get(name, {}),
        }
        if measure and row["installed"]:
            row.update(measure_speed(name))
        rows.append(row)
    return rows
