"""Fitting with READS_FIRST drops read-only tool steps before the middle of the run: the conversation and the actions stay."""

from __future__ import annotations

import re
from typing import Any

from atif.judge.actions import is_read_only
from atif.judge.context import StepView, render_transcript
from atif.judge.fit import READS_FIRST, fit


def _count(messages: list[dict[str, Any]]) -> int:
    return sum(len(m["content"]) // 4 + 4 for m in messages)


def _build(views: list[StepView]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": render_transcript(views, "f00d")}]


def _read(step: int) -> StepView:
    return StepView(step_id=step, source="agent", tool_calls=[
        {"tool_call_id": f"r{step}", "function_name": "search_direct_flight", "arguments": '{"origin": "JFK"}'}],
        observations=[{"source_call_id": f"r{step}", "content": f"READ-{step} " + "x" * 150}])


def _views() -> list[StepView]:
    views = [StepView(step_id=1, source="user", message="Cancel my booking ABC123 please. FIRST")]
    views += [_read(i) for i in range(2, 12)]
    views.append(StepView(step_id=12, source="agent", message="Shall I cancel ABC123? Please confirm."))
    views.append(StepView(step_id=13, source="user", message="Yes, CONFIRMED."))
    views.append(StepView(step_id=14, source="agent", tool_calls=[
        {"tool_call_id": "w", "function_name": "cancel_reservation", "arguments": '{"reservation_id": "ABC123"}'}],
        observations=[{"source_call_id": "w", "content": '{"status": "cancelled"}'}]))
    views += [_read(i) for i in range(15, 25)]
    views.append(StepView(step_id=25, source="agent", message="Done. LAST"))
    return views


def test_read_only_steps_are_the_agents_tool_steps_that_change_nothing() -> None:
    views = _views()
    assert is_read_only(views[1])
    assert not is_read_only(views[0]) and not is_read_only(views[11]) and not is_read_only(views[13])
    assert not is_read_only(StepView(step_id=3, source="agent", message="Looking it up.", tool_calls=views[1].tool_calls))


def test_reads_go_before_the_conversation_and_the_write_action() -> None:
    views = _views()
    full = _count(_build(views))
    fitted = fit(views, _build, _count, full * 2 // 3, frame_id="f00d", stages=READS_FIRST)
    assert fitted.fits and fitted.truncated
    text = fitted.messages[0]["content"]
    for kept in ("FIRST", "Please confirm", "CONFIRMED", "cancel_reservation", '"cancelled"', "LAST"):
        assert kept in text
    markers = [int(n) for n in re.findall(r"\[… (\d+) steps elided f00d …\]", text)]
    # Each run of dropped reads is one marker where the steps were; together they count every step gone.
    assert markers and sum(markers) == sum(v.elided_steps for v in fitted.views)
    shown = {v.step_id for v in fitted.views if not v.elided_steps}
    assert len(shown) + sum(markers) == len(views)
    assert all(is_read_only(v) for v in views if v.step_id not in shown)


def test_a_tight_budget_still_cuts_the_middle_after_the_reads_are_gone() -> None:
    views = _views()
    fitted = fit(views, _build, _count, 120, frame_id="f00d", stages=READS_FIRST)
    text = fitted.messages[0]["content"]
    assert "FIRST" in text and "LAST" in text
    assert sum(v.elided_steps for v in fitted.views) + sum(1 for v in fitted.views if not v.elided_steps) == len(views)


def test_by_default_the_middle_window_goes_and_reads_are_not_singled_out() -> None:
    views = _views()
    fitted = fit(views, _build, _count, _count(_build(views)) * 2 // 3, frame_id="f00d")
    markers = re.findall(r"\[… (\d+) steps elided f00d …\]", fitted.messages[0]["content"])
    assert len(markers) == 1   # one middle window, as before read-only steps could go first
