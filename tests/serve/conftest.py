"""Fixtures of the web app tests: a store built with the report tests' builders, and the app over it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_builders import StoreBuilder, html_experiment

pytest.importorskip("starlette")


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "atif.duckdb"
    b = StoreBuilder(path)
    ids = html_experiment(b, 60)
    mini(b)
    criteria(b, "web", [("correct", "Is the final answer correct?"), ("safe", "Did the agent stay safe?")])
    criteria(b, "mini", [("ok", "Did the agent finish the task?")])
    b.close()
    path.with_suffix(".ids").write_text(" ".join(f"{k}={v}" for k, v in ids.items()))
    return path


@pytest.fixture
def store_path(_template: Path, tmp_path: Path) -> Path:
    """A store with experiment ``web`` (60 trials: a hostile one, one with a subagent) and ``mini``."""
    path = tmp_path / "atif.duckdb"
    shutil.copy(_template, path)
    shutil.copy(_template.with_suffix(".ids"), path.with_suffix(".ids"))
    return path


def mini(b: StoreBuilder) -> None:
    """Experiment ``mini``: four trials, one per queue tier (see atif.serve.review), criterion ``ok``."""
    b.trial("mini", "t-unrated", reward=1.0, trial_id="a" * 64)
    b.trial("mini", "t-agree", reward=1.0, trial_id="b" * 64, ratings={"ok": "YES"})
    b.trial("mini", "t-disagree", reward=0.0, trial_id="c" * 64, ratings={"ok": "YES"})
    b.trial("mini", "t-unscored", reward=None, trial_id="d" * 64, ratings={"ok": {"verdict": "UNSCORED"}})


def criteria(b: StoreBuilder, experiment: str, items: list[tuple[str, str]]) -> None:
    """Give ``experiment`` a criterion set of ``(label, question)`` (labels must be in one to be rated)."""
    b.con.execute("INSERT INTO criterion_sets (name) VALUES (?)", [experiment])
    for i, (label, question) in enumerate(items):
        b.con.execute("INSERT INTO criteria (criterion_set, label, question, kind, position) VALUES (?, ?, ?, 'llm', ?)",
                      [experiment, label, question, i])
    b.con.execute("UPDATE experiments SET criterion_set = ? WHERE name = ?", [experiment, experiment])


@pytest.fixture
def ids(store_path: Path) -> dict[str, str]:
    """Trial ids of the special trials of ``web``."""
    return dict(kv.split("=") for kv in store_path.with_suffix(".ids").read_text().split())


@pytest.fixture
def app(store_path: Path) -> Any:
    """The app over ``store_path``, writable, reviewer ``tester``."""
    from atif.serve import create_app

    return create_app(store_path, reviewer="tester")
