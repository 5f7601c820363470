"""The judge's only door to litellm: one chat completion with retries, token counts, prices.

litellm takes seconds to import, so it is imported inside these functions, on the first
judgement, never at module import. ``LITELLM_LOCAL_MODEL_COST_MAP`` is set (unless the user
set it) so litellm reads its bundled price list instead of fetching one from the internet.

Retries belong to tenacity, not litellm (``num_retries=0``, ``max_retries=0``): exponential
backoff with full jitter on rate limits (honouring ``Retry-After``), 5xx answers, timeouts and
connection errors; none on bad requests, authentication errors or context-window overflow.

What litellm says about a model (its input budget, whether it takes a JSON schema, whether its
tokenizer is known) is kept in ``ATIF_HOME/model-facts.json``, keyed by litellm's version and
price-list source: a run whose every answer is cached then needs no litellm at all.
"""

from __future__ import annotations

import contextlib
import email.utils
import importlib.metadata
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

__all__ = [
    "Answer",
    "Failure",
    "FailureKind",
    "ModelFacts",
    "complete",
    "count_tokens_fn",
    "estimate_cost",
    "litellm_module",
    "max_input_tokens",
    "model_facts",
    "structured_support",
]

RETRY_BASE_SECONDS = 1.0
"""First backoff step; doubles each attempt (with full jitter)."""
RETRY_MAX_SECONDS = 60.0
"""Longest single wait, also the cap on a server's ``Retry-After``."""

FailureKind = Literal[
    "rate_limit", "server", "timeout", "connection", "context_window", "bad_request", "auth", "not_found", "other"
]
_RETRYABLE = frozenset({"rate_limit", "server", "timeout", "connection"})


def litellm_module() -> Any:
    """litellm, imported on first use and told to stay quiet and offline."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # litellm's own warnings (event-loop bookkeeping, cost-map notes) are not the user's business;
    # LITELLM_LOG=... still turns them on.
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


@dataclass(slots=True)
class Answer:
    """One completed call."""

    content: str | None
    """The text of the first choice (None for an empty choice list or no content)."""
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    cost_usd: float | None
    """Price of the call; None when litellm does not know the model's price (never 0)."""
    latency_ms: float
    """Wall time of the successful attempt."""
    attempts: int
    """Attempts made, 1 when the first succeeded."""
    finish_reason: str | None = None
    logprobs: list[tuple[str, list[tuple[str, float]]]] | None = None
    """Each generated token with its most likely alternatives and their log-probabilities,
    when the request asked for them and the provider returned them (else None)."""


@dataclass(slots=True)
class Failure:
    """A call that did not produce an answer (after any retries)."""

    kind: FailureKind
    message: str
    attempts: int
    status: int | None = None

    @property
    def retryable(self) -> bool:
        """True for rate limits, 5xx, timeouts and connection errors."""
        return self.kind in _RETRYABLE


# -- model facts --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _model_info(model: str) -> dict[str, Any] | None:
    litellm = litellm_module()
    try:
        info = litellm.get_model_info(model)
    except Exception:  # noqa: BLE001 (litellm raises anything)
        return None
    return dict(info) if info else None


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What litellm knows of one model string, as the judge uses it."""

    known: bool
    """litellm has the model in its list (so it has a tokenizer and maybe a price for it)."""
    max_input_tokens: int | None
    """Its input budget, None when litellm does not say."""
    structured: Literal["json_schema", "json", "text"]
    """The best structured-output mode it takes."""


def _facts_source() -> str:
    """Which litellm answers the facts: its version and whether it reads its bundled price list."""
    try:
        version = importlib.metadata.version("litellm")
    except importlib.metadata.PackageNotFoundError:
        version = "none"
    return f"{version}|{os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP', 'True')}"


def _facts_path() -> Any:
    from atif.judge.weights import atif_home

    return atif_home() / "model-facts.json"


def _read_facts() -> dict[str, Any]:
    try:
        data = json.loads(_facts_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("source") == _facts_source() else {}


def _write_facts(model: str, facts: ModelFacts) -> None:
    """Add ``model``'s facts to the memo file (a failed write only costs a litellm import later)."""
    data = _read_facts()
    models = dict(data.get("models") or {})
    models[model] = {"known": facts.known, "max_input_tokens": facts.max_input_tokens, "structured": facts.structured}
    path = _facts_path()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".model-facts.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"source": _facts_source(), "models": models}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)


_FACTS: dict[tuple[str, str, str], ModelFacts] = {}


def model_facts(model: str) -> ModelFacts:
    """litellm's facts about ``model``: from the memo file when this litellm answered them before.

    Asking litellm imports it (seconds); the memo lets a run that sends nothing skip that.
    """
    source = _facts_source()
    memo = (source, str(_facts_path()), model)
    found = _FACTS.get(memo)
    if found is not None:
        return found
    stored = (_read_facts().get("models") or {}).get(model)
    if isinstance(stored, dict) and stored.get("structured") in ("json_schema", "json", "text"):
        limit = stored.get("max_input_tokens")
        found = ModelFacts(bool(stored.get("known")), limit if isinstance(limit, int) else None, stored["structured"])
    else:
        found = ModelFacts(_model_info(model) is not None, _litellm_max_input_tokens(model),
                           _litellm_structured_support(model))
        _write_facts(model, found)
    _FACTS[memo] = found
    return found


def _litellm_max_input_tokens(model: str) -> int | None:
    info = _model_info(model)
    if not info:
        return None
    for key in ("max_input_tokens", "max_tokens"):
        value = info.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def max_input_tokens(model: str) -> int | None:
    """The model's input budget according to litellm, or None when it does not know the model."""
    return model_facts(model).max_input_tokens


def _chars_estimate(messages: Sequence[dict[str, Any]]) -> int:
    # About four characters per token in English prose and code; four tokens of framing per message.
    return sum(len(str(m.get("content") or "")) // 4 + 4 for m in messages) + 3


def count_tokens_fn(model: str) -> Callable[[Sequence[dict[str, Any]]], int]:
    """A token counter for ``model``: litellm's tokenizer when it knows the model, else chars / 4.

    litellm is imported on the first count, not before: most prompts fit by their byte size alone.
    """
    if not model_facts(model).known:
        return _chars_estimate

    def count(messages: Sequence[dict[str, Any]]) -> int:
        litellm = litellm_module()
        try:
            return int(litellm.token_counter(model=model, messages=list(messages)))
        except Exception:  # noqa: BLE001 (litellm raises anything)
            return _chars_estimate(messages)

    return count


def structured_support(model: str) -> Literal["json_schema", "json", "text"]:
    """The best way ``model`` takes a structured answer: a JSON schema, JSON mode, or plain text."""
    return model_facts(model).structured


def _litellm_structured_support(model: str) -> Literal["json_schema", "json", "text"]:
    litellm = litellm_module()
    try:
        schema = bool(litellm.supports_response_schema(model=model))
    except Exception:  # noqa: BLE001 (litellm raises anything)
        schema = False
    if schema:
        return "json_schema"
    try:
        params = litellm.get_supported_openai_params(model=model) or []
    except Exception:  # noqa: BLE001 (litellm raises anything)
        params = []
    return "json" if "response_format" in params else "text"


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """What a call would cost at litellm's list price; None when the price is unknown."""
    litellm = litellm_module()
    try:
        inp, out = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:  # noqa: BLE001 (litellm raises anything)
        return None
    total = float(inp) + float(out)
    return total if total > 0 else None


def _response_cost(litellm: Any, response: Any) -> float | None:
    hidden = getattr(response, "_hidden_params", None) or {}
    if isinstance(hidden, dict):
        priced, cost = "response_cost" in hidden, hidden.get("response_cost")
    else:
        priced, cost = hasattr(hidden, "response_cost"), getattr(hidden, "response_cost", None)
    # litellm prices every response itself; asking again for an unpriced model costs a second failure.
    if priced:
        if cost is None:
            return None
    else:
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:  # noqa: BLE001 (litellm raises anything)
            return None
    try:
        cost = float(cost)
    except (TypeError, ValueError):
        return None
    # An unknown price must read as unknown, not as free.
    return cost if cost > 0 and math.isfinite(cost) else None


# -- failures -----------------------------------------------------------------------------


def _retry_after(exc: BaseException) -> float | None:
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if not headers:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
    except Exception:  # noqa: BLE001 (litellm raises anything)
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_CONTEXT_HINTS = ("context length", "context window", "context_length", "maximum context", "too many tokens",
                  "prompt is too long", "exceeds the available context", "input is too long")


def classify(exc: BaseException) -> tuple[FailureKind, int | None]:
    """The kind of a failed call (and its HTTP status when there was one)."""
    litellm = litellm_module()
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    text = str(exc).lower()
    if isinstance(exc, litellm.ContextWindowExceededError):
        return "context_window", status
    if isinstance(exc, litellm.RateLimitError) or status == 429:
        return "rate_limit", status
    if isinstance(exc, litellm.Timeout):
        return "timeout", status
    if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)) or status in (401, 403):
        return "auth", status
    if isinstance(exc, litellm.NotFoundError) or status == 404:
        return "not_found", status
    if isinstance(exc, litellm.APIConnectionError):
        return "connection", status
    if isinstance(exc, (litellm.InternalServerError, litellm.ServiceUnavailableError, litellm.BadGatewayError)):
        return "server", status
    if status is not None and status >= 500:
        return "server", status
    if isinstance(exc, litellm.BadRequestError) or status in (400, 413, 422):
        if status == 413 or any(h in text for h in _CONTEXT_HINTS):
            return "context_window", status
        return "bad_request", status
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return "timeout" if isinstance(exc, TimeoutError) else "connection", status
    return "other", status


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    # litellm prefixes messages with its own class path; keep the part a user can act on.
    text = text.replace("litellm.", "")
    text = re.sub(r"\b(\w+Error: )\1+", r"\1", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the call -----------------------------------------------------------------------------


def _usage(response: Any) -> tuple[int | None, int | None, int | None]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None, None, None
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return prompt, completion, cached


def _content(response: Any) -> tuple[str | None, str | None]:
    choices = getattr(response, "choices", None) or []
    if not choices:
        return None, None
    choice = choices[0]
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None) if message is not None else None
    if isinstance(content, list):  # content parts from some providers
        content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return content, getattr(choice, "finish_reason", None)


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _logprobs(response: Any) -> list[tuple[str, list[tuple[str, float]]]] | None:
    """The first choice's token log-probabilities (OpenAI's ``logprobs.content`` shape), or None."""
    choices = getattr(response, "choices", None) or []
    content = _get(_get(choices[0], "logprobs"), "content") if choices else None
    if not isinstance(content, list) or not content:
        return None
    out: list[tuple[str, list[tuple[str, float]]]] = []
    for entry in content:
        token, logprob = _get(entry, "token"), _get(entry, "logprob")
        if not isinstance(token, str) or not isinstance(logprob, (int, float)):
            return None
        alternatives = [(str(_get(a, "token")), float(_get(a, "logprob")))
                        for a in _get(entry, "top_logprobs") or []
                        if isinstance(_get(a, "token"), str) and isinstance(_get(a, "logprob"), (int, float))]
        out.append((token, alternatives or [(token, float(logprob))]))
    return out


async def complete(
    request: dict[str, Any],
    *,
    retries: int,
    on_retry: Callable[[FailureKind, float], None] | None = None,
    before_attempt: Callable[[], Awaitable[None]] | None = None,
) -> Answer | Failure:
    """One chat completion through ``litellm.acompletion``, retried up to ``retries`` times.

    ``request`` holds the litellm arguments (model, messages, api_base, ...); retries are
    tenacity's alone. ``before_attempt`` is awaited before every attempt (a rate limiter).
    Returns the :class:`Answer`, or a :class:`Failure` saying why there is none.
    """
    import tenacity

    litellm = litellm_module()
    kwargs = dict(request)
    kwargs["num_retries"] = 0
    kwargs["max_retries"] = 0
    attempts = 0

    def retryable(exc: BaseException) -> bool:
        return classify(exc)[0] in _RETRYABLE

    backoff = tenacity.wait_random_exponential(multiplier=RETRY_BASE_SECONDS, max=RETRY_MAX_SECONDS)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        hinted = _retry_after(exc) if exc is not None else None
        seconds = min(hinted, RETRY_MAX_SECONDS) if hinted is not None else float(backoff(state))
        if on_retry is not None and exc is not None:
            on_retry(classify(exc)[0], seconds)
        return seconds

    started = time.perf_counter()
    try:
        async for attempt in tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(retries + 1),
            wait=wait,
            retry=tenacity.retry_if_exception(retryable),
            reraise=True,
        ):
            with attempt:
                if before_attempt is not None:
                    await before_attempt()
                attempts += 1
                started = time.perf_counter()
                response = await litellm.acompletion(**kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure becomes data about this one judgement
        kind, status = classify(exc)
        return Failure(kind=kind, message=_one_line(exc), attempts=attempts, status=status)
    latency_ms = (time.perf_counter() - started) * 1000.0
    content, finish = _content(response)
    prompt, completion, cached = _usage(response)
    return Answer(
        content=content,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cost_usd=_response_cost(litellm, response),
        latency_ms=latency_ms,
        attempts=attempts,
        finish_reason=finish,
        logprobs=_logprobs(response),
    )
