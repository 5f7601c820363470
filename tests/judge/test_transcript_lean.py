"""The lean transcript: tool outputs by their key fields, write actions whole, short call ids."""

from __future__ import annotations

import json

import pytest

from atif.judge import transcript
from atif.judge.context import StepView, render_transcript
from atif.judge.transcript import compact_views, is_write, key_fields

POLICY = "# Airline policy\n" + "Confirm before any change. " * 60
RESERVATION = {"reservation_id": "S61CZX", "user_id": "sophia_silva_7557", "origin": "LAX", "destination": "CLT",
               "flights": [{"flight_number": "HAT228", "price": 120}] * 4, "passengers": [{"first_name": "Sophia"}],
               "created_at": "2024-05-02T04:38:01", "insurance": "no", "status": "cancelled"}
FLIGHTS = [{"flight_number": f"HAT{n:03d}", "origin": "MSP", "destination": "EWR", "prices": {"economy": 100 + n}}
           for n in (141, 196, 300)]
LONG_ID = "call_79goaWVFKtpR6WYbdt4clISJ"
NEW_FLIGHTS = json.dumps({"reservation_id": "S61CZX", "cabin": "business", "flights": [
    {"flight_number": "HAT228", "date": "2024-05-23"}, {"flight_number": "HAT043", "date": "2024-05-24"},
    {"flight_number": "HAT157", "date": "2024-05-26"}, {"flight_number": "HAT041", "date": "2024-05-27"}],
    "payment_id": "credit_card_4421486"})


def _views() -> list[StepView]:
    return [
        StepView(step_id=1, source="system", message=POLICY),
        StepView(step_id=2, source="user", message="Please upgrade S61CZX to business."),
        StepView(step_id=3, source="agent", tool_calls=[
            {"tool_call_id": "call_Ab7YHfneXdQk4tCXNRPh0C8u", "function_name": "search_direct_flight",
             "arguments": '{"origin": "MSP", "destination": "EWR"}'}],
            observations=[{"source_call_id": "call_Ab7YHfneXdQk4tCXNRPh0C8u", "content": json.dumps(FLIGHTS)}]),
        StepView(step_id=4, source="agent", tool_calls=[
            {"tool_call_id": LONG_ID, "function_name": "update_reservation_flights", "arguments": NEW_FLIGHTS}],
            observations=[{"source_call_id": LONG_ID, "content": json.dumps(RESERVATION)}]),
        StepView(step_id=5, source="agent", message="Done: S61CZX is now business. " * 3),
    ]


def test_write_calls_are_recognised_by_their_verb() -> None:
    assert is_write("cancel_reservation") and is_write("update_reservation_flights") and is_write("sendEmail")
    assert is_write("book_reservation") and is_write("transfer_to_human_agents")
    assert not is_write("get_reservation_details") and not is_write("search_direct_flight")
    assert not is_write("think") and not is_write("calculate") and not is_write("")


def test_key_fields_of_an_object_put_outcome_fields_first_and_nested_values_by_size() -> None:
    out = key_fields(json.dumps(RESERVATION), 240, "f00d")
    assert out.startswith('{"reservation_id": "S61CZX", "user_id": "sophia_silva_7557", "status": "cancelled"')
    assert "[… " in out and "chars elided f00d …]" in out
    summary = key_fields(json.dumps(RESERVATION), 320)
    assert '"flights": [4 items]' in summary and '"passengers": [1 items]' in summary


def test_key_fields_of_a_list_name_each_item_by_its_first_value() -> None:
    out = key_fields(json.dumps(FLIGHTS), 120)
    assert out.startswith('[3 items: "HAT141", "HAT196", "HAT300"]')
    assert "chars elided" in out


def test_key_fields_leave_short_text_alone_and_cut_long_plain_text_at_its_start() -> None:
    assert key_fields("Error: reservation not found", 120) == "Error: reservation not found"
    long = "Flight HAT228 is delayed. " * 20
    out = key_fields(long, 120)
    assert out.startswith(long[:120]) and f"{len(long) - 120} chars elided" in out


def test_lean_keeps_write_arguments_whole_and_shortens_reads_and_the_policy() -> None:
    views = _views()
    lean = compact_views(views, "f00d", style="lean")
    compact = compact_views(views, "f00d", style="compact")
    # The write's arguments are the action judged: whole in lean, cut in compact.
    assert lean[3].tool_calls[0]["arguments"] == NEW_FLIGHTS
    assert compact[3].tool_calls[0]["arguments"] != NEW_FLIGHTS
    # Its output keeps the outcome field.
    assert '"status": "cancelled"' in lean[3].observations[0]["content"]
    # A read's output: which flights came back, not their prices.
    assert lean[2].observations[0]["content"].startswith('[3 items: "HAT141", "HAT196", "HAT300"]')
    assert "prices" not in lean[2].observations[0]["content"]
    assert len(lean[0].message) < 400 and lean[0].message.startswith("# Airline policy")
    assert compact[0].message == POLICY
    # The conversation stays as it was.
    assert lean[1] is views[1] and lean[4] is views[4]
    assert len(render_transcript(lean, "f00d")) < len(render_transcript(compact, "f00d"))


def test_lean_shortens_long_call_ids_consistently() -> None:
    lean = compact_views(_views(), style="lean")
    assert [c["tool_call_id"] for v in lean for c in v.tool_calls] == ["c1", "c2"]
    assert [o["source_call_id"] for v in lean for o in v.observations] == ["c1", "c2"]
    text = render_transcript(lean, "f00d")
    assert "<<<tool call c2 | update_reservation_flights>>>" in text and "<<<tool result c2>>>" in text
    assert LONG_ID not in text


def test_the_default_style_is_used_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    views = _views()
    monkeypatch.setattr(transcript, "DEFAULT_STYLE", "lean")
    assert compact_views(views, "f00d") == compact_views(views, "f00d", style="lean")
    monkeypatch.setattr(transcript, "DEFAULT_STYLE", "compact")
    assert compact_views(views, "f00d") == compact_views(views, "f00d", style="compact")
    with pytest.raises(ValueError, match="unknown transcript style 'terse'"):
        compact_views(views, style="terse")
