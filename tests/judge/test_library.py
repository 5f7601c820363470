"""The built-in criteria library: exact checks right on every fixture, ``use:`` in criteria files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import atif
from atif.errors import CriteriaError
from atif.judge.criteria import parse_criteria
from atif.judge.library import builtin_criteria, builtin_criterion, run_builtin
from atif.judge.library.exact import EXACT_CHECKS
from atif.schema import validate

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "criteria"
CASES = sorted(FIXTURES.glob("*/*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


EXACT_CASES = [p for p in CASES if _load(p)["builtin"] in EXACT_CHECKS]


@pytest.mark.parametrize("path", EXACT_CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_exact_check_is_right_on_its_fixture(path: Path) -> None:
    case = _load(path)
    result = run_builtin(case["builtin"], case["trajectory"], case["trial"], case["params"])
    assert result.verdict == case["expected"], (case["note"], result)
    assert result.reasoning
    if result.verdict == "NO" and case["builtin"] != "within-limits":
        assert result.cited_steps, "a NO cites the steps that show it"


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_trajectories_are_valid_atif(path: Path) -> None:
    assert validate(_load(path)["trajectory"]).valid


def test_every_builtin_has_a_positive_and_a_negative_fixture() -> None:
    seen: dict[str, set[str]] = {}
    for path in CASES:
        case = _load(path)
        assert case["builtin"] == path.parent.name
        seen.setdefault(case["builtin"], set()).add(case["expected"])
    assert {b.name: {"YES", "NO"} for b in builtin_criteria()} == seen


def test_catalog_and_code_agree() -> None:
    assert {b.name for b in builtin_criteria() if b.kind == "function"} == set(EXACT_CHECKS)
    for b in builtin_criteria():
        assert b.description and b.question and b.failure_modes, b.name
        assert b.kind in ("function", "llm")


def test_listing_puts_exact_checks_first() -> None:
    kinds = [b.kind for b in builtin_criteria()]
    assert kinds == sorted(kinds, key=lambda k: k != "function")


@pytest.mark.parametrize(("name", "close"), [("no-loop", "no-loops"), ("tool-error", "tool-errors"),
                                             ("task-complete", "task-completed")])
def test_unknown_name_lists_the_close_ones(name: str, close: str) -> None:
    with pytest.raises(CriteriaError, match=f"no built-in criterion '{name}'; did you mean .*{close}"):
        builtin_criterion(name)


def test_unknown_name_in_a_criteria_file_names_file_and_path() -> None:
    data = {"name": "cs", "criteria": [{"label": "x", "question": "q?"}, {"use": "no-loop"}]}
    with pytest.raises(CriteriaError, match=r"^crit.yaml: /criteria/1: no built-in criterion 'no-loop'; did you mean no-loops"):
        parse_criteria(data, source="crit.yaml")


def test_use_fills_label_question_kind_and_config() -> None:
    cf = parse_criteria({"name": "cs", "criteria": [{"use": "no-loops", "params": {"times": 4}},
                                                     {"use": "task-completed", "label": "done"}]})
    loops, done = cf.criteria
    assert (loops.label, loops.kind) == ("no-loops", "function")
    assert "4 or more times" in loops.question
    assert loops.config() == {"builtin": "no-loops", "params": {"times": 4}}
    assert (done.label, done.kind, done.config()) == ("done", "llm", {"builtin": "task-completed"})
    assert done.question == builtin_criterion("task-completed").question


def test_the_question_can_be_overridden() -> None:
    cf = parse_criteria({"name": "cs", "criteria": [{"use": "task-completed", "question": "Did it finish?"}]})
    assert cf.criteria[0].question == "Did it finish?"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"use": "no-loops", "params": {"time": 3}}, "has no parameter 'time'; it takes times"),
        ({"use": "no-loops", "params": {"times": 0}}, "times must be a whole number >= 1"),
        ({"use": "tool-errors", "params": {"x": 1}}, "it takes no parameters"),
        ({"use": "no-destructive-commands", "params": {"workspace": "/repo"}}, "workspace must be a list"),
        ({"use": "tool-errors", "kind": "llm"}, "is a function criterion, not llm"),
        ({"use": "tool-errors", "module": "x.py"}, "takes no module"),
        ({"label": "x", "question": "q", "params": {"times": 2}}, "`params` goes with `use`"),
        ({"use": 3}, "names a built-in criterion"),
    ],
)
def test_bad_use_entries_are_refused(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(CriteriaError, match=r"^c.yaml: /criteria/0: .*" + message.replace("(", r"\(")):
        parse_criteria({"name": "cs", "criteria": [entry]}, source="c.yaml")


def test_a_check_that_breaks_on_odd_data_is_unscored() -> None:
    odd = {"steps": [{"step_id": 1, "source": "agent", "observation": "not an object"}]}
    result = run_builtin("tool-results", odd, {})
    assert result.verdict == "UNSCORED"
    assert "built-in check 'tool-results' failed: AttributeError" in (result.error or "")


def test_llm_builtins_are_not_exact_checks() -> None:
    with pytest.raises(CriteriaError, match="is an llm criterion"):
        run_builtin("task-completed", {}, {})


def test_a_judge_run_decides_builtin_checks_without_a_model(tmp_path: Path) -> None:
    from atif.judge.engine import evaluate
    from atif.store import Store

    cf = parse_criteria({"name": "lib", "criteria": [{"use": "no-loops"}, {"use": "tool-errors", "label": "errors"},
                                                      {"use": "within-limits", "params": {"max_steps": 5}}]})
    spec = {"name": cf.name, "criteria": [{"label": c.label, "question": c.question, "kind": c.kind,
                                           "config": c.config()} for c in cf.criteria]}
    picked = {p.parent.name + "/" + p.stem: _load(p) for p in CASES}
    trials = [{"task_name": name.replace("/", "-"), "trajectory": picked[name]["trajectory"]}
              for name in ("no-loops/loop-of-three", "tool-errors/exit-code-extra", "within-limits/step-count",
                           "tool-errors/all-ok")]
    src = tmp_path / "src"
    src.mkdir()
    (src / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    db = tmp_path / "atif.duckdb"
    with Store(db) as store:
        assert atif.upload([src], "exp", store=store, criteria=spec, create_missing_tasks=True).ok
        summary = evaluate(store, "exp")
        rows = {(r["task_name"], r["criterion"]): r for r in store.ratings("exp")}
    assert summary.function == 12 and summary.calls == 0
    verdicts = {k: r["verdict"] for k, r in rows.items()}
    assert verdicts[("no-loops-loop-of-three", "no-loops")] == "NO"
    assert verdicts[("tool-errors-exit-code-extra", "errors")] == "NO"
    assert verdicts[("within-limits-step-count", "within-limits")] == "NO"
    assert verdicts[("tool-errors-all-ok", "no-loops")] == "YES"
    assert {r["source"] for r in rows.values()} == {"function"}
    assert rows[("no-loops-loop-of-three", "no-loops")]["cited_steps"] == [2, 3, 4]


def test_llm_builtins_send_their_shipped_question_to_the_judge(tmp_path: Path) -> None:
    import respx

    from tests.judge.test_engine import CHAT, build_store, completion, ratings, run

    llm = [b for b in builtin_criteria() if b.kind == "llm"]
    cf = parse_criteria({"name": "lib", "criteria": [{"use": b.name} for b in llm]})
    criteria = [{"label": c.label, "question": c.question, "kind": c.kind, "config": c.config()} for c in cf.criteria]
    cases = [_load(FIXTURES / "task-completed" / f"{name}.json") for name in ("done", "wrong-file")]
    trials = [{"task_name": c["trial"]["task_name"], "trajectory": c["trajectory"]} for c in cases]
    db = build_store(tmp_path, criteria, trials=trials)
    with respx.mock(assert_all_called=False) as api:
        route = api.post(CHAT).mock(side_effect=lambda request: completion(rating="YES"))
        run(db)
    sent = [json.loads(call.request.content)["messages"] for call in route.calls]
    assert len(sent) == 2 * len(llm)
    for b in llm:
        assert sum(b.question in json.dumps(m, ensure_ascii=False) for m in sent) == 2, b.name
    assert {r["verdict"] for r in ratings(db).values()} == {"YES"}
