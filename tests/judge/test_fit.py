"""Fitting transcripts to the input budget: middles elided, with markers, ends kept, flagged."""

from __future__ import annotations

import re
from typing import Any

from atif.judge.context import StepView, render_transcript, step_views
from atif.judge.fit import elide_middle, fit, quick_fits


def _count(messages: list[dict[str, Any]]) -> int:
    # A deterministic stand-in tokenizer: four characters a token.
    return sum(len(m["content"]) // 4 + 4 for m in messages)


def _build(views: list[StepView]) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You grade."}, {"role": "user", "content": render_transcript(views)}]


def _trajectory(n_steps: int, obs_chars: int = 50, arg_chars: int = 20) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"step_id": 1, "source": "user", "message": "Do the task FIRST-STEP."}]
    for i in range(2, n_steps):
        steps.append({
            "step_id": i, "source": "agent", "message": f"step {i} thinking",
            "tool_calls": [{"tool_call_id": f"c{i}", "function_name": "bash", "arguments": {"cmd": "x" * arg_chars}}],
            "observation": {"results": [{"source_call_id": f"c{i}", "content": f"OUT{i}:" + "o" * obs_chars}]},
        })
    steps.append({"step_id": n_steps, "source": "agent", "message": "LAST-STEP done"})
    return {"schema_version": "ATIF-v1.8", "agent": {"name": "a", "version": "1"}, "steps": steps}


def test_elide_middle_keeps_both_ends_and_says_how_much() -> None:
    text = "A" * 100 + "B" * 100
    out = elide_middle(text, 50)
    assert out.startswith("A" * 25) and out.endswith("B" * 25)
    assert "[… 150 chars elided …]" in out
    assert elide_middle("short", 50) == "short"


def test_quick_fit_is_a_safe_upper_bound() -> None:
    assert quick_fits([{"content": "abcd"}], 100)
    assert not quick_fits([{"content": "a" * 200}], 100)
    # Non-ASCII text counts its UTF-8 bytes, never fewer tokens than a tokenizer could make.
    assert not quick_fits([{"content": "é" * 60}], 100)


def test_small_trajectory_is_left_alone() -> None:
    views = step_views(_trajectory(5))
    fitted = fit(views, _build, _count, 10_000)
    assert fitted.fits and not fitted.truncated
    assert fitted.views is views


def test_long_observations_are_cut_first_and_steps_kept() -> None:
    views = step_views(_trajectory(6, obs_chars=20_000))
    full = _count(_build(views))
    fitted = fit(views, _build, _count, full // 3)
    assert fitted.fits and fitted.truncated
    text = fitted.messages[1]["content"]
    assert re.search(r"\[… \d+ chars elided …\]", text)
    assert "steps elided" not in text
    # Every step survives, with the start and end of each observation.
    for i in range(2, 6):
        assert f"OUT{i}:" in text
    assert _count(fitted.messages) <= full // 3


def test_many_steps_lose_their_middle_but_keep_first_and_last() -> None:
    views = step_views(_trajectory(200, obs_chars=150))
    full = _count(_build(views))
    fitted = fit(views, _build, _count, full // 4)
    assert fitted.fits and fitted.truncated
    text = fitted.messages[1]["content"]
    m = re.search(r"\[… (\d+) steps elided [0-9a-f]{8} …\]", text)
    assert m and int(m.group(1)) > 50
    assert "FIRST-STEP" in text and "LAST-STEP" in text
    # The marker stands where the steps were: before it the early steps, after it the late ones.
    before, after = text.split(m.group(0))
    assert "<<<step 2 | agent>>>" in before and "<<<step 199 | agent>>>" in after
    assert sum(v.elided_steps for v in fitted.views) == int(m.group(1))


def test_one_giant_message_is_cut_as_a_last_resort() -> None:
    traj = _trajectory(3)
    traj["steps"][0]["message"] = "HEAD" + "m" * 50_000 + "TAIL"
    views = step_views(traj)
    fitted = fit(views, _build, _count, 2_000)
    assert fitted.fits and fitted.truncated
    text = fitted.messages[1]["content"]
    assert "HEAD" in text and "TAIL" in text and "chars elided" in text


def test_impossible_budget_says_it_does_not_fit() -> None:
    views = step_views(_trajectory(50, obs_chars=1000))
    fitted = fit(views, _build, _count, 20)
    assert not fitted.fits
    assert fitted.truncated


def test_fit_does_not_change_the_shared_views() -> None:
    views = step_views(_trajectory(8, obs_chars=5000))
    before = [v.observations[0]["content"] for v in views if v.observations]
    fit(views, _build, _count, 800)
    assert [v.observations[0]["content"] for v in views if v.observations] == before
