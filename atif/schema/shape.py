"""The shape checks of :mod:`atif.schema.validate`: TypedDict twins of the pydantic models.

Building them takes pydantic's schema generation (tens of milliseconds), so it happens here,
on first use, and only when needed: the fast path of ``validate`` runs on a compiled core
schema stored with the package (``finite_shape.json``), which this module also writes and
which ``tests/schema/test_finite_shape.py`` checks against what the models give today.

Regenerate the stored schema after changing a model (or upgrading pydantic-core)::

    .venv/bin/python -m atif.schema.shape
"""

from __future__ import annotations

import functools
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, Required, Union, get_args, get_origin

import orjson
import pydantic
import pydantic_core
from pydantic import BaseModel, ConfigDict, TypeAdapter

# pydantic needs typing_extensions.TypedDict before Python 3.12
from typing_extensions import TypeAliasType, TypedDict

from atif.schema.models import Trajectory
from atif.schema.validate import FINITE_SHAPE_FILE

# Shape validation runs on TypedDict twins of the models, derived from them:
# pydantic-core then checks the parsed JSON as plain dicts (no model instances), about
# twice as fast as models, and the rule pass reads those dicts. Same types,
# same constraints, same lax coercion as the models (and as Harbor's).
#
# A second set of twins, the *finite* ones, is the fast path of :func:`validate`. It refuses a
# float that is not finite, anywhere (``Any`` becomes a JSON value of finite floats), and takes
# the lists of numbers (token ids, logprobs) as they are: the rule pass proves those by summing
# each (``_Checker.unproven``), five times cheaper than validating every item. Where the twins
# and the sums accept a document, the full shape check accepts it too, and returns what the
# finite twins return, but for those lists, which no rule reads item by item (a ``true`` among
# token ids, which lax validation turns into 1, is a ``true`` there).
_TYPED_DICTS: dict[tuple[type, bool], Any] = {}

_FiniteFloat = Annotated[float, pydantic.Field(allow_inf_nan=False)]
# A JSON value with finite floats. Strict members tried left to right match each value by its
# exact type and return it unchanged (what ``Any`` returns), at half the cost of a smart union.
_FiniteJson = TypeAliasType(  # type: ignore[misc]
    "_FiniteJson",
    Annotated[
        Union[  # noqa: UP007 - a recursive alias needs the explicit form
            Annotated[str, pydantic.Strict()],
            Annotated[bool, pydantic.Strict()],
            Annotated[int, pydantic.Strict()],
            Annotated[float, pydantic.Strict(), pydantic.Field(allow_inf_nan=False)],
            None,
            Annotated[list["_FiniteJson"], pydantic.Strict()],  # type: ignore[misc]
            Annotated[dict[Annotated[str, pydantic.Strict()], "_FiniteJson"], pydantic.Strict()],  # type: ignore[misc]
        ],
        pydantic.Field(union_mode="left_to_right"),
    ],
)


def _typed_dict(model: type[BaseModel], finite: bool = False) -> Any:
    key = (model, finite)
    if key in _TYPED_DICTS:
        return _TYPED_DICTS[key]
    name = model.__name__ + ("FiniteDict" if finite else "Dict")
    _TYPED_DICTS[key] = name  # a forward reference while the model refers to itself
    fields: dict[str, Any] = {}
    for fname, f in model.model_fields.items():
        ann = _twin(f.annotation, finite)
        if f.metadata:
            ann = Annotated[(ann, *f.metadata)]
        fields[fname] = Required[ann] if f.is_required() else NotRequired[ann]
    td = TypedDict(name, fields)  # type: ignore[misc]
    td.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    globals()[name] = td
    _TYPED_DICTS[key] = td
    return td


def _twin(tp: Any, finite: bool) -> Any:
    if finite and tp is Any:
        return _FiniteJson
    if finite and tp is float:
        return _FiniteFloat
    if finite and tp in (list[int], list[float]):
        return Any  # token ids and logprobs, thousands of numbers: the rule pass sums them instead
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        found = _typed_dict(tp, finite)
        return typing.ForwardRef(found) if isinstance(found, str) else found
    origin = get_origin(tp)
    if origin is None or origin is Literal:
        return tp
    args = tuple(_twin(a, finite) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return Union[args]  # noqa: UP007 - built from a runtime tuple
    if origin is Annotated:
        return Annotated[(args[0], *tp.__metadata__)]
    return origin[args] if len(args) > 1 else origin[args[0]]


@functools.cache
def finite_shape() -> TypeAdapter[Any]:
    """The fast path's shape check, built from the models (the stored schema is its portable copy)."""
    return TypeAdapter(_typed_dict(Trajectory, finite=True))


@functools.cache
def full_shape() -> TypeAdapter[Any]:
    """The full shape check, built on first use: a batch of valid files never needs it."""
    return TypeAdapter(_typed_dict(Trajectory))


_ID_SUFFIX = re.compile(r":\d+$")


def portable(schema: Any) -> Any:
    """A core schema as plain JSON data: without the TypedDict classes (``cls``, which only names
    them) and with references that carry no ``id()`` (pydantic suffixes each with one)."""
    if isinstance(schema, dict):
        out = {}
        for k, v in schema.items():
            if k == "cls":
                continue
            out[k] = _ID_SUFFIX.sub("", v) if k in ("ref", "schema_ref") and isinstance(v, str) else portable(v)
        return out
    if isinstance(schema, (list, tuple)):
        return [portable(v) for v in schema]
    return schema


def finite_shape_data() -> dict[str, Any]:
    """What ``finite_shape.json`` holds: the pydantic-core version it was made with and the schema."""
    return {"pydantic_core": pydantic_core.__version__, "schema": portable(finite_shape().core_schema)}


def write_finite_shape(path: Path = FINITE_SHAPE_FILE) -> None:
    """Write the fast path's schema for the installed pydantic-core (run after changing a model)."""
    path.write_bytes(orjson.dumps(finite_shape_data(), option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":  # pragma: no cover
    # through the package, so that the TypedDicts (and the references naming them) are its own
    from atif.schema import shape

    shape.write_finite_shape()
    print(f"wrote {shape.FINITE_SHAPE_FILE}")
