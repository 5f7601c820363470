"""Mapping expressions: JMESPath with three extra functions, compiled once into closures.

jmespath's tree interpreter re-dispatches on every node of every record; a mapping applies
the same few expressions to every record, so each AST is turned once into nested closures
with exactly the interpreter's semantics (its ``visit_*`` methods, mirrored one by one).
Expressions holding an ``&expr`` (sort_by, max_by, ...) keep the interpreter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.functions
import orjson

from atif.adapters.values import iso_timestamp, text_of
from atif.errors import AdapterError

__all__ = ["OPTIONS", "Expr", "compile_expression"]


class _Functions(jmespath.functions.Functions):
    """The helper functions a mapping may call besides JMESPath's own."""

    @jmespath.functions.signature({"types": []})
    def _func_from_json(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                return None
        return value

    @jmespath.functions.signature({"types": []})
    def _func_iso(self, value: Any) -> Any:
        return iso_timestamp(value)

    @jmespath.functions.signature({"types": []})
    def _func_text(self, value: Any) -> str:
        return text_of(value)


_FUNCTIONS = _Functions()

OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)

_KNOWN_FUNCTIONS = set(_Functions.FUNCTION_TABLE)


class _Unsupported(Exception):
    pass


def _is_false(value: Any) -> bool:
    return value == "" or value == [] or value == {} or value is None or value is False


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _equals(x: Any, y: Any) -> bool:
    if _is_number(x) and x in (0, 1):
        if isinstance(y, bool):
            return False
    elif _is_number(y) and y in (0, 1) and isinstance(x, bool):
        return False
    return bool(x == y)


_ORDER = {"lt": lambda a, b: a < b, "gt": lambda a, b: a > b, "lte": lambda a, b: a <= b,
          "gte": lambda a, b: a >= b}

Fn = Callable[[Any], Any]


def _closure(node: Mapping[str, Any]) -> Fn:
    t = node["type"]
    kids = [_closure(c) for c in node.get("children") or [] if isinstance(c, Mapping)]
    if t == "field":
        name = node["value"]
        return lambda v: v.get(name) if isinstance(v, dict) else None
    if t in ("subexpression", "index_expression", "pipe"):
        def chain(v: Any) -> Any:
            for k in kids:
                v = k(v)
            return v
        return chain
    if t in ("current", "identity"):
        return lambda v: v
    if t == "literal":
        value = node["value"]
        return lambda v: value
    if t == "comparator":
        op, left, right = node["value"], kids[0], kids[1]
        lit = node["children"][1]
        if op in ("eq", "ne") and lit["type"] == "literal" and isinstance(lit["value"], str):
            text = lit["value"]  # `field == 'x'`: no number/boolean special case can apply
            return (lambda v: left(v) == text) if op == "eq" else (lambda v: left(v) != text)
        if op == "eq":
            return lambda v: _equals(left(v), right(v))
        if op == "ne":
            return lambda v: not _equals(left(v), right(v))
        cmp = _ORDER[op]

        def order(v: Any) -> Any:
            a, b = left(v), right(v)
            if not ((_is_number(a) or isinstance(a, str)) and (_is_number(b) or isinstance(b, str))):
                return None
            return cmp(a, b)
        return order
    if t == "function_expression":
        name, table = node["value"], _FUNCTIONS

        def call(v: Any) -> Any:
            return table.call_function(name, [k(v) for k in kids])
        return call
    if t == "filter_projection":
        base, proj, cond = kids

        def filt(v: Any) -> Any:
            items = base(v)
            if not isinstance(items, list):
                return None
            out = []
            for e in items:
                if not _is_false(cond(e)):
                    cur = proj(e)
                    if cur is not None:
                        out.append(cur)
            return out
        return filt
    if t in ("projection", "value_projection"):
        base, proj = kids
        values = t == "value_projection"

        def project(v: Any) -> Any:
            items = base(v)
            if values:
                if not isinstance(items, dict):
                    return None
                items = list(items.values())
            elif not isinstance(items, list):
                return None
            return [cur for e in items if (cur := proj(e)) is not None]
        return project
    if t == "flatten":
        (base,) = kids

        def flatten(v: Any) -> Any:
            items = base(v)
            if not isinstance(items, list):
                return None
            out: list[Any] = []
            for e in items:
                out.extend(e) if isinstance(e, list) else out.append(e)
            return out
        return flatten
    if t == "index":
        i = node["value"]

        def index(v: Any) -> Any:
            if not isinstance(v, list):
                return None
            try:
                return v[i]
            except IndexError:
                return None
        return index
    if t == "slice":
        sl = slice(*node["children"])
        return lambda v: v[sl] if isinstance(v, list) else None
    if t == "key_val_pair":
        return kids[0]
    if t == "multi_select_dict":
        pairs = [(c["value"], k) for c, k in zip(node["children"], kids, strict=True)]
        return lambda v: None if v is None else {name: k(v) for name, k in pairs}
    if t == "multi_select_list":
        return lambda v: None if v is None else [k(v) for k in kids]
    if t == "or_expression":
        a, b = kids

        def either(v: Any) -> Any:
            got = a(v)
            return b(v) if _is_false(got) else got
        return either
    if t == "and_expression":
        a, b = kids

        def both(v: Any) -> Any:
            got = a(v)
            return got if _is_false(got) else b(v)
        return both
    if t == "not_expression":
        (a,) = kids

        def negate(v: Any) -> Any:
            got = a(v)
            if _is_number(got) and got == 0:
                return False
            return not got
        return negate
    raise _Unsupported(t)


@dataclass(slots=True)
class Expr:
    """A compiled expression and the mapping key it came from (for error messages)."""

    key: str
    text: str
    parsed: Any
    fn: Fn | None = None

    def __call__(self, data: Any) -> Any:
        try:
            if self.fn is not None:
                return self.fn(data)
            return self.parsed.search(data, options=OPTIONS)
        except (jmespath.exceptions.JMESPathError, TypeError) as exc:  # TypeError: e.g. 'a' < 1
            raise AdapterError(f"{self.key}: {self.text!r} failed: {exc}") from exc


def _walk_functions(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        if node.get("type") == "function_expression":
            yield str(node.get("value"))
        for child in node.get("children") or []:
            yield from _walk_functions(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk_functions(child)


def compile_expression(path: Path, key: str, value: Any) -> Expr:
    if isinstance(value, bool) or value is None:
        raise AdapterError(f"{path}: {key}: expected a JMESPath expression (a string), got {value!r}")
    if isinstance(value, (int, float)):
        value = f"`{orjson.dumps(value).decode()}`"  # a bare YAML number means that number
    if not isinstance(value, str) or not value.strip():
        raise AdapterError(f"{path}: {key}: expected a JMESPath expression (a string), got {value!r}")
    try:
        parsed = jmespath.compile(value)
    except jmespath.exceptions.JMESPathError as exc:
        detail = str(exc).replace("\n", " ")
        raise AdapterError(f"{path}: {key}: invalid JMESPath expression {value!r}: {detail}") from exc
    builtin = set(jmespath.functions.Functions.FUNCTION_TABLE)
    for name in _walk_functions(parsed.parsed):
        if name not in builtin and name not in _KNOWN_FUNCTIONS:
            raise AdapterError(
                f"{path}: {key}: unknown function {name}() in {value!r} "
                "(the mapping helpers are from_json, iso and text)"
            )
    try:
        fn: Fn | None = _closure(parsed.parsed)
    except _Unsupported:
        fn = None
    return Expr(key, value, parsed, fn)
