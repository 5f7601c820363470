"""Which tool calls change state: the actions an outcome depends on.

Whether an agent run succeeded usually rests on what it *did* (booked, cancelled, wrote,
sent), less on what it looked up. The lean transcript keeps such calls' arguments whole, and
fitting drops the steps that only read before any other step.
"""

from __future__ import annotations

import re

from atif.judge.context import StepView

__all__ = ["WRITE_VERBS", "is_read_only", "is_write"]

WRITE_VERBS = frozenset({
    "add", "apply", "assign", "book", "cancel", "change", "create", "delete", "edit", "exchange", "insert",
    "modify", "move", "pay", "post", "put", "refund", "remove", "rename", "reset", "return", "save", "send",
    "set", "submit", "transfer", "update", "upgrade", "upload", "write",
})
"""First words of tool names that change state (``cancel_reservation``, ``sendEmail``)."""
_WORD = re.compile(r"[A-Za-z][a-z]*")


def is_write(function_name: str) -> bool:
    """True when the tool's name starts with a state-changing verb (``cancel_reservation``, ``sendEmail``)."""
    first = _WORD.match(function_name or "")
    return first is not None and first.group(0).lower() in WRITE_VERBS


def is_read_only(v: StepView) -> bool:
    """An agent step that only calls tools, none of which changes state: no words to anyone, no action."""
    return (v.source == "agent" and not v.elided_steps and not v.message.strip() and not (v.reasoning or "").strip()
            and bool(v.tool_calls) and not any(is_write(c["function_name"]) for c in v.tool_calls))
