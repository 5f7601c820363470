"""Reading a trajectory's bytes for upload: :func:`load_trajectory` must return exactly what
:func:`load_json` returns, the overflow of a number literal to infinity included, wherever it is.

It skips the byte scan for overflowed literals only where the finite shape check and the number
lists prove every float finite; these cases put an overflowed literal in each place those proofs
cover, and in places they hand to the scan.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from atif.schema import load_json, load_trajectory

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "cases.jsonl"
LINES = CASES.read_bytes().splitlines()
KITCHEN = next(orjson.loads(line)["doc"] for line in LINES if orjson.loads(line)["id"] == "base/kitchen-sink")
BASE = orjson.dumps(KITCHEN)

HUGE = "1e400"


def _with(path: list[str | int], literal: str) -> bytes:
    """The kitchen-sink document with ``literal`` (a JSON number's text) at ``path``."""
    doc = orjson.loads(BASE)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "@@NUMBER@@"
    return orjson.dumps(doc).replace(b'"@@NUMBER@@"', literal.encode())


def test_kitchen_sink_has_the_places_the_cases_use() -> None:
    assert isinstance(KITCHEN["steps"][2].get("metrics"), dict)
    assert KITCHEN.get("subagent_trajectories")


PLACES: list[list[str | int]] = [
    ["steps", 2, "metrics", "cost_usd"],
    ["steps", 2, "metrics", "logprobs"],
    ["steps", 2, "metrics", "completion_token_ids"],
    ["steps", 2, "metrics", "extra"],
    ["steps", 2, "extra"],
    ["extra"],
    ["subagent_trajectories", 0, "steps", 0, "metrics"],
    ["subagent_trajectories", 0, "extra"],
]


@pytest.mark.parametrize("place", PLACES, ids=lambda p: "/".join(map(str, p)))
@pytest.mark.parametrize("literal", [HUGE, f"[1.5, {HUGE}]", f"{{\"x\": [{HUGE}]}}", "[-1e400, 1e400]", "[1, 2]"])
def test_same_as_load_json(place: list[str | int], literal: str) -> None:
    data = _with(place, literal)
    got = load_trajectory(data, source="t.json")
    want = load_json(data, source="t.json")
    assert got == want
    if "e400" in literal:
        # Wherever it is, an overflowed literal is refused (or the shape is wrong; never silently inf).
        assert got[0] is None and got[1][0].code == "json.non-finite"


@pytest.mark.parametrize("line", LINES, ids=lambda line: orjson.loads(line)["id"])
def test_every_conformance_case_reads_the_same(line: bytes) -> None:
    data = orjson.dumps(orjson.loads(line)["doc"])
    assert load_trajectory(data) == load_json(data)


@pytest.mark.parametrize("data", [b"", b"[1e400]", b"1e400", b'{"steps": 1e400}', b"{", b'"x"', b"\xef\xbb\xbf{}"])
def test_not_a_trajectory_reads_the_same(data: bytes) -> None:
    assert load_trajectory(data) == load_json(data)


@pytest.mark.parametrize("key", ["logprobs", "prompt_token_ids", "completion_token_ids"])
@pytest.mark.parametrize("place", [["steps", 2, "metrics"], ["subagent_trajectories", 0, "steps", 0, "metrics"]],
                         ids=lambda p: "/".join(map(str, p)))
def test_number_lists_of_every_trajectory_are_proven(place: list[str | int], key: str) -> None:
    """The lists the finite shape check takes as they are, in the top trajectory and an embedded one."""
    data = _with(place, f'{{"{key}": [1, {HUGE}]}}')
    got = load_trajectory(data)
    assert got == load_json(data)
    assert got[0] is None and got[1][0].code == "json.non-finite"
