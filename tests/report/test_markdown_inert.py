"""Hostile user text in every user-text position of the Markdown outputs renders inert.

Each hostile text is put everywhere the data reaches the Markdown (experiment names, task
names, criterion labels, errors, unscored reasons, judge models, named rewards, tags,
models, agents, judge reasoning); the same store is built again with the text ``plain``.
Rendered by a CommonMark parser with tables and raw HTML on (as GitHub renders a comment),
both documents must have the same element structure (no link, image, tag, heading, list,
emphasis or code span appears, no table cell moves), the same text wherever ``plain`` is
not, and the text itself must read as given. The gate output is plain text: one line per
condition, no control characters.
"""

from __future__ import annotations

import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from report_builders import StoreBuilder

from atif.report import (
    build_report,
    calibrate,
    compare,
    gate,
    render_calibration_md,
    render_compare_md,
    render_gate_text,
    render_report_md,
)
from atif.store import Store

HOSTILE = [
    ("link", "[click me](https://evil.example/)"),
    ("script link", "[click me](javascript:alert(1))"),
    ("image", "![x](https://evil.example/t.png)"),
    ("autolink", "<https://evil.example/>"),
    ("reference link", "[click][1]\n\n[1]: javascript:alert(1)"),
    ("html tag", "<img src=x onerror=alert(1)>"),
    ("script", "<script>alert(1)</script>"),
    ("html block", "<div>block</div>"),
    ("html comment", "<!-- the rest is hidden"),
    ("entity", "&lt;b&gt;bold&lt;/b&gt;"),
    ("pipes", "a | b | c"),
    ("escaped pipe", "a \\| b"),
    ("trailing backslash", "ends with \\"),
    ("backticks", "`code` and ``more``"),
    ("fence", "```\nfenced"),
    ("heading", "# Heading"),
    ("closing hashes", "title ##"),
    ("newline heading", "x\n## injected\n| a | b |"),
    ("setext", "x\n==="),
    ("emphasis", "**bold** _em_ ~~struck~~"),
    ("list marker", "- item"),
    ("plus marker", "+ item"),
    ("ordered list", "1. item"),
    ("blockquote", "> quoted"),
    ("indented code", "        code"),
    ("control characters", "bell\x07 esc\x1b[31m red\r\u2028sep"),
]

_BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th", "summary", "pre", "blockquote"}


class _Shape(HTMLParser):
    """The element sequence of rendered HTML and the text of each block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.blocks: list[str] = []
        self._text: list[str] = []

    def _flush(self) -> None:
        self.blocks.append("".join(self._text).strip())
        self._text = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(f"<{tag} {' '.join(sorted(a for a, _ in attrs))}>")
        if tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        self.tags.append(f"</{tag}>")
        if tag in _BLOCKS:
            self._flush()

    def handle_comment(self, data: str) -> None:
        self.tags.append("<!--comment-->")

    def handle_data(self, data: str) -> None:
        self._text.append(data)


def _shape(md: str) -> _Shape:
    html = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(md)
    shape = _Shape()
    shape.feed(html)
    shape.close()
    return shape


def _shown(text: str) -> str:
    """How a one-line rendering shows ``text``: line breaks and control characters become spaces."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


def _build(path: Path, text: str) -> Store:
    b = StoreBuilder(path)
    for i in range(4):
        task = f"{text} {i}"
        b.task(task, [text])
        verdict = ["YES", "NO", "UNSCORED", "YES"][i]
        rating = {"verdict": verdict, "judge_model": text, "reasoning": text}
        if verdict == "UNSCORED":
            rating["error"] = text
        b.trial(text, task, reward=i / 4, rewards={text: i / 4}, cost=0.1 * (i + 1), duration=10.0 * (i + 1),
                error=text if i == 0 else None, model=text, agent=text, trial_id=f"candidate-{i}",
                ratings={text: rating})
        b.trial(f"{text} base", task, reward=1.0, cost=0.1, duration=5.0 + i, model=text, agent=text,
                trial_id=f"baseline-{i}", ratings={text: {"verdict": "YES", "judge_model": text}})
        b.trial(f"{text} labels", task, trial_id=f"labels-{i}",
                ratings={text: {"verdict": "YES" if i % 2 else "NO", "source": "human"}})
    b.task(f"{text} only", [text])
    b.trial(text, f"{text} only", reward=0.5, cost=0.9, duration=99.0, model=text, agent=text,
            trial_id="candidate-only")
    b.trial(f"{text} base", f"{text} base only", reward=0.5, model=text, agent=text, trial_id="baseline-only")
    b.close()
    return Store.open(path, read_only=True)


def _documents(store: Store, text: str) -> dict[str, str]:
    docs = {f"report by {by}": render_report_md(build_report(store, text, by=by))
            for by in (None, "tag", "model", "agent")}
    docs["compare"] = render_compare_md(compare(store, f"{text} base", text))
    docs["calibrate"] = render_calibration_md(calibrate(store, text, against="human", reference=f"{text} labels"))
    return docs


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    with _build(tmp_path_factory.mktemp("plain") / "atif.duckdb", "plain") as store:
        return _documents(store, "plain")


@pytest.mark.parametrize("text", [t for _, t in HOSTILE], ids=[name for name, _ in HOSTILE])
def test_hostile_text_renders_inert_in_markdown(text: str, plain: dict[str, str], tmp_path: Path) -> None:
    with _build(tmp_path / "atif.duckdb", text) as store:
        docs = _documents(store, text)
    for name, md in docs.items():
        want, got = _shape(plain[name]), _shape(md)
        assert got.tags == want.tags, f"{name}: the text changed the document's structure"
        for mine, theirs in zip(got.blocks, want.blocks, strict=False):
            if "plain" not in theirs:
                assert mine == theirs, f"{name}: a figure moved or changed: {mine!r} (expected {theirs!r})"
    heading = _shape(docs["report by None"]).blocks[1]
    assert heading == f"atif report: {_shown(text).strip()}"
    compare_heading = _shape(docs["compare"]).blocks[1]
    assert compare_heading == f"atif compare: {_shown(text).strip()} base → {_shown(text).strip()}"


@pytest.mark.parametrize("text", [t for _, t in HOSTILE], ids=[name for name, _ in HOSTILE])
def test_hostile_text_keeps_gate_output_one_line_per_condition(text: str, tmp_path: Path) -> None:
    with _build(tmp_path / "atif.duckdb", text) as store:
        result = gate(store, text, min_pass={"*": 0.9}, min_reward=0.1, baseline=f"{text} base")
    out = render_gate_text(result)
    lines = out.splitlines()
    assert len(lines) == len(result.conditions) + 1
    assert all(line.startswith(("PASS  ", "FAIL  ")) for line in lines[:-1])
    assert lines[-1].startswith("gate FAILED")
    assert not [c for c in out if c != "\n" and unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    assert f"pass rate of {_shown(text)} >= 0.9" in lines[0]
