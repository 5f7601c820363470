"""A declarative mapping for any other runner: a YAML file of JMESPath expressions.

The mapping says where a runner's records are and how each record becomes an ATIF step or
an observation. Example (see ``docs/mappings/`` for complete ones)::

    trials: sessions                 # optional: the trial documents inside the file (default: the file)
    group_by: run_id                 # optional: split the records into one trial per value
    records: events                  # the records of one trial (default: the trial itself, if a list)
    task_name: task.name
    trial_id: id
    session_id: id
    agent: {name: "'my-runner'", version: meta.version, model_name: meta.model}
    reward: result.score             # also: error, instruction, started_at, finished_at,
                                     # duration_seconds, metadata: {key: EXPR}
    rules:                           # first matching rule wins, per record
      - when: "type == 'user'"
        source: user                 # system | user | agent literally, or an expression
        message: text
        timestamp: iso(ts)
      - when: "type == 'llm'"
        source: agent
        message: text(content)
        model_name: model
        reasoning_content: thinking
        tool_calls: {each: calls, id: id, name: name, arguments: from_json(args)}
        metrics: {prompt_tokens: usage.input, completion_tokens: usage.output}
      - when: "type == 'tool_result'"
        observation: {source_call_id: call_id, content: output}
      - when: "type == 'heartbeat'"
        skip: true

Top-level expressions are evaluated on the trial document (an object, or the list of
records of a JSONL file / group); rule expressions on one record (``tool_calls`` fields and
``observation`` fields with ``each`` on each item). Extra JMESPath functions:
``from_json(s)`` parses a JSON string, ``iso(t)`` turns epoch seconds or milliseconds (or
an ISO string) into ISO 8601 UTC, ``text(c)`` flattens content blocks to a string.

An observation goes to the agent step whose tool calls hold its ``source_call_id``, else to
the step its own rule created, else to the latest step. Records no rule matches are
reported as a warning (``unmatched records: ...``), which ``atif convert --dry-run`` lists.
A malformed mapping (bad YAML, an unknown key, a bad JMESPath expression or an unknown
function) raises :class:`AdapterError` naming the file and the key.

Modules: :mod:`.expressions` (JMESPath, compiled), :mod:`.spec` (the mapping file),
:mod:`.adapter` (applying the rules).
"""

from atif.adapters.mapping.adapter import MappingAdapter, convert_document
from atif.adapters.mapping.spec import MappingSpec, load_mapping

__all__ = ["MappingAdapter", "MappingSpec", "convert_document", "load_mapping"]
