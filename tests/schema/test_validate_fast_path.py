"""The fast path of validation: one compiled shape check that also proves every float finite.

It may only ever skip work whose outcome it proves: where it accepts a document it must return
exactly what the full shape check returns, and it must refuse every document with an infinity
that the JSON reading policy would have to report.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from atif.schema import validate

V = importlib.import_module("atif.schema.validate")
CASES = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "cases.jsonl"
DOCS = [orjson.loads(line)["doc"] for line in CASES.read_bytes().splitlines()]
KITCHEN = next(orjson.loads(line)["doc"] for line in CASES.read_bytes().splitlines()
               if orjson.loads(line)["id"] == "base/kitchen-sink")


def _without_number_lists(doc: Any) -> Any:
    """The document without the lists of numbers that the rule pass, not the fast check, proves."""
    doc = copy.deepcopy(doc)
    for trajectory in [doc, *(doc.get("subagent_trajectories") or [])]:
        for step in trajectory["steps"]:
            for key in ("prompt_token_ids", "completion_token_ids", "logprobs"):
                (step.get("metrics") or {}).pop(key, None)
    return doc


def _proven(doc: dict[str, Any]) -> Any:
    """The fast path's shape-checked document, or None where it hands the document to the full path."""
    fast = V._finite_shape(doc)
    if fast is None:
        return None
    checker = V._Checker(mode="strict", base_dir=None)
    checker.run(doc, None, fast)
    return None if checker.unproven else fast


def test_where_the_fast_path_accepts_the_full_check_accepts_and_returns_the_same() -> None:
    accepted = 0
    for doc in DOCS:
        fast = _proven(doc)
        coerced, issues = V._shape_issues(doc)
        if fast is not None:
            accepted += 1
            assert not issues and fast == coerced
            # same types too (1 stays 1, 1.0 stays 1.0) but in the number lists no rule reads
            assert orjson.dumps(_without_number_lists(fast)) == orjson.dumps(_without_number_lists(coerced))
    assert accepted > 150


@pytest.mark.parametrize("key,values,proven", [
    ("prompt_token_ids", [1, 2, 2**70], True),
    ("prompt_token_ids", [], True),
    ("prompt_token_ids", [1, 2.0], False),  # lax validation makes it 2: the full path decides
    ("prompt_token_ids", [1, "2"], False),
    ("prompt_token_ids", [1, None], False),
    ("prompt_token_ids", [1, [2]], False),
    ("prompt_token_ids", [1, 1.5], False),
    ("prompt_token_ids", "1, 2", False),
    ("completion_token_ids", [3, float("inf")], False),
    ("logprobs", [-0.5, -1, 0], True),
    ("logprobs", [-0.5, "-1"], False),
    ("logprobs", [-0.5, float("-inf")], False),
    ("logprobs", [1e308, 1e308], False),  # finite items, too large a sum: the full path decides
    ("logprobs", {"a": 1}, False),
])
def test_number_lists_are_proven_by_their_sum(key: str, values: Any, proven: bool) -> None:
    assert V._number_lists_proven({key: values}) is proven
    doc = copy.deepcopy(KITCHEN)
    next(s for s in doc["steps"] if s.get("metrics"))["metrics"][key] = values
    assert (_proven(doc) is not None) is proven
    expected = V._shape_issues(doc)[1]
    assert validate(doc).issues[: len(expected)] == expected


def _with_inf(where: str) -> dict[str, Any]:
    doc = copy.deepcopy(KITCHEN)
    inf = float("inf")
    agent_step = next(s for s in doc["steps"] if s["source"] == "agent" and s.get("metrics"))
    if where == "root extra":
        doc["extra"] = {"deep": [{"x": [1, -inf]}]}
    elif where == "tool arguments":
        next(s for s in doc["steps"] if s.get("tool_calls"))["tool_calls"][0]["arguments"] = {"n": inf}
    elif where == "cost":
        agent_step["metrics"]["cost_usd"] = inf
    elif where == "final cost":
        doc["final_metrics"]["total_cost_usd"] = -inf
    elif where == "reasoning effort":
        agent_step["reasoning_effort"] = inf
    elif where == "tool definitions":
        doc["agent"]["tool_definitions"] = [{"type": "function", "default": inf}]
    elif where == "metrics extra":
        agent_step["metrics"]["extra"] = {"t": inf}
    return doc


@pytest.mark.parametrize("where", ["root extra", "tool arguments", "cost", "final cost", "reasoning effort",
                                   "tool definitions", "metrics extra"])
def test_an_infinity_anywhere_leaves_the_fast_path(where: str) -> None:
    assert V._finite_shape(KITCHEN) is not None
    assert V._finite_shape(_with_inf(where)) is None


def test_an_infinity_in_logprobs_is_the_reading_policys_error_at_its_pointer() -> None:
    raw = orjson.dumps(KITCHEN).replace(b'"logprobs":[', b'"logprobs":[-1e999,', 1)
    report = validate(raw)
    assert [(i.code, i.path.rsplit("/", 2)[-2:]) for i in report.issues] == [("json.non-finite", ["logprobs", "0"])]


def test_custom_data_comes_back_unchanged_value_for_value() -> None:
    doc = copy.deepcopy(KITCHEN)
    doc["extra"] = {"t": True, "f": False, "one": 1, "onef": 1.0, "big": 2**70, "none": None, "s": "1",
                    "nested": [[1, True, 0.5, {"k": [False, None, "x"]}], {}], "e": []}
    fast = V._finite_shape(doc)
    assert fast is not None
    assert repr(fast["extra"]) == repr(doc["extra"])  # True stays True, 1 stays 1, 1.0 stays 1.0
    assert [type(v) for v in fast["extra"]["nested"][0]] == [int, bool, float, dict]


def test_what_json_cannot_hold_leaves_the_fast_path_for_the_full_check() -> None:
    for odd in ({1: "int key"}, ("a", "tuple"), {"x": {1, 2}}):
        doc = copy.deepcopy(KITCHEN)
        doc["extra"] = {"odd": odd}
        assert V._finite_shape(doc) is None
        assert validate(doc).valid  # `extra` holds anything for the full check, as for Harbor
