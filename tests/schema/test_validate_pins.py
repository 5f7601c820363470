"""The validator's full output on ~500 broken and valid documents, pinned.

``fixtures/validate-pins/expected.jsonl.gz`` holds every report (version, then each issue's
path, code, severity and message, in order) that the validator gave when the record was made
(``fixtures/validate-pins/make.py``). Speed work on the validator must leave each of them
exactly as it was.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "fixtures" / "validate-pins"

_spec = importlib.util.spec_from_file_location("validate_pins_make", PINS / "make.py")
assert _spec and _spec.loader
make: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)

EXPECTED = {
    (r["id"], r["variant"]): r["report"]
    for r in map(orjson.loads, gzip.decompress((PINS / "expected.jsonl.gz").read_bytes()).splitlines())
}
INPUTS = dict(make.cases())


def test_the_record_covers_every_input_and_many_failures() -> None:
    assert {cid for cid, _ in EXPECTED} == set(INPUTS)
    assert len(INPUTS) >= 500
    invalid = sum(1 for (cid, v), rep in EXPECTED.items() if v == "strict" and any(i[2] == "error" for i in rep[1]))
    assert invalid >= 300
    codes = {i[1] for rep in EXPECTED.values() for i in rep[1]}
    assert {"json.non-finite", "json.duplicate-key", "json.surrogate", "schema.extra_forbidden",
            "step.id-sequence", "version.too-new"} <= codes


@pytest.mark.parametrize("variant,kwargs", make.VARIANTS, ids=[v for v, _ in make.VARIANTS])
def test_every_report_is_exactly_as_recorded(variant: str, kwargs: dict[str, Any]) -> None:
    changed = [cid for cid, obj in INPUTS.items() if make.record(obj, **kwargs) != EXPECTED[(cid, variant)]]
    assert not changed, f"{len(changed)} reports changed, e.g. {changed[:5]}"


@pytest.mark.parametrize("variant,kwargs", make.VARIANTS, ids=[v for v, _ in make.VARIANTS])
def test_a_parsed_document_gets_the_report_of_its_bytes(variant: str, kwargs: dict[str, Any]) -> None:
    changed = [
        cid for cid, obj in INPUTS.items()
        if cid.startswith("bytes:") and make.record(orjson.loads(obj), **kwargs) != EXPECTED[(cid, variant)]
    ]
    assert not changed, f"{len(changed)} reports changed, e.g. {changed[:5]}"
