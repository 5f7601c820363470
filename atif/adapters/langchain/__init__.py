"""LangChain, LangGraph and LangSmith output to ATIF.

Inputs, each detected from its shape:

* message lists in every LangChain serialisation: ``messages_to_dict`` (``{"type", "data"}``),
  ``[m.model_dump()]`` (``{"type", "content", ...}``) and ``langchain_core.load.dumpd``
  (``{"lc": 1, "type": "constructor", "id": [..., "AIMessage"], "kwargs": {...}}``), as a JSON
  array or one message per line;
* a LangGraph final state ``{"messages": [...]}``;
* the chunks of ``graph.stream(..., stream_mode="updates")``: v1 (``{node: update}``, or
  ``[namespace, {node: update}]`` with subgraphs) and v2 (``{"type": "updates", "ns", "data"}``),
  replayed with LangGraph's ``add_messages`` rules (same id replaces, ``RemoveMessage`` deletes);
* LangSmith runs (:class:`LangSmithAdapter`): a run tree with nested ``child_runs``, a list of
  runs, or a JSONL export with one run per line; one trajectory per trace.

Mapping rules: a ToolMessage is never a step; its content becomes an observation result of
the agent step whose ``tool_calls`` hold its ``tool_call_id``. Tool-call blocks inside
``content`` (Anthropic ``tool_use``, Responses ``function_call``, v1 ``tool_call``) repeat
``.tool_calls`` and are only used for calls missing there. Reasoning comes from ``thinking``
and ``reasoning`` blocks and ``additional_kwargs.reasoning_content``. Usage comes from
``usage_metadata`` (whose ``input_tokens`` already include cached tokens), else from the
provider's raw usage in ``response_metadata``. ``invalid_tool_calls`` and tools that failed
(``status: "error"``, or a LangSmith tool run with an error) are kept with the error in
``extra``. Message lists carry no clock, so only LangSmith runs give timestamps, the
duration and (in the model run's input) the system prompt a LangGraph agent adds.

Modules: :mod:`.serialisation` (reading the inputs), :mod:`.steps` (messages to steps),
:mod:`.adapter` (LangChain / LangGraph), :mod:`.langsmith` (LangSmith runs).
"""

from atif.adapters.langchain.adapter import LangChainAdapter, convert_messages
from atif.adapters.langchain.langsmith import LangSmithAdapter
from atif.adapters.langchain.serialisation import normalize_message, parse_langchain

__all__ = ["LangChainAdapter", "LangSmithAdapter", "convert_messages", "normalize_message", "parse_langchain"]
