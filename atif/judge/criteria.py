"""Criteria files: a criterion set, its optional judge block, and YES/NO criteria of three kinds.

::

    name: coding-basics            # the criterion set
    judge:                         # optional; --judge-model / --judge-api-base override
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:8000/v1
      concurrency: 16
      rpm: 600
      long: segments               # over-budget transcripts: elide (default) or judge in segments
      combine: all                 # segment verdicts: any, all, last or final (an LLM pass)
      overlap: 2                   # steps each segment repeats from the one before
      panel:                       # several judges; an entry may carry its own endpoint
        - local/qwen2.5-coder-0.5b
        - {model: openai/x, api_base: http://127.0.0.1:8001/v1, api_key_env: X_KEY}
    criteria:
      - label: task-complete
        question: Did the agent complete the requested task?
        kind: llm                  # default; also function, match
      - use: no-loops              # a built-in criterion (`atif criteria list`)
        params: {times: 4}         # its parameters; `label` and `question` may be overridden
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from atif._yaml import parse_yaml
from atif.errors import CriteriaError

__all__ = ["CriteriaFile", "Criterion", "JudgeConfig", "PanelMember", "load_criteria", "parse_criteria"]

Long = Literal["elide", "segments"]
Combine = Literal["any", "all", "last", "final"]


class PanelMember(BaseModel):
    """A panel model with its own endpoint (a plain string entry is a model on the run's endpoint)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    model: str = Field(min_length=1)
    """A litellm model string."""
    api_base: str | None = None
    """Base URL of the server that answers for this model (default: the judge block's ``api_base``)."""
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Name of the environment variable holding this endpoint's API key (the key itself is never stored)."""
    params: dict[str, Any] | None = None
    """Extra litellm parameters for this model's calls (``top_p``, ``extra_headers``, ...)."""


PanelEntry = str | PanelMember


class JudgeConfig(BaseModel):
    """How to ask the judge model."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    model: str | None = None
    """A litellm model string (``openai/gpt-4o-mini``, ``ollama/llama3``) or ``local/<name>``."""
    api_base: str | None = None
    """Base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama)."""
    temperature: float = 0.0
    """Sampling temperature; 0 for reproducible verdicts."""
    concurrency: int = Field(default=8, ge=1)
    """Judgements in flight at once."""
    rpm: float | None = Field(default=None, gt=0)
    """Requests per minute at most, when the provider limits them."""
    max_input_tokens: int | None = Field(default=None, gt=0)
    """Input budget of the judge model; defaults to litellm's model info."""
    timeout: float = Field(default=120.0, gt=0)
    """Seconds to wait for one answer."""
    max_retries: int = Field(default=4, ge=0)
    """Retries on rate limits, 5xx, timeouts and connection errors."""
    templates: dict[str, str] | None = None
    """Template overrides: ``system`` and/or ``user``, each a path relative to the criteria file."""
    structured: Literal["auto", "json_schema", "json", "text"] = "auto"
    """How to ask for the verdict: JSON schema, JSON mode, or plain text."""
    samples: int = Field(default=1, ge=1, le=25)
    """Ask each model this many times; the stored verdict is the majority (temperature 0.7 when 0 was set)."""
    panel: list[PanelEntry] | None = Field(default=None, min_length=1)
    """Several judge models asked the same question; the majority of their votes wins. An entry is a
    litellm string or ``{model, api_base, api_key_env, params}`` for a model on its own endpoint."""
    long: Long = "elide"
    """A transcript over the input budget: ``elide`` its middle, or judge it in overlapping ``segments``."""
    combine: Combine = "all"
    """``segments``: how segment verdicts make the rating: ``any`` YES, ``all`` YES, the ``last``
    segment's, or ``final`` (one more call that reads every segment's verdict and reasoning)."""
    overlap: int = Field(default=2, ge=0, le=50)
    """``segments``: steps each segment repeats from the end of the one before."""

    @model_validator(mode="after")
    def _panel_model(self) -> JudgeConfig:
        # A panel without a model: the first member is the run's own judge (on the block's endpoint).
        if self.panel and not self.model:
            first = self.panel[0]
            self.model = first if isinstance(first, str) else first.model
            self.__pydantic_fields_set__.discard("model")  # derived, not configured: not stored
        return self


class Criterion(BaseModel):
    """One YES/NO criterion."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    use: str | None = None
    """A built-in criterion to take (its label, question and kind are the defaults)."""
    params: dict[str, Any] | None = None
    """``use``: parameters of the built-in."""
    samples: int | None = Field(default=None, ge=1, le=25)
    """``llm``: samples per model for this criterion (overrides the judge block's)."""
    panel: list[PanelEntry] | None = Field(default=None, min_length=1)
    """``llm``: panel of judge models for this criterion (overrides the judge block's)."""
    long: Long | None = None
    """``llm``: ``elide`` or ``segments`` for this criterion (overrides the judge block's)."""
    combine: Combine | None = None
    """``llm``: how segment verdicts combine for this criterion (overrides the judge block's)."""
    overlap: int | None = Field(default=None, ge=0, le=50)
    """``llm``: segment overlap in steps for this criterion (overrides the judge block's)."""

    label: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Short id (letters, digits, ``_ . : -``)."""
    question: str = Field(min_length=1)
    """The question, answerable YES or NO."""
    kind: Literal["llm", "function", "match"] = "llm"
    """``llm`` (asked of the judge), ``function`` (a Python check) or ``match`` (tool-call sequence)."""
    module: str | None = None
    """``function``: the Python file holding the check, relative to the criteria file."""
    function: str = "check"
    """``function``: the name of the check function."""
    timeout: float = Field(default=10.0, gt=0)
    """``function``: seconds before a check is stopped and recorded as failed."""
    reference: list[Any] | None = None
    """``match``: the reference tool calls (names, or ``{function_name, arguments}`` objects)."""
    mode: Literal["strict", "unordered", "subset", "superset"] = "strict"
    """``match``: how the sequence must match."""
    arguments: Literal["exact", "ignore", "subset"] = "ignore"
    """``match``: how arguments must match."""
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """``llm``: the judge's ``p_yes`` at and above which the verdict is YES (default 0.5; ``atif calibrate
    --fit-threshold`` fits it). Used where the judge returns log-probabilities."""

    @model_validator(mode="before")
    @classmethod
    def _builtin_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("use") is None:
            if isinstance(data, dict) and data.get("params") is not None:
                raise ValueError("`params` goes with `use` (a built-in criterion)")
            return data
        from atif.judge.library import builtin_criterion

        name = data["use"]
        if not isinstance(name, str):
            raise ValueError(f"`use` names a built-in criterion, not {name!r}")  # noqa: TRY004 - pydantic reports ValueError with the path
        if not isinstance(data.get("params") or {}, dict):
            raise ValueError("`params` must be a mapping")  # noqa: TRY004
        try:
            entry = builtin_criterion(name)
            params = entry.resolve_params(data.get("params"))
        except CriteriaError as exc:
            raise ValueError(str(exc)) from None
        if data.get("kind", entry.kind) != entry.kind:
            raise ValueError(f"built-in {name!r} is a {entry.kind} criterion, not {data['kind']}")
        clash = [k for k in ("module", "function", "reference") if k in data]
        if clash:
            raise ValueError(f"a built-in criterion takes no {', '.join(clash)}")
        return {**data, "label": data.get("label", name), "question": data.get("question") or entry.render_question(params),
                "kind": entry.kind, "params": params}

    @model_validator(mode="after")
    def _kind_fields(self) -> Criterion:
        if self.kind == "function" and not self.module and not self.use:
            raise ValueError("a function criterion needs `module` (a Python file)")
        if self.kind != "llm" and (self.samples is not None or self.panel is not None):
            raise ValueError("`samples` and `panel` apply to llm criteria only")
        if self.kind != "llm" and any(v is not None for v in (self.long, self.combine, self.overlap)):
            raise ValueError("`long`, `combine` and `overlap` apply to llm criteria only")
        if self.kind == "match" and self.reference is None:
            raise ValueError("a match criterion needs `reference` (the expected tool calls)")
        return self

    def config(self) -> dict[str, Any]:
        """Kind-specific settings, as stored with the criterion."""
        panel = [p if isinstance(p, str) else p.model_dump(exclude_none=True) for p in self.panel] \
            if self.panel is not None else None
        votes = {k: v for k, v in (("samples", self.samples), ("panel", panel), ("threshold", self.threshold),
                                   ("long", self.long), ("combine", self.combine), ("overlap", self.overlap))
                 if v is not None}
        if self.use is not None:
            return {"builtin": self.use, "params": dict(self.params or {})} if self.kind == "function" else \
                {"builtin": self.use, **votes}
        if self.kind == "llm":
            return votes
        if self.kind == "function":
            return {"module": self.module, "function": self.function, "timeout": self.timeout}
        return {"reference": self.reference, "mode": self.mode, "arguments": self.arguments}


class CriteriaFile(BaseModel):
    """A criterion set with its judge configuration."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str = Field(min_length=1)
    """Name of the criterion set."""
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    """Judge settings (optional)."""
    criteria: list[Criterion] = Field(min_length=1)
    """The criteria, in order."""
    base_dir: Path = Path(".")
    """Folder the file was read from; module and template paths are relative to it."""

    def store_spec(self, labels: set[str] | None = None) -> dict[str, Any]:
        """The criterion set as the store takes it (``Store.ingest(criteria=...)``), with module
        and template paths made absolute; only the criteria in ``labels`` when given."""
        base = Path(self.base_dir)
        criteria = []
        for c in self.criteria:
            if labels is not None and c.label not in labels:
                continue
            config = c.config()
            if c.kind == "function" and config.get("module"):
                config["module"] = str((base / config["module"]).resolve())
            criteria.append({"label": c.label, "question": c.question, "kind": c.kind, "config": config})
        judge = self.judge.model_dump(mode="json", exclude_unset=True)
        if judge.get("templates"):
            judge["templates"] = {k: str((base / v).resolve()) for k, v in judge["templates"].items()}
        return {"name": self.name, "criteria": criteria, "judge": judge}

    @model_validator(mode="after")
    def _unique_labels(self) -> CriteriaFile:
        seen: dict[str, int] = {}
        for i, c in enumerate(self.criteria):
            if c.label in seen:
                raise ValueError(f"duplicate label {c.label!r} (criteria {seen[c.label]} and {i})")
            seen[c.label] = i
        return self


def _pointer(loc: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(p) for p in loc) if loc else "/"


def parse_criteria(data: Any, *, source: str = "<criteria>", base_dir: Path | None = None) -> CriteriaFile:
    """Validate parsed criteria data; ``CriteriaError`` names the file and JSON path of the first problem."""
    if not isinstance(data, dict):
        raise CriteriaError(f"{source}: expected a mapping with `name` and `criteria`")
    payload = dict(data)
    payload["base_dir"] = base_dir or Path(".")
    try:
        return CriteriaFile.model_validate(payload)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "required field is missing"
            elif err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{_pointer(loc)}: {msg}")
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:4])})" if len(problems) > 1 else ""
        raise CriteriaError(f"{source}: {problems[0]}{more}") from None


def load_criteria(path: str | Path) -> CriteriaFile:
    """Read a criteria YAML (or JSON) file."""

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CriteriaError(f"{p}: no such criteria file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CriteriaError(f"{p}: cannot read: {exc}") from None
    data = parse_yaml(text, p, CriteriaError)
    return parse_criteria(data, source=str(p), base_dir=p.parent)
