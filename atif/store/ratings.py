"""Ratings and judge-cache answers: checking rows, precedence between sources, writing, and the pending pairs.

Precedence: ``human`` > ``precomputed`` > ``function``/``match`` > ``judge``. A rating never
replaces one of a higher source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson

from atif.errors import NotFoundError, StoreError
from atif.store.keys import trial_key_sql

__all__ = [
    "CACHE_FIELDS",
    "PRECEDENCE",
    "RATING_FIELDS",
    "PendingRating",
    "cache_keys",
    "cache_row",
    "check_shard",
    "check_sources",
    "check_verdict",
    "in_shard",
    "pending_count",
    "pending_pairs",
    "rated_pairs",
    "rating_row",
    "write_cache",
    "write_ratings",
]

PRECEDENCE: dict[str, int] = {"human": 4, "precomputed": 3, "function": 2, "match": 2, "judge": 1}
"""Rating sources, higher wins: a rating is never overwritten by a lower source."""

RATING_FIELDS = (
    "trial_id", "criterion", "verdict", "reasoning", "cited_steps", "source", "judge_model", "prompt_tokens",
    "completion_tokens", "cached_tokens", "cost_usd", "latency_ms", "cache_key", "cached", "truncated",
    "prompt_version", "error", "raw_output", "votes", "agreement", "p_yes", "segmented",
)
CACHE_FIELDS = (
    "cache_key", "model", "verdict", "reasoning", "cited_steps", "prompt_tokens", "completion_tokens",
    "cached_tokens", "cost_usd", "latency_ms", "truncated", "raw_output", "p_yes", "created_at",
)
VERDICTS = ("YES", "NO", "UNSCORED")
_DEFAULTS: dict[str, Any] = {"cached": False, "truncated": False, "segmented": False}
_VOTES = RATING_FIELDS.index("votes")
_PAIRS = "(SELECT unnest(?::VARCHAR[]) AS trial_id, unnest(?::VARCHAR[]) AS criterion)"
# DuckDB pays per statement, not per row: rows go in multi-row statements of this many.
_CHUNK = 256
# Column types of rating_data and judge_cache: new rows go in as one typed list per column,
# which DuckDB converts in bulk (a VALUES list binds each value on its own, about 20x slower).
_TYPES: dict[str, str] = {
    "cited_steps": "INTEGER[]", "prompt_tokens": "BIGINT", "completion_tokens": "BIGINT", "cached_tokens": "BIGINT",
    "cost_usd": "DOUBLE", "latency_ms": "DOUBLE", "agreement": "DOUBLE", "p_yes": "DOUBLE", "cached": "BOOLEAN",
    "truncated": "BOOLEAN", "segmented": "BOOLEAN",
}


@dataclass(frozen=True, slots=True)
class PendingRating:
    """A trial x criterion pair for the judge: one with no rating yet, or a rated one taken up again."""

    trial_id: str
    """The trial to rate."""
    task_name: str
    """Its task."""
    criterion: str
    """The criterion label."""
    question: str
    """The YES/NO question of the criterion."""
    kind: str
    """``llm``, ``function`` or ``match``."""
    config: dict[str, Any] = field(default_factory=dict)
    """Kind-specific settings (module and function, or the reference tool calls and match modes)."""


def rating_row(row: Mapping[str, Any]) -> list[Any]:
    """A rating mapping as ``rating_data`` values in ``RATING_FIELDS`` order, plus its ``replace`` mode."""
    unknown = set(row) - set(RATING_FIELDS) - {"replace"}
    if unknown:
        raise StoreError(f"unknown rating field {min(unknown)!r}")
    for name in ("trial_id", "criterion"):
        if not isinstance(row.get(name), str):
            raise StoreError(f"a rating needs `{name}` (a string), got {row.get(name)!r}")
    check_verdict(row.get("verdict"))
    if row.get("source") not in PRECEDENCE:
        raise StoreError(f"source must be one of {', '.join(PRECEDENCE)}, got {row.get('source')!r}")
    values = [row.get(name, _DEFAULTS.get(name)) for name in RATING_FIELDS]
    cited = values[4]
    values[4] = list(cited) if cited is not None else None
    votes = values[_VOTES]
    if votes is not None and not isinstance(votes, str):  # a JSON column, inserted as its text
        values[_VOTES] = orjson.dumps(votes).decode()
    values.append(row.get("replace"))
    return values


def cache_row(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    """A cache mapping as ``judge_cache`` values (``CACHE_FIELDS`` but ``created_at``), plus ``replace``."""
    fields = CACHE_FIELDS[:-1]
    unknown = set(entry) - set(fields) - {"replace"}
    if unknown:
        raise StoreError(f"unknown cache field {min(unknown)!r}")
    if not isinstance(entry.get("cache_key"), str):
        raise StoreError(f"a cache entry needs `cache_key` (a string), got {entry.get('cache_key')!r}")
    check_verdict(entry.get("verdict"))
    values = [entry.get(name, _DEFAULTS.get(name)) for name in fields]
    cited = values[4]
    values[4] = list(cited) if cited is not None else None
    values.append(bool(entry.get("replace")))
    return tuple(values)


def check_verdict(verdict: Any) -> None:
    """Raise :class:`StoreError` unless ``verdict`` is YES, NO or UNSCORED."""
    if verdict not in VERDICTS:
        raise StoreError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")


def check_sources(sources: Sequence[str]) -> None:
    """Raise :class:`StoreError` for a rating source not in :data:`PRECEDENCE`."""
    unknown = [s for s in sources if s not in PRECEDENCE]
    if unknown:
        raise StoreError(f"source must be one of {', '.join(PRECEDENCE)}, got {unknown[0]!r}")


def write_ratings(
    db: duckdb.DuckDBPyConnection,
    ratings: list[list[Any]],
    entries: list[tuple[Any, ...]],
    *,
    replace_judge: bool,
    skip_unknown: bool,
) -> list[bool]:
    """Write checked rating rows and cache entries in the caller's transaction; True per rating stored."""
    kept, delete, insert = _plan(db, ratings, replace_judge, skip_unknown)
    write_cache(db, entries)
    # A plain delete + insert beats DuckDB's ON CONFLICT DO UPDATE by about 2x here. What is
    # replaced is kept in rating_history (the `replaced_ratings` view).
    for chunk in _chunks(delete):
        db.execute("INSERT INTO rating_history BY NAME "
                   f"SELECT r.*, current_timestamp AS replaced_at FROM rating_data r "
                   f"JOIN {_PAIRS} k ON r.trial_id = k.trial_id AND r.criterion = k.criterion",
                   [[k[0] for k in chunk], [k[1] for k in chunk]])
        db.execute(f"DELETE FROM rating_data USING {_PAIRS} k "
                   "WHERE rating_data.trial_id = k.trial_id AND rating_data.criterion = k.criterion",
                   [[k[0] for k in chunk], [k[1] for k in chunk]])
    _insert(db, "rating_data", RATING_FIELDS, [r[:-1] for r in insert], {"trial_key": trial_key_sql("trial_id")})
    return kept


def cache_keys(db: duckdb.DuckDBPyConnection, model: str | None) -> set[str]:
    """The judge cache keys of answers by ``model`` or by no model (one query, keys only)."""
    rows = db.execute("SELECT cache_key FROM judge_cache WHERE model = ? OR model IS NULL", [model]).fetchall()
    return {r[0] for r in rows}


def write_cache(db: duckdb.DuckDBPyConnection, entries: list[tuple[Any, ...]]) -> None:
    """Write checked cache entries (one per key) in the caller's transaction.

    An entry marked ``replace`` overwrites the stored answer; any other leaves a stored one as
    it is. Plain statements (no ``INSERT OR ...``): a team store has no keys to conflict on.
    """
    if not entries:
        return
    keys = [e[0] for e in entries]
    stored = {r[0] for r in db.execute("SELECT cache_key FROM judge_cache WHERE cache_key IN ?", [keys]).fetchall()}
    replaced = [e[0] for e in entries if e[-1] and e[0] in stored]
    for chunk in _chunks(replaced):
        db.execute("DELETE FROM judge_cache WHERE cache_key IN ?", [list(chunk)])
    new = [e[:-1] for e in entries if e[-1] or e[0] not in stored]
    _insert(db, "judge_cache", CACHE_FIELDS[:-1], new)


def _insert(
    db: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
    derived: Mapping[str, str] | None = None,
) -> None:
    """Insert ``rows`` (values in ``columns`` order) in one statement: one typed list per column.

    ``derived`` maps further target columns to SQL expressions over ``columns``.
    """
    if not rows:
        return
    selects = ", ".join(f"unnest(${n}::{_TYPES.get(c, 'VARCHAR')}[]) AS {c}" for n, c in enumerate(columns, start=1))
    extra = dict(derived or {})
    db.execute(f"INSERT INTO {table} ({', '.join([*columns, *extra])}) "
               f"SELECT *{''.join(', ' + e for e in extra.values())} FROM (SELECT {selects})",
               [[row[i] for row in rows] for i in range(len(columns))])


def _plan(
    db: duckdb.DuckDBPyConnection, ratings: list[list[Any]], replace_judge: bool, skip_unknown: bool
) -> tuple[list[bool], list[tuple[str, str]], list[list[Any]]]:
    """Which rows win (in order), which stored pairs they replace, and the rows to insert."""
    if not ratings:
        return [], [], []
    # Plain scans with IN lists: on small inputs DuckDB's joins cost several times more.
    stored: dict[tuple[str, str], str] = {}
    experiment_of: dict[str, str] = {}
    set_of: dict[str, str | None] = {}
    labels: set[tuple[str | None, str]] = set()
    for kind, a, b, source in db.execute(
        """
        SELECT 'r', trial_id, criterion, source FROM rating_data WHERE trial_id IN $1
        UNION ALL SELECT 't', trial_id, experiment, NULL FROM trial_data WHERE trial_id IN $1
        UNION ALL SELECT 'c', criterion_set, label, NULL FROM criteria WHERE label IN $2
        UNION ALL SELECT 'e', name, criterion_set, NULL FROM experiments
        """,
        [list(dict.fromkeys(r[0] for r in ratings)), list(dict.fromkeys(r[1] for r in ratings))],
    ).fetchall():
        if kind == "r":
            stored[(a, b)] = source
        elif kind == "t":
            experiment_of[a] = b
        elif kind == "c":
            labels.add((a, b))
        else:
            set_of[a] = b
    current: dict[tuple[str, str], str | None] = {}
    winner: dict[tuple[str, str], list[Any]] = {}
    kept: list[bool] = []
    for r in ratings:
        key = (r[0], r[1])
        experiment = experiment_of.get(r[0])
        cset = set_of.get(experiment) if experiment is not None else None
        if experiment not in set_of or (cset, r[1]) not in labels:
            if skip_unknown:
                kept.append(False)
                continue
            if experiment not in set_of:
                raise NotFoundError(f"no trial {r[0]!r}")
            raise NotFoundError(f"no criterion {r[1]!r} in criterion set {cset!r} of this trial's experiment")
        old = current[key] if key in current else stored.get(key)
        mode = r[-1]
        if old is not None:
            if mode is False:
                kept.append(False)
                continue
            may_rejudge = replace_judge if mode is None else True
            new = r[5]
            if PRECEDENCE[old] > PRECEDENCE[new] or (new == "judge" and old == "judge" and not may_rejudge):
                kept.append(False)
                continue
        current[key] = r[5]
        winner[key] = r
        kept.append(True)
    delete = [k for k in winner if k in stored]
    return kept, delete, list(winner.values())


def pending_count(db: duckdb.DuckDBPyConnection, experiment: str) -> int:
    """Trial x criterion pairs of an experiment with no rating yet."""
    row = db.execute(
        """
        SELECT count(*) FROM trial_data t
        JOIN experiments e ON e.name = t.experiment
        JOIN criteria c ON c.criterion_set = e.criterion_set AND c.origin = 'file'
        LEFT JOIN rating_data r ON r.trial_id = t.trial_id AND r.criterion = c.label
        WHERE t.experiment = ? AND r.trial_id IS NULL
        """,
        [experiment],
    ).fetchone()
    return int(row[0]) if row else 0


def pending_pairs(
    db: duckdb.DuckDBPyConnection, experiment: str, labels: Sequence[str] | None = None
) -> list[PendingRating]:
    """Trial x criterion pairs of ``experiment`` with no rating yet (criteria from a file only)."""
    sql = """
        SELECT t.trial_id, t.task_name, c.label, c.question, c.kind, c.config, c.fitted_threshold
        FROM trial_data t
        JOIN experiments e ON e.name = t.experiment
        JOIN criteria c ON c.criterion_set = e.criterion_set AND c.origin = 'file'
        LEFT JOIN rating_data r ON r.trial_id = t.trial_id AND r.criterion = c.label
        WHERE t.experiment = ? AND r.trial_id IS NULL
    """
    params: list[Any] = [experiment]
    if labels is not None:
        sql += " AND c.label IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(labels))
    sql += " ORDER BY t.task_name, t.epoch, t.trial_id, c.position"
    return _pairs(db.execute(sql, params).fetchall())


def rated_pairs(
    db: duckdb.DuckDBPyConnection,
    experiment: str,
    labels: Sequence[str] | None,
    sources: Sequence[str],
    verdicts: Sequence[str] | None,
) -> list[PendingRating]:
    """Trial x criterion pairs of ``experiment`` rated by one of ``sources`` (criteria from a file only)."""
    check_sources(sources)
    sql = """
        SELECT t.trial_id, t.task_name, c.label, c.question, c.kind, c.config, c.fitted_threshold
        FROM rating_data r
        JOIN trial_data t USING (trial_id)
        JOIN experiments e ON e.name = t.experiment
        JOIN criteria c ON c.criterion_set = e.criterion_set AND c.label = r.criterion AND c.origin = 'file'
        WHERE t.experiment = ? AND r.source IN (SELECT unnest(?::VARCHAR[]))
    """
    params: list[Any] = [experiment, list(sources)]
    if verdicts is not None:
        sql += " AND r.verdict IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(verdicts))
    if labels is not None:
        sql += " AND c.label IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(labels))
    sql += " ORDER BY t.created_at, t.trial_id, c.position"
    return _pairs(db.execute(sql, params).fetchall())


def check_shard(shard: tuple[int, int] | None) -> tuple[int, int] | None:
    """``shard`` checked: ``(i, n)`` with 1 <= i <= n, or None."""
    if shard is None:
        return None
    i, n = shard
    if not (isinstance(i, int) and isinstance(n, int) and 1 <= i <= n):
        raise StoreError(f"a shard is i/n with 1 <= i <= n, got {i}/{n}")
    return i, n


def in_shard(pairs: list[PendingRating], shard: tuple[int, int] | None) -> list[PendingRating]:
    """The pairs of shard ``(i, n)``: split by a hash of (trial id, criterion), the same on every machine."""
    if shard is None or shard[1] == 1:
        return pairs
    i, n = shard
    return [p for p in pairs
            if int.from_bytes(hashlib.sha256(f"{p.trial_id}\0{p.criterion}".encode()).digest()[:8], "big") % n == i - 1]


def _pairs(rows: list[tuple[Any, ...]]) -> list[PendingRating]:
    return [PendingRating(r[0], r[1], r[2], r[3], r[4], _config(r[5], r[6])) for r in rows]


def _config(v: Any, fitted: float | None = None) -> dict[str, Any]:
    """The criterion's config; a threshold fitted from labels fills ``threshold`` when the file sets none."""
    config = dict((orjson.loads(v) if isinstance(v, (str, bytes)) else v) or {})
    if fitted is not None and not isinstance(config.get("threshold"), (int, float)):
        config["threshold"] = fitted
    return config


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
