"""Content-addressed identity: canonical JSON, and the ids of trajectories and trials.

Adapters and the store both derive ids here, so a trajectory converted on one machine and
uploaded on another gets the same id.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

__all__ = ["canonical_json", "content_hash", "stable_id", "trajectory_id_of", "trial_id_of"]

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_json(doc: Any, *, indent: bool = False) -> bytes:
    """Canonical JSON bytes: sorted keys, UTF-8, compact (the input of every content hash) or indented.

    Integers beyond 64 bits, which the JSON reading policy keeps exact and orjson cannot write,
    go through the standard library in the same form.
    """
    try:
        return orjson.dumps(doc, option=_SORTED | (orjson.OPT_INDENT_2 if indent else 0))
    except orjson.JSONEncodeError:
        text = json.dumps(doc, sort_keys=True, ensure_ascii=False, allow_nan=False,
                          indent=2 if indent else None, separators=(",", ": ") if indent else (",", ":"))
        return text.encode()


def content_hash(doc: Any) -> str:
    """sha256 hex of the canonical JSON of ``doc``."""
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def trajectory_id_of(doc: dict[str, Any]) -> str:
    """The id of a trajectory: sha256 of its canonical JSON."""
    return content_hash(doc)


def trial_id_of(experiment: str, task_name: str, source_key: str, epoch: int) -> str:
    """The id of a trial: sha256 of its key ``[experiment, task, source id, epoch]``."""
    return hashlib.sha256(orjson.dumps([experiment, task_name, source_key, epoch])).hexdigest()


def stable_id(*parts: Any, length: int = 16) -> str:
    """A short deterministic id derived from ``parts`` (for sources that carry no id of their own)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(orjson.dumps(p, option=_SORTED, default=str))
        h.update(b"\x1f")
    return h.hexdigest()[:length]
