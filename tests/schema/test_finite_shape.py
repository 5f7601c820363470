"""The fast path's stored shape check (``atif/schema/finite_shape.json``) is the models' own.

The stored core schema must be exactly what the models give today (else: regenerate it with
``python -m atif.schema.shape``), must accept and return what the schema built from the models
accepts and returns, and is set aside for the models' schema when pydantic-core is another version.
"""

from __future__ import annotations

import copy
import importlib
import math
from pathlib import Path
from typing import Any

import orjson
import pydantic_core
import pytest

from atif.schema import shape

V = importlib.import_module("atif.schema.validate")
CASES = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "cases.jsonl"
DOCS = [orjson.loads(line)["doc"] for line in CASES.read_bytes().splitlines()]


def test_the_stored_schema_is_what_the_models_give() -> None:
    stored = orjson.loads(shape.FINITE_SHAPE_FILE.read_bytes())
    assert stored == shape.finite_shape_data(), "models changed: run python -m atif.schema.shape"
    assert stored["pydantic_core"] == pydantic_core.__version__


def _outcome(check: Any, doc: Any) -> tuple[bool, Any]:
    """The checked document, or the error types (the fast path only asks whether a document
    passes; union branches are named by the TypedDict classes, which the stored schema omits)."""
    try:
        return True, check(doc)
    except pydantic_core.ValidationError as exc:
        return False, [e["type"] for e in exc.errors(include_url=False)]


def _mutations(doc: dict[str, Any]) -> list[Any]:
    """Valid and invalid variants: a non-finite float, a wrong type, an unknown key, a lax int."""
    out: list[Any] = [doc]
    bad_float = copy.deepcopy(doc)
    bad_float.setdefault("extra", {})
    if isinstance(bad_float["extra"], dict):
        bad_float["extra"]["x"] = math.inf
        out.append(bad_float)
    wrong = copy.deepcopy(doc)
    wrong["session_id"] = 3
    out.append(wrong)
    unknown = copy.deepcopy(doc)
    unknown["not_a_field"] = 1
    out.append(unknown)
    if isinstance(doc.get("steps"), list) and doc["steps"] and isinstance(doc["steps"][0], dict):
        lax = copy.deepcopy(doc)
        lax["steps"][0]["step_id"] = str(lax["steps"][0].get("step_id"))
        out.append(lax)
    return out


@pytest.mark.parametrize("i", range(len(DOCS)))
def test_the_stored_check_agrees_with_the_models(i: int) -> None:
    stored = orjson.loads(shape.FINITE_SHAPE_FILE.read_bytes())["schema"]
    compiled = pydantic_core.SchemaValidator(stored, {}).validate_python
    built = shape.finite_shape().validator.validate_python
    doc = DOCS[i]
    variants = _mutations(doc) if isinstance(doc, dict) else [doc]
    for variant in variants:
        assert _outcome(compiled, variant) == _outcome(built, variant)


def test_another_pydantic_core_rebuilds_the_check_from_the_models(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    stale = orjson.loads(shape.FINITE_SHAPE_FILE.read_bytes())
    stale["pydantic_core"] = "0.0.0"
    f = tmp_path / "finite_shape.json"
    f.write_bytes(orjson.dumps(stale))
    calls: list[int] = []
    original = shape.finite_shape

    def spy() -> Any:
        calls.append(1)
        return original()

    monkeypatch.setattr(V, "FINITE_SHAPE_FILE", f)
    monkeypatch.setattr(V, "_validate_finite", None)
    monkeypatch.setattr(shape, "finite_shape", spy)
    good = next(d for d in DOCS if isinstance(d, dict) and V.validate(d).valid)
    assert V.validate(good).valid
    assert calls == [1]
    bad = copy.deepcopy(good)
    bad["session_id"] = 3
    assert "schema.string_type" in {i.code for i in V.validate(bad).issues}


def test_a_missing_or_broken_stored_schema_rebuilds_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = next(d for d in DOCS if isinstance(d, dict) and V.validate(d).valid)
    broken = tmp_path / "broken.json"
    broken.write_bytes(orjson.dumps({"pydantic_core": pydantic_core.__version__, "schema": {"type": "no-such"}}))
    for path in (tmp_path / "missing.json", broken):
        monkeypatch.setattr(V, "FINITE_SHAPE_FILE", path)
        monkeypatch.setattr(V, "_validate_finite", None)
        assert V.validate(good).valid
        assert V._validate_finite is not None
