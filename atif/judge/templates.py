"""Handlebars prompt templates for the LLM judge.

A judge prompt is a Handlebars template rendered once per trial and criterion,
so a :class:`Template` parses its source once and renders many times. Rendering
follows Handlebars.js 4.7 semantics (the engine is ``dotpromptz-handlebars``,
a pure-Python port checked against Handlebars.js), with two additions:

* every top-level variable the template references must be present in the
  context (``None`` and ``False`` count as present), so a typo in a variable
  name fails loudly instead of rendering an empty string into a prompt;
* the helpers ``json`` and ``truncate``.

Partials and the ``log`` helper are not available: a judge prompt is one
self-contained file, and ``log`` writes to standard output.
"""

from __future__ import annotations

import json as _jsonlib
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from dotpromptz_handlebars import (
    Block,
    Handlebars,
    HelperOptions,
    InlinePartial,
    Mustache,
    Node,
    Partial,
    PartialBlock,
    Text,
)

# The parser and path splitter are not exported. The pin on the exact
# dotpromptz-handlebars version keeps them stable; using them means the
# variable analysis reads a template exactly as the renderer does.
from dotpromptz_handlebars._render import (
    _BUILTINS,
    _call,
    _if_shows,
    _number,
    _parts,
    _reject_function,
    _render_one,
    _show,
    _step,
    compile_template,
)

from atif.errors import TemplateError

__all__ = ["TRUNCATION_MARKER", "Template", "render"]

TRUNCATION_MARKER = "… [truncated {count} chars]"
"""Appended by ``truncate``; ``{count}`` is the number of characters cut."""

_BUILTIN_BLOCKS = frozenset({"if", "unless", "each", "with"})
# Blocks whose body renders with a new context (the item, the value).
_SCOPING_BLOCKS = frozenset({"each", "with"})
_PARTIALS = (Partial, PartialBlock, InlinePartial)
_LITERALS = frozenset({"true", "false", "null", "undefined"})
_NUMBER = re.compile(r"-?\d+(\.\d+)?$")


def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (set, frozenset)):
        # A set's iteration order depends on hash seeding; sort it so the
        # prompt (and so the judge cache key) is the same on every run.
        return sorted(value, key=lambda item: (type(item).__name__, str(item)))
    return str(value)


def _to_json(value: Any, indent: int | None = 2) -> str:
    """Serialise ``value`` as the ``json`` helper does (non-ASCII kept, unknown types as text)."""
    return _jsonlib.dumps(value, indent=indent or None, ensure_ascii=False, default=_json_default)


def _int_arg(value: Any, what: str) -> int:
    number = value
    if (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.strip().isdigit()
    ):
        number = int(value)
    # bool is an int in Python, but {{truncate text true}} is a mistake.
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError(f"{what} must be a whole number >= 0, not {value!r}")
    return number


def _json_helper(args: list[Any], options: HelperOptions) -> str:
    if len(args) != 1:
        raise ValueError(f"json takes one value, got {len(args)}")
    indent = _int_arg(options.hash.get("indent", 2), "json indent")
    return _to_json(args[0], indent)


def _truncate_helper(args: list[Any], options: HelperOptions) -> str:
    if len(args) != 2:
        raise ValueError(
            f"truncate takes a value and a length ({{{{truncate text 200}}}}), got {len(args)} arguments"
        )
    value, limit = args
    limit = _int_arg(limit, "truncate length")
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    else:
        text = _to_json(value)
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(count=len(text) - limit)


_HELPERS: dict[str, Callable[[list[Any], HelperOptions], str]] = {
    "json": _json_helper,
    "truncate": _truncate_helper,
}


def _engine() -> Handlebars:
    engine = Handlebars(escape_html=True)
    # log prints to stdout, which would corrupt the CLI's machine-readable output.
    engine.unregister_helper("log")
    for name, fn in _HELPERS.items():
        engine.register_helper(name, fn)
    return engine


_ENGINE = _engine()
_HELPER_NAMES = frozenset({"lookup", *_HELPERS})


class _Analysis:
    """Walks a parsed template: collects top-level variables, rejects what cannot render."""

    def __init__(self) -> None:
        self.variables: set[str] = set()

    def program(self, nodes: Iterable[Node], depth: int | None) -> None:
        for node in nodes:
            if isinstance(node, Mustache):
                self.mustache(node.call, depth)
            elif isinstance(node, Block):
                self.block(node, depth)
            elif type(node) in _PARTIALS:
                raise ValueError("partials are not supported: a judge template is one file")

    def mustache(self, call: dict[str, Any], depth: int | None) -> None:
        name = call["name"]
        if call["literal"]:
            return
        if name in _HELPER_NAMES:
            self.arguments(call, depth)
        elif call["args"] or call["hash"]:
            raise ValueError(f"unknown helper {name!r} in {{{{{name} ...}}}}")
        else:
            self.expression(name, depth)

    def block(self, node: Block, depth: int | None) -> None:
        call = node.call
        name = call["name"]
        if name in _BUILTIN_BLOCKS:
            self.arguments(call, depth)
            inner = None if depth is None else depth + 1
            self.program(node.body, inner if name in _SCOPING_BLOCKS else depth)
            self.program(node.inverse, depth)
        elif name in _HELPER_NAMES:
            raise ValueError(f"helper {name!r} cannot open a block ({{{{#{name}}}}})")
        elif call["literal"] or call["args"] or call["hash"]:
            raise ValueError(f"unknown block helper {name!r} in {{{{#{name} ...}}}}")
        else:
            # A plain section {{#name}}: it iterates a list, enters an object,
            # or keeps the context for true, so the body's scope is unknown.
            self.expression(name, depth)
            self.program(node.body, None)
            self.program(node.inverse, depth)

    def arguments(self, call: dict[str, Any], depth: int | None) -> None:
        for token in [*call["args"], *call["hash"].values()]:
            self.expression(token, depth)

    def expression(self, token: str, depth: int | None) -> None:
        if token[:1] in ("'", '"') or token in _LITERALS or _NUMBER.match(token):
            return
        if token.startswith("(") and token.endswith(")"):
            call = _call(token[1:-1].strip())
            if call["name"] not in _HELPER_NAMES:
                raise ValueError(f"unknown helper {call['name']!r} in subexpression {token}")
            self.arguments(call, depth)
            return
        if token.startswith("@"):
            parts = [p for p in _parts(token[1:]) if p not in (".", "this")]
            if len(parts) > 1 and parts[0] == "root" and parts[1] != "..":
                self.variables.add(parts[1])
            return
        parts = _parts(token)
        ups = 0
        while ups < len(parts) and parts[ups] == "..":
            ups += 1
        rest = [p for p in parts[ups:] if p not in (".", "this")]
        if depth is not None and depth - ups == 0 and rest:
            self.variables.add(rest[0])


_TAG = re.compile(r"\{\{(~?)(!--.*?--~?\}\}|!.*?\}\}|\{.*?\}~?\}\}|.*?\}\})", re.DOTALL)


def _locate(source: str, reason: str) -> tuple[str, int] | None:
    """Best-effort offset of the tag behind a parse error, with a sharper reason.

    The parser names no position, so the tags are scanned again here; the
    result is used only when this scan finds the same kind of fault.
    """
    stack: list[tuple[str, str, int]] = []
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            break
        slashes = 0
        while start - slashes > 0 and source[start - slashes - 1] == "\\":
            slashes += 1
        if slashes % 2:  # \{{ is literal text; \\{{ is a backslash, then a tag
            pos = start + 2
            continue
        match = _TAG.match(source, start)
        if match is None:
            return ("unclosed tag", start) if reason.startswith("unclosed tag") else None
        text = match.group(0)
        body = text[2:].strip("{}~ \t\r\n")
        pos = match.end()
        if body.startswith("!"):
            continue
        if body.startswith(("#", "^")) and body[1:].strip():
            head = body[1:].lstrip("*>").split()
            stack.append((head[0] if head else "", text, start))
        elif body.startswith("/"):
            name = body[1:].strip()
            if not stack or stack[-1][0] != name:
                if reason.startswith("unexpected closing tag"):
                    return (f"unexpected closing tag {text}", start)
                return None
            stack.pop()
        elif body == "else" or body.startswith("else "):
            if not stack and reason.startswith("{{else}} outside"):
                return (f"{text} outside a block", start)
        elif body == "^" and reason.startswith("empty tag"):
            return ("{{^}} is not supported, write {{else}}", start)
        elif not body and reason.startswith("empty tag"):
            return ("empty tag", start)
    if stack and reason.startswith("unclosed block"):
        _, text, start = stack[-1]
        return (f"unclosed block {text}", start)
    return None


def _syntax_error(name: str, source: str, error: Exception) -> TemplateError:
    reason = str(error)
    found = _locate(source, reason)
    if found is None:
        return TemplateError(f"template {name}: {reason}")
    what, offset = found
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return TemplateError(f"template {name}: line {line}, column {column}: {what}")


def _plain_path(name: str) -> tuple[str, tuple[str, ...]] | None:
    """``name`` and its parts when it is a plain context path (``a``, ``a.b``, ``a.[0]``), else None.

    Helpers, literals, numbers, ``this``, ``..`` and ``@data`` return None: the engine handles them.
    """
    if not name or name in _ENGINE._helpers or name in _BUILTINS:
        return None
    if name[0] in "(@.'\"[" or name in ("true", "false") or _number(name) is not None:
        return None
    try:
        parts = _parts(name)
    except ValueError:
        return None
    if not parts or any(p in ("..", ".", "this") for p in parts):
        return None
    return name, tuple(parts)


def _lookup(context: Any, path: tuple[str, tuple[str, ...]], strict: bool) -> Any:
    """The engine's lookup of a plain path in the top scope (no block parameters are open)."""
    original, parts = path
    current = context
    for part in parts:
        current = _step(current, part, strict=strict, original=original)
    return _reject_function(current)


_TEXT, _LOOKUP, _CONDITION, _ENGINE_NODE = range(4)
_FAST_DEPTH = 8
"""How deep ``if``/``unless`` bodies are compiled; deeper ones are left to the engine."""


class _Compiled:
    """A parsed template as a list of steps: literal text, a plain ``{{path}}`` lookup, an
    ``{{#if path}}``/``{{#unless path}}`` block over compiled bodies, or a node for the engine.

    Such tags are most of a judge prompt; the engine would split their paths again on every
    render. Output is the engine's own (``render_program``): lookups, truthiness, escaping and
    errors go through the engine's functions, and every other node is rendered by the engine
    at the depth it would be.
    """

    __slots__ = ("depth", "steps")

    def __init__(self, program: list[Node], depth: int = 1) -> None:
        self.depth = depth
        self.steps: list[tuple[int, Any, Any]] = []
        for node in program:
            if isinstance(node, Text):
                self.steps.append((_TEXT, node.value, None))
                continue
            if isinstance(node, Mustache):
                call = node.call
                path = None if call["literal"] or call["args"] or call["hash"] else _plain_path(call["name"])
                if path is not None:
                    self.steps.append((_LOOKUP, path, node.raw))
                    continue
            if isinstance(node, Block) and depth < _FAST_DEPTH:
                call = node.call
                name = call["name"]
                if name in ("if", "unless") and not call["literal"] and len(call["args"]) == 1 and not call["hash"]:
                    path = _plain_path(call["args"][0])
                    if path is not None:
                        bodies = (_Compiled(node.body, depth + 1), _Compiled(node.inverse, depth + 1))
                        self.steps.append((_CONDITION, (path, name == "unless"), bodies))
                        continue
            self.steps.append((_ENGINE_NODE, node, None))

    def render(self, context: Any) -> str:
        escape, strict = _ENGINE.escape_html, _ENGINE.strict
        env: dict[str, Any] | None = None
        out: list[str] = []
        for kind, value, extra in self.steps:
            if kind == _TEXT:
                out.append(value)
            elif kind == _LOOKUP:
                out.append(_show(_lookup(context, value, strict), raw=extra, escape_html=escape))
            elif kind == _CONDITION:
                path, negate = value
                shows = _if_shows(_lookup(context, path, False), include_zero=False)
                out.append(extra[0 if shows != negate else 1].render(context))
            else:
                if env is None:
                    env = {"scopes": [context], "blocks": [{}], "frames": [{"root": context}],
                           "helpers": _ENGINE._helpers, "partials": {}, "escape_html": escape, "strict": strict,
                           "depth": self.depth, "max_depth": _ENGINE.max_depth}
                out.append(_render_one(value, **env))
        return "".join(out)


class Template:
    """A Handlebars prompt template, parsed once and rendered many times.

    ``Template(source, name)`` raises :class:`~atif.errors.TemplateError` for a
    syntax error, an unknown helper or a partial; ``name`` (a file name, say)
    appears in every error message.

    ``variables`` is the set of top-level context names the template reads:
    names outside ``each``/``with`` bodies, plus ``../name`` and
    ``@root.name`` that climb back to the top. Names inside those bodies
    refer to the item or value and are not included.
    """

    __slots__ = ("_compiled", "_required", "name", "source", "variables")

    def __init__(self, source: str, name: str = "<template>") -> None:
        self.source = source
        self.name = name
        analysis = _Analysis()
        try:
            program = compile_template(source, max_depth=_ENGINE.max_depth)
            analysis.program(program, 0)
        except (ValueError, RecursionError) as error:
            raise _syntax_error(name, source, error) from error
        self._compiled = _Compiled(program)
        self.variables: frozenset[str] = frozenset(analysis.variables)
        self._required = tuple(sorted(self.variables))

    def __repr__(self) -> str:
        return f"Template(name={self.name!r}, variables={sorted(self.variables)!r})"

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with ``context``; raise TemplateError if a referenced variable is absent."""
        if not isinstance(context, Mapping):
            raise TemplateError(
                f"template {self.name}: context must be a mapping, not {type(context).__name__}"
            )
        missing = [key for key in self._required if key not in context]
        if missing:
            listed = ", ".join(repr(key) for key in missing)
            plural = "s" if len(missing) > 1 else ""
            raise TemplateError(f"template {self.name}: missing variable{plural} {listed}")
        try:
            return self._compiled.render(context)
        except (ValueError, RecursionError) as error:
            raise TemplateError(f"template {self.name}: {error}") from error


@lru_cache(maxsize=256)
def _cached(source: str, name: str) -> Template:
    return Template(source, name)


def render(source: str, context: Mapping[str, Any], name: str = "<template>") -> str:
    """Render ``source`` with ``context``; the parsed template is cached by source and name."""
    return _cached(source, name).render(context)
