"""The declarative YAML + JMESPath mapping, with the two example mappings shipped in docs/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from atif.adapters import Converted, ConvertOptions, Failure, get_adapter
from atif.adapters.convert import convert as run_convert
from atif.adapters.jsonio import dump_json
from atif.adapters.mapping import load_mapping
from atif.errors import AdapterError
from atif.schema.validate import validate

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "mappings"
DATA = ROOT / "fixtures" / "mapping"
ACME = (DOCS / "acme-coder.yaml", DATA / "acme_events.jsonl")
CREW = (DOCS / "crewlite.yaml", DATA / "crewlite_export.json")


def convert(mapping: Path, path: Path) -> list[Converted | Failure]:
    return list(get_adapter("mapping").convert(path, ConvertOptions(mapping=mapping)))


def converted(mapping: Path, path: Path) -> list[Converted]:
    items = convert(mapping, path)
    assert all(isinstance(i, Converted) for i in items), items
    for i in items:
        report = validate(i.trajectory, mode="strict")  # type: ignore[union-attr]
        assert report.valid, [str(x) for x in report.issues]
    return items  # type: ignore[return-value]


def write_mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


MINIMAL = """
records: events
rules:
  - when: "type == 'msg'"
    source: user
    message: text
"""


# ---------------------------------------------------------------------------------------------
# The example mappings
# ---------------------------------------------------------------------------------------------


def test_acme_jsonl_event_log_grouped_by_run() -> None:
    first, second = converted(*ACME)
    assert (first.trial.task_name, first.trial_key, first.trial.trial_id) == ("fix-iso-week", "r-7f3a21", "r-7f3a21")
    traj = first.trajectory
    assert traj is not None
    assert traj["agent"] == {"name": "acme-coder", "version": "0.9.3", "model_name": "gpt-4.1-mini-2025-04-14"}
    steps = traj["steps"]
    assert [s["source"] for s in steps] == ["system", "user", "agent", "agent", "agent", "agent"]
    # Tool output records merge into the completion that made the call.
    call = steps[2]["tool_calls"][0]
    assert call == {"tool_call_id": "tc-01", "function_name": "shell",
                    "arguments": {"cmd": "pytest -q tests/test_dates.py::test_iso_week"}}
    result = steps[2]["observation"]["results"][0]
    assert result["source_call_id"] == "tc-01"
    assert "AssertionError" in result["content"]
    assert result["extra"] == {"exit_code": 1, "status": "error"}
    assert steps[3]["reasoning_content"].startswith("iso_week uses date.year")
    assert steps[3]["metrics"] == {"prompt_tokens": 2210, "completion_tokens": 118, "cached_tokens": 1792,
                                   "cost_usd": 0.000467}
    assert steps[0]["timestamp"] == "2025-06-02T09:30:00.129000Z"
    assert first.trial.reward == 1.0 and first.trial.error is None
    assert first.trial.duration_seconds == pytest.approx(14.702)
    assert first.trial.cost_usd == pytest.approx(0.001551)
    assert first.trial.metadata["status"] == "passed"
    assert first.instruction is not None and first.instruction.startswith("tests/test_dates.py")
    # The second run: a stderr-only tool error, then a sandbox timeout.
    assert second.trial.task_name == "add-retry-flag"
    assert second.trial.reward == 0.0
    assert second.trial.error == "SandboxTimeout: command did not finish within 600 s"
    assert second.trial.duration_seconds == pytest.approx(606.5)
    assert second.trajectory is not None
    assert second.trajectory["steps"][2]["observation"]["results"][0]["content"].startswith("sed: can't read")


def test_crewlite_sessions_export() -> None:
    first, second = converted(*CREW)
    assert (first.trial.task_name, first.trial_key) == ("summarise-incident-4711", "sess_01JX4Q7M2B")
    traj = first.trajectory
    assert traj is not None
    steps = traj["steps"]
    assert [s["source"] for s in steps] == ["system", "user", "agent", "agent", "agent"]
    assert steps[1]["message"].startswith("Summarise incident 4711")  # text blocks flattened
    two_calls = steps[3]
    assert [c["function_name"] for c in two_calls["tool_calls"]] == ["search_logs", "list_deploys"]
    assert [(r["source_call_id"], r["extra"]["status"]) for r in two_calls["observation"]["results"]] == [
        ("toolu_01B", "error"), ("toolu_01C", "ok")
    ]
    # Object results are kept as canonical JSON text; Anthropic-style usage adds the cache back.
    assert json.loads(steps[2]["observation"]["results"][0]["content"])["severity"] == "SEV2"
    assert steps[2]["metrics"] == {"prompt_tokens": 1842, "completion_tokens": 88, "cached_tokens": 0}
    assert steps[2]["reasoning_content"].startswith("I need the incident record")
    assert "reasoning_content" not in steps[3]
    assert steps[4]["timestamp"] == "2025-06-03T08:00:11.870000Z"
    assert first.trial.reward == 0.8
    assert first.trial.metadata["grader"] == "rubric-v3" and first.trial.metadata["passed"] is True
    assert second.trial.error == "RateLimitError: 429 from provider after 5 retries"
    assert second.trial.reward is None


def test_unmatched_records_are_reported() -> None:
    acme = converted(*ACME)
    (warning,) = [w for w in acme[0].warnings if w.startswith("unmatched records")]
    assert "1 of 13" in warning and '"kind":"debug"' in warning and "#8" in warning
    assert not [w for w in acme[1].warnings if w.startswith("unmatched records")]
    crew = converted(*CREW)
    assert any("annotation" in w for w in crew[0].warnings if w.startswith("unmatched records"))


def test_dry_run_lists_unmatched_records(tmp_path: Path) -> None:
    from atif.cli import cli

    mapping, data = ACME
    result = CliRunner().invoke(cli, ["convert", str(data), "--mapping", str(mapping), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "unmatched records: 1 of 13" in result.output
    assert not (tmp_path / "trajectories").exists()


def test_convert_writes_trials_deterministically(tmp_path: Path) -> None:
    outs = []
    for n in (1, 2):
        res = run_convert([CREW[1]], tmp_path / f"out{n}", mapping=CREW[0])
        assert res.converted == 2 and not res.failures
        outs.append({p.relative_to(tmp_path / f"out{n}").as_posix(): p.read_bytes() for p in res.outputs})
    assert outs[0] == outs[1]
    trials = [json.loads(line) for line in outs[0]["trials.jsonl"].splitlines()]
    assert {t["task_name"] for t in trials} == {"summarise-incident-4711", "rotate-api-key"}


def test_conversion_is_deterministic() -> None:
    for mapping, data in (ACME, CREW):
        a, b = converted(mapping, data), converted(mapping, data)
        assert [dump_json(i.trajectory) for i in a] == [dump_json(i.trajectory) for i in b]


# ---------------------------------------------------------------------------------------------
# Mapping features
# ---------------------------------------------------------------------------------------------


def test_helper_functions(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path, """
records: "@"
rules:
  - when: "role == 'a'"
    source: agent
    message: text(parts)
    timestamp: iso(ms)
    tool_calls: {each: calls, name: fn, arguments: from_json(args)}
  - when: "role == 'u'"
    source: "role == 'u' && 'user' || 'system'"
    message: body
    timestamp: iso(iso_time)
""")
    data = tmp_path / "run.json"
    data.write_text(json.dumps([
        {"role": "u", "body": "hi", "iso_time": "2025-01-01T10:00:00+02:00"},
        {"role": "a", "ms": 1735725600000, "parts": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
         "calls": [{"fn": "f", "args": "{\"x\": 1}"}, {"fn": "g", "args": "not json"}]},
    ]))
    (item,) = converted(mapping, data)
    steps = item.trajectory["steps"]  # type: ignore[index]
    assert steps[0]["timestamp"] == "2025-01-01T08:00:00Z"
    assert steps[1]["timestamp"] == "2025-01-01T10:00:00Z"
    assert steps[1]["message"] == "a\nb"
    assert steps[1]["tool_calls"][0] == {"tool_call_id": "call_2_1", "function_name": "f", "arguments": {"x": 1}}
    # from_json gives null for bad JSON, which becomes empty arguments.
    assert steps[1]["tool_calls"][1]["arguments"] == {}


def test_observation_without_a_known_call_goes_to_its_own_step(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path, """
rules:
  - when: "kind == 'act'"
    source: agent
    message: thought
    observation: {content: result}
  - when: "kind == 'orphan'"
    observation: {source_call_id: call, content: out}
""")
    data = tmp_path / "run.jsonl"
    data.write_text(
        json.dumps({"kind": "act", "thought": "look", "result": "saw it"}) + "\n"
        + json.dumps({"kind": "orphan", "call": "nope", "out": "late"}) + "\n"
    )
    (item,) = converted(mapping, data)
    results = item.trajectory["steps"][0]["observation"]["results"]  # type: ignore[index]
    assert results[0] == {"content": "saw it"}
    assert results[1]["extra"] == {"unmatched_call_id": "nope"}
    assert any("unknown call id 'nope'" in w for w in item.warnings)


def test_skip_rules_silence_records(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path, MINIMAL + """  - when: "type == 'ping'"
    skip: true
""")
    data = tmp_path / "d.json"
    data.write_text(json.dumps({"events": [{"type": "msg", "text": "x"}, {"type": "ping"}]}))
    (item,) = converted(mapping, data)
    assert not any(w.startswith("unmatched") for w in item.warnings)
    assert item.trial.task_name == "m"  # the mapping's name (file stem) when no task_name is mapped


def test_runtime_type_error_fails_the_trial_naming_the_key(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path, """
records: events
rules:
  - when: "length(text) > `0`"
    source: user
    message: text
""")
    data = tmp_path / "d.json"
    data.write_text(json.dumps({"events": [{"text": 5}]}))
    (item,) = convert(mapping, data)
    assert isinstance(item, Failure)
    assert "rules[0].when" in item.reason


# ---------------------------------------------------------------------------------------------
# Bad mapping files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (MINIMAL.replace("message: text", "message: \"text(\""), "rules[0].message"),
        (MINIMAL.replace("records: events", "records: \"events[\""), "records"),
        (MINIMAL.replace("message: text", "message: \"shout(text)\""), "rules[0].message"),
        (MINIMAL + "    tool_calls: {each: \"calls[?\", name: name}\n", "rules[0].tool_calls.each"),
        (MINIMAL.replace("message: text", "mesage: text"), "rules[0]"),
        (MINIMAL + "colour: blue\n", "mapping"),
        ("records: events\n", "rules"),
        ("rules:\n  - when: \"a\"\n    message: text\n", "rules[0]"),
    ],
)
def test_bad_mapping_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write_mapping(tmp_path, text)
    with pytest.raises(AdapterError) as exc:
        load_mapping(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: {key}")


def test_bad_expression_message_is_specific(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, MINIMAL.replace("message: text", "message: \"shout(text)\""))
    with pytest.raises(AdapterError, match=r"unknown function shout\(\)"):
        load_mapping(path)
    path = write_mapping(tmp_path, MINIMAL.replace("message: text", "message: \"text(\""))
    with pytest.raises(AdapterError, match="invalid JMESPath expression 'text\\('"):
        load_mapping(path)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, "rules: [\n  - when: x\n")
    with pytest.raises(AdapterError, match="not valid YAML at line"):
        load_mapping(path)
    with pytest.raises(AdapterError, match="cannot read"):
        load_mapping(tmp_path / "missing.yaml")


def test_bad_mapping_through_the_pipeline_fails_the_input(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, MINIMAL.replace("message: text", "message: \"text(\""))
    res = run_convert([ACME[1]], None, mapping=path, dry_run=True)
    assert res.converted == 0
    (failure,) = res.failures
    assert str(path) in failure[1] and "rules[0].message" in failure[1]


def test_malformed_input_names_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "events.jsonl"
    data.write_text('{"run_id": "r", "kind": "prompt"}\n{"run_id": "r", \n')
    with pytest.raises(Exception) as exc:
        convert(ACME[0], data)
    assert str(data) in str(exc.value) and "line 2" in str(exc.value)


def test_example_mappings_load() -> None:
    for path in sorted(DOCS.glob("*.yaml")):
        m = load_mapping(path)
        assert m.rules, path


def test_a_cached_mapping_keeps_the_path_each_caller_gave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = load_mapping(ACME[0])
    monkeypatch.chdir(ROOT)
    relative = load_mapping(Path("docs/mappings/acme-coder.yaml"))
    assert absolute.path == ACME[0]
    assert relative.path == Path("docs/mappings/acme-coder.yaml")
    assert relative.rules is absolute.rules  # compiled once


# ---------------------------------------------------------------------------------------------
# Compiled expressions behave exactly like jmespath's interpreter
# ---------------------------------------------------------------------------------------------

_EXPRESSIONS = [
    "a", "a.b.c", "a[0]", "a[-1]", "a[1:3]", "a[::-1]", "a[*].b", "a[].b", "a[]", "*.b", "a.*",
    "a[?b == `1`]", "a[?b == `true`]", "a[?b != 'x'].c", "a[?b > `1`]", "a[?b <= 'm']", "a[?!b]",
    "a && b", "a || b", "!a", "!`0`", "`0` == `false`", "`1` == `true`", "`1.0` == `1`",
    "[a, b]", "{x: a, y: b.c}", "a | [0]", "length(a)", "join(', ', a[*].c)", "to_string(a)",
    "from_json(s)", "iso(t)", "text(a)", "sum(a[*].b)", "contains(a[*].b, `1`)", "@", "b.c == 'x'",
    "a[?b == `0`]", "not_null(z, b)", "keys(@)", "max(a[*].b)", "a[0].b.c", "a[?b].c",
]
_VALUES: list[object] = [
    None, 0, 1, True, False, "x", [], {},
    {"a": [{"b": 1, "c": "x"}, {"b": 2, "c": "y"}, {"b": True, "c": "z"}, {"b": 0}], "b": {"c": "x"},
     "s": '{"k": [1, 2]}', "t": 1748856600.5},
    {"a": "text", "b": [], "s": "not json", "t": "2025-06-02T09:30:00+02:00"},
    {"a": [[1, 2], 3, [4]], "b": False},
    {"a": [{"type": "text", "text": "hi"}, {"type": "image"}], "b": {"c": None}},
    {"a": {"k": {"b": 5}}, "b": 0, "z": None},
]


@pytest.mark.parametrize("expr", _EXPRESSIONS)
def test_compiled_expressions_match_the_interpreter(expr: str) -> None:
    import jmespath

    from atif.adapters.mapping import expressions as mod

    compiled = mod.compile_expression(Path("t.yaml"), "k", expr)
    assert compiled.fn is not None, expr
    for value in _VALUES:
        try:
            want = jmespath.search(expr, value, options=mod.OPTIONS)
        except (jmespath.exceptions.JMESPathError, TypeError):
            with pytest.raises(AdapterError):
                compiled(value)
            continue
        got = compiled(value)
        assert got == want and type(got) is type(want), (expr, value, got, want)


def test_expressions_with_exprefs_use_the_interpreter() -> None:
    from atif.adapters.mapping import expressions as mod

    compiled = mod.compile_expression(Path("t.yaml"), "k", "sort_by(a, &b)[*].b")
    assert compiled.fn is None
    assert compiled({"a": [{"b": 2}, {"b": 1}]}) == [1, 2]
