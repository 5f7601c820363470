"""Verdicts read as a person would: a table of real-looking answers, through the HTTP layer.

Every answer is served by a mocked OpenAI-compatible API (respx) to a real judge run, and the
stored rating must be what a careful reader would take from it: a verdict when the final line
gives one, ``UNSCORED`` with the raw answer when it names both verdicts or neither.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import respx

from atif.judge.verdict import parse_verdict
from atif.store import Store
from tests.judge.test_engine import CHAT, build_store, completion, ratings, run

# (answer, what a person reads)
ANSWERS: list[tuple[str, str]] = [
    # a verdict after a cue at the end of the final line
    ("The file was created in step 2 and its content matches, so my verdict: YES", "YES"),
    ("The agent never ran the tests.\nAnswer: NO.", "NO"),
    ("Everything the task asked for is there.\n\n**YES**", "YES"),
    ("It wrote the file but into the wrong folder.\nVerdict - no", "NO"),
    ("Step 2 shows the write succeeded.\nFinal answer: **YES**", "YES"),
    ("The output says 3 failed.\nTherefore the answer is NO.", "NO"),
    ("I checked the transcript twice.\nMy final verdict is: yes", "YES"),
    ("The agent asked for confirmation first.\nVerdict: YES - it confirmed before deleting.", "YES"),
    ("No test was ever run.\nRating: NO because nothing verifies the claim", "NO"),
    ("Looking at steps 2 to 4, the patch applies cleanly.\n<verdict>YES</verdict>", "YES"),
    ("The summary claims success but the last output shows an error.\nConclusion — NO.", "NO"),
    ("Decision: PASS", "YES"),
    ("The run crashed at step 3.\n> **Verdict:** FAIL", "NO"),
    ("Reasoning: there is no evidence of a test run, so the claim is unsupported.\nAnswer: NO", "NO"),
    ("There is no sign of any error in the observations, so the answer is YES.", "YES"),
    ("### Verdict\nYES", "YES"),
    ("All criteria met.\n`YES`", "YES"),
    ("Not done.\n[NO]", "NO"),
    ("The agent did exactly what was asked.\nYes.", "YES"),
    ("It refused to continue.\n\n  no  ", "NO"),
    ("Final Verdict = NO", "NO"),
    ("The edits match the request. Overall verdict: **Yes**.", "YES"),
    ('Checked.\n"NO"', "NO"),
    ("The agent completed the task; the judgement: YES!", "YES"),
    # JSON still comes first, wherever it sits
    ('Here you go:\n```json\n{"reasoning": "ok", "rating": "YES", "cited_steps": [2]}\n```', "YES"),
    ('{"reasoning": "the test failed", "rating": "NO", "cited_steps": []}', "NO"),
    # both verdicts named, or neither: never guessed
    ("It is hard to say.\nVerdict: YES or NO, it depends on the reading.", "UNSCORED"),
    ("Partly YES, partly NO.", "UNSCORED"),
    ("I think yes, the agent did it.", "UNSCORED"),
    ("YES, mostly.\nBut some parts are missing.", "UNSCORED"),
    ("The answer is not YES.", "UNSCORED"),
    ("The agent wrote the file.\nI hope this helps!", "UNSCORED"),
    ("Answer: maybe", "UNSCORED"),
    ("Answer: YES\nAnswer: NO", "NO"),  # the final line decides
    ("Verdict: YES. Actually, on reflection, NO.", "UNSCORED"),
    ("yesterday the agent wrote notes\nnothing more", "UNSCORED"),
    ("The answer is YESTERDAY's file.", "UNSCORED"),
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_parser_reads_the_answer_as_a_person_would(answer: str, expected: str) -> None:
    verdict = parse_verdict(answer)
    assert verdict.rating == expected, verdict
    if expected == "UNSCORED":
        assert verdict.raw == answer and verdict.error


def test_reasoning_keeps_the_prose_before_a_cued_verdict() -> None:
    v = parse_verdict("The file was created in step 2, so my verdict: YES")
    assert (v.rating, v.reasoning) == ("YES", "The file was created in step 2")


def test_the_table_is_big_enough() -> None:
    assert len(ANSWERS) >= 30
    assert {e for _, e in ANSWERS} == {"YES", "NO", "UNSCORED"}


def test_a_judge_run_stores_each_answer_as_read(tmp_path: Path) -> None:
    trials = [{"task_name": f"t{i:02d}", "trajectory": _trajectory(f"t{i:02d}")} for i in range(len(ANSWERS))]
    db = build_store(tmp_path, [{"label": "done", "question": "Did the agent finish?", "kind": "llm"}],
                     judge={"structured": "text"}, trials=trials)
    by_task = {f"t{i:02d}": answer for i, (answer, _) in enumerate(ANSWERS)}

    def reply(request: object) -> object:
        body = request.content.decode()  # type: ignore[attr-defined]
        task = next(t for t in by_task if f"do {t}." in body)
        return completion(by_task[task])

    with respx.mock(assert_all_called=False) as api:
        api.post(CHAT).mock(side_effect=reply)
        run(db)
    stored = ratings(db)
    for i, (answer, expected) in enumerate(ANSWERS):
        row = stored[(f"t{i:02d}", "done")]
        assert row["verdict"] == expected, (answer, row)
        assert bool(row["error"]) == (expected == "UNSCORED")
    with Store(db) as store:
        kept = {raw for raw, verdict in store.query("SELECT raw_output, verdict FROM rating_data")[1]
                if verdict == "UNSCORED"}
    assert kept == {answer for answer, expected in ANSWERS if expected == "UNSCORED"}


def _trajectory(task: str) -> dict[str, object]:
    from tests.judge.test_engine import trajectory

    return trajectory(task)
