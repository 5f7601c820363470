"""How a run asks its judge: the prompts, the output mode, the input budget, and where calls go.

:func:`resolve_config` applies command-line overrides to an experiment's judge block;
:func:`build_setup` turns it into a :class:`JudgeSetup` (templates loaded and checked, the
structured-output mode and input budget chosen for the model). Models named ``local/...`` are
routed to the offline judge (:mod:`atif.judge.local`, an optional extra), loaded only when used.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from atif.errors import JudgeError, TemplateError
from atif.judge.context import VARIABLES, StepView, TrialContext, template_variables
from atif.judge.criteria import JudgeConfig
from atif.judge.templates import Template
from atif.judge.transcript import compact_views
from atif.judge.verdict import OUTPUT_SCHEMA

__all__ = [
    "DEFAULT_INPUT_TOKENS",
    "PROMPT_VERSION",
    "SMALL_INPUT_TOKENS",
    "SMALL_MODEL_GRAMMAR",
    "TOP_LOGPROBS",
    "JudgeSetup",
    "build_setup",
    "default_local_model",
    "is_local",
    "local_available",
    "local_context",
    "local_judge",
    "local_models",
    "resolve_config",
    "serve_local_judge",
]

PROMPT_VERSION = "2"
"""Bumped when the shipped prompts or the way they are filled change meaning."""

DEFAULT_INPUT_TOKENS = 16_000
"""Input budget assumed for a model litellm does not know (override with ``max_input_tokens``)."""

SMALL_MODEL_GRAMMAR = (
    'root ::= "Reasoning: " reason "\\nAnswer: " verdict\n'
    "reason ::= [^\\n]{1,120}\n"
    'verdict ::= "YES" | "NO"\n'
)
"""GBNF grammar for local llama.cpp models: one short line of reasoning, then the verdict.

A CPU generates a few tokens a second, so the reason is capped at 120 characters (~30 tokens)."""

SMALL_INPUT_TOKENS = 3072
"""Prompt tokens a local model reads by default: on 2 CPU cores it reads ~100 tokens a second, so a
longer prompt costs more time than it adds judgement (raise it with ``judge.max_input_tokens``)."""

LOCAL_TIMEOUT = 900.0
"""Seconds a local model may take over one answer unless ``judge.timeout`` says otherwise."""

TOP_LOGPROBS = 10
"""Alternatives asked for at each generated token, to read ``p_yes`` at the verdict."""

_MAX_TOKENS = {"default": 1024, "small": 64}


def _shipped(name: str) -> str:
    return resources.files("atif.judge").joinpath("prompts", name).read_text(encoding="utf-8")


def _load_templates(cfg: JudgeConfig, shape: str) -> tuple[Template, Template, str]:
    suffix = "_small" if shape == "small" else ""
    sources = {"system": (_shipped(f"system{suffix}.hbs"), f"system{suffix}.hbs"),
               "user": (_shipped(f"user{suffix}.hbs"), f"user{suffix}.hbs")}
    custom = False
    for role, path in (cfg.templates or {}).items():
        if role not in sources:
            raise TemplateError(f"judge.templates: unknown role {role!r}; use `system` and/or `user`")
        p = Path(path)
        try:
            sources[role] = (p.read_text(encoding="utf-8"), p.name)
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"template {p}: cannot read: {exc}") from None
        custom = True
    system = Template(*sources["system"])
    user = Template(*sources["user"])
    unknown = sorted((system.variables | user.variables) - VARIABLES)
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise TemplateError(
            f"template {user.name if set(unknown) & user.variables else system.name}: unknown variable(s) {names}; "
            f"available: {', '.join(sorted(VARIABLES))}"
        )
    digest = hashlib.sha256((system.source + "\0" + user.source).encode()).hexdigest()[:10]
    version = f"{'custom' if custom else shape}.{PROMPT_VERSION}:{digest}"
    return system, user, version


@dataclass
class JudgeSetup:
    """How one run asks its judge: model routing, prompts, output mode, budget."""

    model: str
    """The model as configured (``openai/gpt-4o-mini``, ``local/qwen2.5-coder-0.5b``)."""
    route: str
    """The model string handed to litellm."""
    api_base: str | None
    cache_base: str | None
    """api_base as it enters the cache key (stable for the local server's ephemeral port)."""
    shape: str
    system: Template
    user: Template
    prompt_version: str
    mode: str
    """``json_schema``, ``json``, ``grammar`` or ``text``."""
    temperature: float
    max_tokens: int
    budget: int
    """Prompt tokens allowed."""
    count: Callable[[Sequence[dict[str, Any]]], int]
    timeout: float
    api_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    exact: bool = False
    """True when ``count`` is the served model's own tokenizer: a counted fit cannot overflow."""

    def base_views(self, ctx: TrialContext) -> list[StepView]:
        """The steps fitting starts from: the compact transcript for small models, else all of them."""
        return compact_views(ctx.views, ctx.frame_id) if self.shape == "small" else ctx.views

    def messages(self, ctx: TrialContext, criterion: dict[str, Any], views: Sequence[StepView] | None = None
                 ) -> list[dict[str, Any]]:
        """The chat messages for one trial x criterion."""
        variables = template_variables(ctx, criterion, views=views, extra=self.extra)
        system = self.system.render(variables).strip()
        user = self.user.render(variables).strip()
        out = [{"role": "system", "content": system}] if system else []
        out.append({"role": "user", "content": user})
        return out

    def params(self) -> dict[str, Any]:
        """Sampling and format parameters (part of the cache key)."""
        p: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.mode == "json_schema":
            p["response_format"] = {"type": "json_schema",
                                    "json_schema": {"name": "verdict", "schema": OUTPUT_SCHEMA, "strict": True}}
        elif self.mode == "json":
            p["response_format"] = {"type": "json_object"}
        elif self.mode == "grammar":
            p["extra_body"] = {"grammar": SMALL_MODEL_GRAMMAR}
        if self.shape == "small":
            # llama.cpp returns them; p_yes is read from the verdict token's alternatives.
            p["logprobs"] = True
            p["top_logprobs"] = TOP_LOGPROBS
        return p

    def request(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The litellm arguments for one call."""
        req: dict[str, Any] = {"model": self.route, "messages": messages, "timeout": self.timeout,
                               "drop_params": True, **self.params()}
        if self.api_base:
            req["api_base"] = self.api_base
        if self.api_key:
            req["api_key"] = self.api_key
        return req

    def cache_key(self, messages: list[dict[str, Any]]) -> str:
        """sha256 over model, api_base, messages, parameters and prompt version."""
        blob = orjson.dumps(
            {"model": self.model, "api_base": self.cache_base, "messages": messages, "params": self.params(),
             "prompt_version": self.prompt_version},
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(blob).hexdigest()


def local_judge() -> Any:
    """The offline judge module (:mod:`atif.judge.local`), or None when it cannot be imported."""
    try:
        return importlib.import_module("atif.judge.local")
    except ImportError:
        return None


def local_available(local: Any) -> bool:
    """True when the offline judge's extra is installed: the llama.cpp runtime and the model packages."""
    probe = getattr(local, "available", None)
    if callable(probe):
        try:
            return bool(probe())
        except Exception:  # noqa: BLE001
            return False
    if importlib.util.find_spec("xllamacpp") is None:
        return False
    try:
        spec = local.local_model_spec(default_local_model(local))
        for package in spec.packages:
            importlib.metadata.distribution(package)
    except Exception:  # noqa: BLE001
        return False
    return True


def is_local(model: str | None) -> bool:
    """True for a model served by the offline judge (``local/...``)."""
    if not model:
        return False
    local = local_judge()
    probe = getattr(local, "is_local_model", None) if local is not None else None
    return bool(probe(model)) if callable(probe) else model.startswith("local/")


def default_local_model(local: Any) -> str:
    """The offline judge's default model, as ``local/<name>``."""
    for name in ("DEFAULT_MODEL", "DEFAULT_LOCAL_MODEL"):
        value = getattr(local, name, None)
        if isinstance(value, str):
            return value if value.startswith("local/") else f"local/{value}"
    return "local/qwen2.5-coder-0.5b"


def local_context(model: str) -> int | None:
    """The context size of a local model, when the offline judge knows it."""
    local = local_judge()
    try:
        return int(local.local_model_spec(model).n_ctx) if local is not None else None
    except Exception:  # noqa: BLE001
        return None


def local_models(*, measure: bool = False) -> list[dict[str, Any]]:
    """The local models atif can run (``local/<name>``): size, context, installed, measured accuracy and speed.

    ``measure`` times each installed model on this machine now (a server start and one prompt each).
    """
    local = local_judge()
    if local is None or not hasattr(local, "model_table"):
        raise JudgeError("the local judge is not available; install it with: pip install 'atif[local]'")
    return list(local.model_table(measure=measure))


def serve_local_judge(port: int | None = None, *, model: str | None = None) -> None:
    """Serve the offline judge model as an OpenAI-compatible API on 127.0.0.1 until interrupted."""
    try:
        local = importlib.import_module("atif.judge.local")
    except ImportError as exc:
        raise JudgeError(f"the local judge is not available ({exc}); install it with: pip install 'atif[local]'") from None
    kwargs: dict[str, Any] = {"model": model} if model else {}
    local.serve_forever(port if port is not None else local.DEFAULT_SERVE_PORT, **kwargs)


def resolve_config(experiment: dict[str, Any], *, model: str | None = None, api_base: str | None = None,
                   concurrency: int | None = None) -> JudgeConfig:
    """The experiment's judge block with command-line overrides applied."""
    import pydantic

    stored = dict(experiment.get("judge_config") or {})
    data = dict(stored)
    if model:
        data["model"] = model
        if api_base is None and stored.get("model") not in (None, model):
            # A different model does not inherit the configured model's server.
            data.pop("api_base", None)
    if api_base:
        data["api_base"] = api_base
    if concurrency:
        data["concurrency"] = concurrency
    try:
        return JudgeConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = "/".join(str(p) for p in first["loc"])
        raise JudgeError(f"judge configuration: {where}: {first['msg']}") from None


def build_setup(cfg: JudgeConfig, *, route: str | None = None, api_base: str | None = None,
                api_key: str | None = None, input_tokens: int | None = None,
                count: Callable[[Sequence[dict[str, Any]]], int] | None = None) -> JudgeSetup:
    """Prompts, output mode and budget for ``cfg.model`` (``route``/``api_base``: where to send it).

    ``input_tokens`` is the served context (local models); ``count`` the served model's own token
    counter, which makes the fit exact.
    """
    from atif.judge import client

    model = cfg.model
    if not model:
        raise JudgeError("no judge model configured")
    local = is_local(model)
    shape = "small" if local else "default"
    system, user, version = _load_templates(cfg, shape)
    route = route or model
    api_base = api_base if api_base is not None else cfg.api_base
    mode: str = cfg.structured
    if mode == "auto":
        mode = "grammar" if local else client.structured_support(route)
    max_tokens = _MAX_TOKENS[shape]
    timeout = cfg.timeout
    if local:
        if "timeout" not in cfg.model_fields_set:
            # A CPU may take minutes over a long prompt; a timed-out call would only be sent again.
            timeout = LOCAL_TIMEOUT
        context = input_tokens or DEFAULT_INPUT_TOKENS
        # The answer shares the context with the prompt.
        budget = min(cfg.max_input_tokens or SMALL_INPUT_TOKENS, context - max_tokens)
    else:
        limit = cfg.max_input_tokens or input_tokens or client.max_input_tokens(route) or DEFAULT_INPUT_TOKENS
        budget = max(512, limit - max_tokens)
    if api_key is None and api_base and route.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
        # OpenAI-compatible local servers want no key, but the client refuses to run without one.
        api_key = "sk-no-key-needed"
    return JudgeSetup(
        model=model, route=route, api_base=api_base, cache_base="local" if local else cfg.api_base,
        shape=shape, system=system, user=user, prompt_version=version, mode=mode,
        temperature=cfg.temperature, max_tokens=max_tokens, budget=budget,
        count=count or client.count_tokens_fn(route), timeout=timeout, api_key=api_key, exact=count is not None,
    )
