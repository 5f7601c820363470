"""The ``langchain`` adapter: LangChain message lists and LangGraph states or update streams."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.jsonio import sniff_json, sniff_jsonl_first
from atif.adapters.langchain.serialisation import (
    JSONL_SUFFIXES,
    describe,
    parse_langchain,
    read_document,
    serialisation_of,
)
from atif.adapters.langchain.steps import build_steps, main_model
from atif.adapters.values import (
    source_names,
)
from atif.errors import AdapterError
from atif.schema.identity import stable_id


class LangChainAdapter:
    """LangChain message lists (every serialisation), LangGraph final states and update streams."""

    name = "langchain"
    description = (
        "LangChain messages (messages_to_dict, model_dump, dumpd), LangGraph state and "
        "stream_mode='updates' chunks (v1, v2)"
    )

    def sniff(self, path: Path) -> Sniff:
        """Accept a JSON or JSONL file whose content is one of the LangChain shapes."""
        if path.suffix.lower() in JSONL_SUFFIXES:
            first, why = sniff_jsonl_first(path)
            if why:
                return Sniff(False, why)
            if serialisation_of(first):
                return Sniff(True, f"JSONL of LangChain messages ({serialisation_of(first)})")
            return Sniff(False, f"first line is not a LangChain message ({describe(first)})")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        parsed, why = parse_langchain(doc)
        if parsed is None:
            return Sniff(False, why)
        return Sniff(True, f"LangChain {parsed.shape} with {len(parsed.messages)} messages")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """Yield the one trajectory of the file."""
        doc = read_document(path)
        parsed, why = parse_langchain(doc)
        if parsed is None:
            raise AdapterError(f"{path}: not LangChain output: {why}")
        task, key = source_names(path, doc if isinstance(doc, Mapping) else None)
        yield convert_messages(
            parsed.messages,
            source=str(path),
            source_format=f"langchain/{parsed.shape}",
            task_name=str(options.extra.get("task_name") or task),
            trial_key=key,
            agent_name="langgraph" if parsed.shape.startswith("langgraph") else "langchain",
            also_read=parsed.also_read,
            skips=parsed.skips,
        )


def convert_messages(
    messages: list[dict[str, Any]],
    *,
    source: str,
    source_format: str,
    task_name: str,
    trial_key: str,
    agent_name: str = "langchain",
    also_read: int = 0,
    skips: Mapping[str, int] | None = None,
) -> Converted:
    """A ``Converted`` for one normalised message list (see :func:`normalize_message`).

    Accounting: every message is a record read; ``also_read`` more records are represented by
    them (streamed chunks of the same messages) and ``skips`` (reason -> count) were passed over.
    """
    builder = TrajectoryBuilder(agent_name=agent_name)
    by_position = build_steps(builder, messages)
    builder.count(also_read)
    for reason, n in (skips or {}).items():
        for _ in range(n):
            builder.skip(reason)
    # Derived from the steps, so one conversation gets one id whichever serialisation held it.
    builder.session_id = stable_id(builder.steps)
    builder.agent["model_name"] = main_model(builder.steps)
    if builder.agent["model_name"] is None:
        del builder.agent["model_name"]
    extra: dict[str, Any] = {"source_format": source_format}
    if by_position:
        extra["tool_results_paired_by_position"] = by_position
    traj = builder.build(extra=extra)
    ids = [m["id"] for m in messages if m.get("id")]
    trial = make_trial(
        traj,
        task_name=task_name,
        source_format=source_format,
        source_path=source,
        source_ids={"first_message_id": ids[0], "last_message_id": ids[-1]} if ids else None,
    )
    return Converted(traj, trial, trial_key=trial_key, source=source, warnings=list(builder.warnings),
                     tally=builder.tally())
