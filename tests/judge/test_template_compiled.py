"""A Template renders byte for byte as the Handlebars engine does, with its paths read once.

:class:`atif.judge.templates.Template` renders top-level text and plain ``{{path}}`` tags itself
(the path split at parse time) and hands every other node to the engine. These tests pin that
the output is the engine's own, on the conformance table, on the shipped prompts filled from a
real trial, and on the cases the shortcut must leave to the engine.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from atif.judge.context import template_variables, trial_context
from atif.judge.templates import _ENGINE, Template
from tests.judge.test_templates import CONFORMANCE

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "harbor-golden"


def _engine(source: str, context: Any) -> str:
    return _ENGINE.compile(source)(context)


@pytest.mark.parametrize(("source", "context"), [pytest.param(s, c, id=i) for i, s, c, _ in CONFORMANCE])
def test_same_output_as_the_engine_on_the_conformance_table(source: str, context: Any) -> None:
    try:
        expected = _engine(source, context)
    except ValueError:
        pytest.skip("the engine rejects this case; Template's own errors are tested elsewhere")
    assert Template(source).render(context) == expected


def _golden_record() -> dict[str, Any]:
    path = sorted(p for p in GOLDEN.rglob("*.trajectory*.json") if ".summarization-" not in p.name)[0]
    return {"trial_id": "t-1", "task_name": "hello-world", "experiment": "e", "epoch": 1, "reward": 1.0,
            "task": {"name": "hello-world", "instruction": "Write <<<hello>>> to a file.", "tags": ["x"]},
            "metadata": {"k": "<v>"}, "trajectory": json.loads(path.read_text())}


@pytest.mark.parametrize("instruction", [True, False])
@pytest.mark.parametrize("name", ["system.hbs", "user.hbs", "system_small.hbs", "user_small.hbs"])
def test_shipped_prompts_render_as_the_engine_does(name: str, instruction: bool) -> None:
    source = resources.files("atif.judge").joinpath("prompts", name).read_text(encoding="utf-8")
    record = _golden_record()
    if not instruction:
        record["task"] = {"name": "hello-world"}
    variables = template_variables(trial_context(record),
                                   {"label": "done", "question": "Did it <finish> & say \"so\"?", "kind": "llm"})
    rendered = Template(source, name).render(variables)
    assert rendered == _engine(source, variables)
    assert len(rendered) > 200


EDGE = {
    "escaped-lookup": ("{{a.b}}|{{{a.b}}}", {"a": {"b": "<&'`=>"}}),
    "list-index": ("{{xs.[1]}}{{xs.[5]}}", {"xs": ["p", "q"]}),
    "missing-deeper": ("[{{a.nope.deeper}}]", {"a": {}}),
    "through-a-string": ("[{{s.length}}]", {"s": "abc"}),
    "this-and-dots": ("{{this.a}}{{./a}}", {"a": "A"}),
    "data-root": ("{{@root.a}}", {"a": "R"}),
    "helpers-and-literals": ('{{json a}}{{truncate s 2}}{{"lit"}}{{true}}{{1}}', {"a": [1], "s": "abcdef"}),
    "blocks-between-lookups": ("{{a}}{{#each xs}}<{{this}}|{{../a}}>{{/each}}{{#with o}}{{k}}{{/with}}{{a}}",
                               {"a": "A", "xs": [1, 2], "o": {"k": "K"}}),
    "section": ("{{#o}}{{k}}{{/o}}{{^o}}none{{/o}}", {"o": {"k": "K"}}),
    "numbers-and-bools": ("{{i}} {{f}} {{t}} {{n}} {{m.x}}", {"i": 3, "f": 2.0, "t": False, "n": None, "m": {"x": 0.5}}),
    "whitespace-control": ("a  {{~x~}}  b\n{{#if x}}\n  line\n{{/if}}\n", {"x": "X"}),
    "mapping-shown": ("{{o}}", {"o": {"k": 1}}),
    "if-else": ("{{#if a}}A{{a}}{{else}}B{{b}}{{/if}}|{{#if b}}A{{else}}B{{/if}}", {"a": "<x>", "b": ""}),
    "unless-else": ("{{#unless a.b}}none{{else}}{{{a.b}}}{{/unless}}", {"a": {"b": "<y>"}}),
    "if-truthiness": ("{{#if z}}z{{/if}}{{#if e}}e{{/if}}{{#if o}}o{{/if}}{{#if l}}l{{/if}}{{#if n}}n{{/if}}"
                      "{{#if s}}s{{/if}}{{#if f}}f{{/if}}{{#if missing.x}}m{{/if}}",
                      {"z": 0, "e": [], "o": {}, "l": [0], "n": None, "s": " ", "f": 0.0, "missing": {}}),
    "if-include-zero": ("{{#if z includeZero=true}}zero{{/if}}", {"z": 0}),
    "else-if-chain": ("{{#if a}}A{{else if b}}B{{else}}C{{/if}}", {"a": False, "b": 1}),
    "nested-ifs": ("{{#if a}}{{#unless b}}{{#if c}}[{{c}}]{{/if}}{{/unless}}{{/if}}", {"a": 1, "b": 0, "c": "&"}),
    "if-body-with-each": ("{{#if xs}}{{#each xs}}{{this}};{{/each}}{{/if}}", {"xs": ["a", "b"]}),
    "standalone-if-lines": ("before\n{{#if a}}\n  {{a}}\n{{else}}\n  none\n{{/if}}\nafter\n", {"a": "A"}),
}


@pytest.mark.parametrize(("source", "context"), [pytest.param(*v, id=k) for k, v in EDGE.items()])
def test_edge_cases_render_as_the_engine_does(source: str, context: Any) -> None:
    assert Template(source).render(context) == _engine(source, context)


def test_plain_lookups_are_read_once_and_the_rest_is_left_to_the_engine() -> None:
    steps = Template("Q: {{{criterion.question}}} {{json a}} {{#if b}}x{{/if}} {{this}} {{@root.a}}")._compiled.steps
    kinds = [kind for kind, _, _ in steps]
    text, lookup, condition, engine = range(4)
    assert kinds == [text, lookup, text, engine, text, condition, text, engine, text, engine]
    assert steps[1][1] == ("criterion.question", ("criterion", "question"))
    assert steps[5][1] == (("b", ("b",)), False)
