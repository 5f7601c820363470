"""The DuckDB store: one file holding collections, criteria, experiments, trials and ratings.

DuckDB allows one writing process per file; a second one gets :class:`StoreLockedError`.
Queries through :meth:`Store.query` are read-only: only ``SELECT`` (``DESCRIBE``, ``SHOW``,
``SUMMARIZE``, ``WITH ...``) and ``EXPLAIN`` run; open the store with ``read_only=True`` to
have DuckDB itself refuse writes as well.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import duckdb
import orjson

from atif.errors import NotFoundError, StoreError, StoreLockedError
from atif.store import migrations
from atif.store.ingest import PRECEDENCE, Ingest, UploadResult, decode_raw, pending_count
from atif.trial import trajectory_messages

__all__ = ["DEFAULT_DB", "VIEWS", "PendingRating", "Store"]

DEFAULT_DB = "atif.duckdb"
VIEWS = ("trials", "steps", "tool_calls", "ratings", "experiment_metrics", "criterion_metrics", "judge_usage")
"""The public SQL API: views whose names and columns stay stable."""

_READ_STATEMENTS = {"SELECT", "EXPLAIN"}
_RATING_FIELDS = (
    "trial_id", "criterion", "verdict", "reasoning", "cited_steps", "source", "judge_model", "prompt_tokens",
    "completion_tokens", "cached_tokens", "cost_usd", "latency_ms", "cache_key", "cached", "truncated",
    "prompt_version", "error", "raw_output", "p_yes",
)
_CACHE_FIELDS = (
    "cache_key", "model", "verdict", "reasoning", "cited_steps", "prompt_tokens", "completion_tokens",
    "cached_tokens", "cost_usd", "latency_ms", "truncated", "raw_output", "p_yes", "created_at",
)
_VERDICTS = ("YES", "NO", "UNSCORED")
_RATING_DEFAULTS: dict[str, Any] = {"cached": False, "truncated": False}
_PAIRS = "(SELECT unnest(?::VARCHAR[]) AS trial_id, unnest(?::VARCHAR[]) AS criterion)"
# DuckDB pays per statement, not per row: rows go in multi-row statements of this many.
_CHUNK = 256
_PID = re.compile(r"\(PID (\d+)\)")


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


def default_path() -> Path:
    """``$ATIF_DB``, else ``./atif.duckdb``."""
    return Path(os.environ.get("ATIF_DB") or DEFAULT_DB)


def _locked(path: Path, exc: Exception) -> StoreLockedError | None:
    msg = str(exc).lower()
    if "could not set lock" not in msg and "conflicting lock" not in msg:
        return None
    msg = str(exc)
    m = _PID.search(msg)
    who = f"another process (PID {m.group(1)})" if m else "another process"
    return StoreLockedError(
        f"{path} is in use by {who}; DuckDB allows one writer at a time, so wait for it to finish"
    )


try:
    import pytz  # noqa: F401  # DuckDB needs it to hand out TIMESTAMPTZ values as Python objects
except ImportError:
    _TZ_VIA_ARROW = True
else:
    _TZ_VIA_ARROW = False


def _fetch(cur: duckdb.DuckDBPyConnection, decode_json: bool = False) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of an executed statement (JSON columns parsed when ``decode_json``).

    Without pytz, DuckDB cannot convert TIMESTAMPTZ values itself; Arrow (which uses
    zoneinfo) converts those results instead.
    """
    desc = cur.description or []
    cols = [d[0] for d in desc]
    if not _TZ_VIA_ARROW or not any("TIME ZONE" in str(d[1]) for d in desc):
        rows = cur.fetchall()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table: Any = cur.to_arrow_table()
        rows = list(zip(*(c.to_pylist() for c in table.columns))) if table.num_rows else []
    json_cols = [i for i, d in enumerate(desc) if str(d[1]) == "JSON"] if decode_json else []
    if json_cols and rows:
        rows = [
            tuple(_loads(v) if i in json_cols else v for i, v in enumerate(row)) for row in rows
        ]
    return cols, rows


def _loads(v: Any) -> Any:
    return orjson.loads(v) if isinstance(v, (str, bytes)) else v


class Store:
    """One DuckDB store file, created and migrated on first use.

    ``Store()`` opens ``$ATIF_DB`` or ``./atif.duckdb`` for writing; ``Store.open(path,
    read_only=True)`` opens an existing store for queries only. Use it as a context manager,
    or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.read_only = read_only
        self._lock = threading.RLock()
        if read_only and not self.path.exists():
            raise NotFoundError(f"{self.path}: no such store (upload something first: atif upload ... --db {self.path})")
        if not read_only and self.path.parent and not self.path.parent.exists():
            raise StoreError(f"{self.path}: the folder {self.path.parent} does not exist")
        try:
            self._db = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            locked = _locked(self.path, exc)
            if locked is not None:
                raise locked from None
            raise StoreError(f"{self.path}: cannot open the store: {_first_line(exc)}") from None
        try:
            # DuckDB draws a progress bar on stdout for slow queries, where it would corrupt a report.
            self._db.execute("SET enable_progress_bar = false")
            self._check_schema()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> Store:
        """Open a store; with ``read_only`` the file must exist and DuckDB refuses every write."""
        return cls(path, read_only=read_only)

    def _check_schema(self) -> None:
        try:
            done = {r[0] for r in self._db.execute("SELECT id FROM _atif_migrations").fetchall()}
        except duckdb.CatalogException:
            done = None
        if done is not None and max(done, default=0) > len(migrations.MIGRATIONS):
            raise StoreError(f"{self.path} was written by a newer atif; upgrade atif to use it")
        if not self.read_only:
            try:
                migrations.apply(self._db)
            except duckdb.Error as exc:
                raise StoreError(f"{self.path}: cannot prepare the schema: {_first_line(exc)}") from None
            return
        if done is None:
            raise StoreError(f"{self.path} is not an atif store (no _atif_migrations table)")
        if len(done) < len(migrations.MIGRATIONS):
            raise StoreError(f"{self.path} needs a schema upgrade; open it once for writing (e.g. atif upload)")

    def close(self) -> None:
        """Close the connection (releases the write lock)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}{', read_only=True' if self.read_only else ''})"

    def _count(self, sql: str) -> int:
        row = self._db.execute(sql).fetchone()
        return int(row[0]) if row else 0

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection, for reading the views directly; write through the Store's methods."""
        return self._db

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.path} is open read-only")

    def _rows(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            cols, rows = _fetch(self._db.execute(sql, params or []))
        return [dict(zip(cols, row)) for row in rows]

    # -- the typed read API that reports use -------------------------------------------------
    def read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows (as dicts) of atif's own SQL over the public views (:data:`VIEWS`).

        For the library's reports, which read only the documented views. User-provided SQL goes
        through :meth:`query`, which refuses anything but reads.
        """
        with self._lock:
            try:
                cur = self._db.execute(sql, params or [])
                cols = [d[0] for d in cur.description or []]
                return [dict(zip(cols, row)) for row in cur.fetchall()]
            except duckdb.Error as exc:
                raise StoreError(f"{self.path}: cannot read: {_first_line(exc)}") from None

    def read_one(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...]:
        """The single row of an aggregate query over the views (see :meth:`read`)."""
        with self._lock:
            try:
                row = self._db.execute(sql, params or []).fetchone()
            except duckdb.Error as exc:
                raise StoreError(f"{self.path}: cannot read: {_first_line(exc)}") from None
        if row is None:
            raise StoreError(f"query returned no row: {' '.join(sql.split()[:4])}")
        return tuple(row)

    def trajectories(self, trajectory_ids: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """``(trajectory_id, bytes as uploaded)`` for the given ids, fetched in batches."""
        ids = [t for t in dict.fromkeys(trajectory_ids) if t]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            with self._lock:
                # A semi join on an unnested list: `IN ?` with a list parameter scans row by row.
                rows = self._db.execute(
                    "SELECT j.trajectory_id, j.raw, j.raw_encoding FROM trajectory_data j "
                    "SEMI JOIN (SELECT unnest(?::VARCHAR[]) AS id) w ON j.trajectory_id = w.id",
                    [chunk],
                ).fetchall()
            for tid, raw, encoding in rows:
                yield tid, decode_raw(raw, encoding)

    # -- writing -----------------------------------------------------------------------------
    def upload(
        self,
        sources: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        experiment: str,
        *,
        collection: str | None = None,
        criteria: dict[str, Any] | None = None,
        tasks_file: str | os.PathLike[str] | None = None,
        epoch: int | None = None,
        create_missing_tasks: bool = False,
        replace: bool = False,
        batch_size: int = 500,
        progress: bool = False,
    ) -> UploadResult:
        """Store the trials found in ``sources`` (converted output, ATIF files or raw runner output).

        Idempotent: trials already stored with the same content are counted as unchanged. A
        changed record for a stored trial key is an error unless ``replace``. Bad inputs become
        ``errors``; everything valid is stored, ``batch_size`` trials per transaction.
        ``criteria`` is ``{"name": set, "criteria": [{label, question, kind, config}], "judge": {...}}``.
        """
        self._writable()
        if isinstance(sources, (str, os.PathLike)):
            sources = [sources]
        with self._lock:
            ingest = Ingest(
                self._db,
                experiment,
                collection=collection,
                criteria=criteria,
                tasks_file=Path(tasks_file) if tasks_file is not None else None,
                epoch=epoch,
                create_missing_tasks=create_missing_tasks,
                replace=replace,
                batch_size=batch_size,
                progress=progress,
            )
            try:
                return ingest.run([Path(s) for s in sources])
            except duckdb.Error as exc:
                raise StoreError(f"{self.path}: upload failed: {exc}") from None

    def save_rating(
        self,
        trial_id: str,
        criterion: str,
        verdict: str,
        *,
        source: str,
        reasoning: str | None = None,
        cited_steps: Sequence[int] | None = None,
        judge_model: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cached_tokens: int | None = None,
        cost_usd: float | None = None,
        latency_ms: float | None = None,
        cache_key: str | None = None,
        cached: bool = False,
        truncated: bool = False,
        prompt_version: str | None = None,
        error: str | None = None,
        raw_output: str | None = None,
        replace_judge: bool = False,
    ) -> bool:
        """Store one rating and commit at once; return False when a rating that wins was kept.

        Precedence: ``human`` > ``precomputed`` > ``function``/``match`` > ``judge``. A rating
        never replaces one of a higher source. A judge rating replaces an earlier judge rating
        only with ``replace_judge`` (``atif evaluate --rejudge``); other sources replace their own.
        """
        row = {
            "trial_id": trial_id, "criterion": criterion, "verdict": verdict, "source": source,
            "reasoning": reasoning, "cited_steps": cited_steps, "judge_model": judge_model,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cached_tokens": cached_tokens,
            "cost_usd": cost_usd, "latency_ms": latency_ms, "cache_key": cache_key, "cached": cached,
            "truncated": truncated, "prompt_version": prompt_version, "error": error, "raw_output": raw_output,
        }
        return self.save_ratings([row], replace_judge=replace_judge)[0]

    def save_ratings(
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        replace_judge: bool = False,
        cache: Sequence[Mapping[str, Any]] = (),
        skip_unknown: bool = False,
    ) -> list[bool]:
        """Store many ratings (and judge cache entries) in one transaction; True for each rating stored.

        A row is a mapping of :meth:`save_rating`'s fields (``trial_id``, ``criterion``,
        ``verdict`` and ``source`` required) and follows its precedence rules, in order: each
        row competes with the stored rating and with earlier rows of the same pair. A row's
        optional ``replace`` key overrides ``replace_judge`` for that row: True lets it replace
        a judge rating, False stores it only where the pair has no rating at all.

        A row naming an unknown trial, or a criterion its trial's experiment lacks, raises
        :class:`NotFoundError` and nothing is written; with ``skip_unknown`` such rows are
        passed over (False) instead. ``cache`` entries take :meth:`cache_put`'s fields plus
        ``cache_key``; an entry overwrites one stored under the same key only when it has
        ``replace: True``, otherwise the first answer stays. A failure rolls the whole batch back.
        """
        self._writable()
        ratings = [_rating_row(r) for r in rows]
        entries = list({e[0]: e for e in (_cache_row(c) for c in cache)}.values())
        if not ratings and not entries:
            return []
        with self._lock:
            db = self._db
            db.execute("BEGIN TRANSACTION")
            try:
                kept, delete, insert = self._rating_plan(ratings, replace_judge, skip_unknown)
                for verb, group in (("INSERT OR REPLACE", [e for e in entries if e[-1]]),
                                    ("INSERT OR IGNORE", [e for e in entries if not e[-1]])):
                    for chunk in _chunks(group):
                        db.execute(_values_sql(verb, "judge_cache", _CACHE_FIELDS[:-1], len(chunk)),
                                   [v for e in chunk for v in e[:-1]])
                # A plain delete + insert beats DuckDB's ON CONFLICT DO UPDATE by about 2x here.
                for chunk in _chunks(delete):
                    db.execute(f"DELETE FROM rating_data USING {_PAIRS} k "
                               "WHERE rating_data.trial_id = k.trial_id AND rating_data.criterion = k.criterion",
                               [[k[0] for k in chunk], [k[1] for k in chunk]])
                for chunk in _chunks(insert):
                    db.execute(_values_sql("INSERT", "rating_data", _RATING_FIELDS, len(chunk)),
                               [v for r in chunk for v in r[:-1]])
                db.execute("COMMIT")
            except BaseException as exc:
                db.execute("ROLLBACK")
                if isinstance(exc, duckdb.Error):
                    raise StoreError(f"{self.path}: cannot store the ratings: {_first_line(exc)}") from None
                raise
        return kept

    def _rating_plan(
        self, ratings: list[list[Any]], replace_judge: bool, skip_unknown: bool
    ) -> tuple[list[bool], list[tuple[str, str]], list[list[Any]]]:
        """Which rows win (in order), which stored pairs they replace, and the rows to insert."""
        if not ratings:
            return [], [], []
        # Plain scans with IN lists: on small inputs DuckDB's joins cost several times more.
        stored: dict[tuple[str, str], str] = {}
        experiment_of: dict[str, str] = {}
        set_of: dict[str, str | None] = {}
        labels: set[tuple[str | None, str]] = set()
        for kind, a, b, source in self._db.execute(
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

    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The cached judge answer stored under ``key``, or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(_CACHE_FIELDS[:-1])}, created_at::VARCHAR FROM judge_cache WHERE cache_key = ?",
                [key],
            ).fetchone()
        return dict(zip(_CACHE_FIELDS, row)) if row is not None else None

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The cached judge answers stored under ``keys``, by key (keys without one are left out)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_CACHE_FIELDS[:-1])}, created_at::VARCHAR FROM judge_cache "
                "WHERE cache_key IN ?",
                [wanted],
            ).fetchall()
        return {row[0]: dict(zip(_CACHE_FIELDS, row)) for row in rows}

    def cache_put(
        self,
        key: str,
        *,
        verdict: str,
        model: str | None = None,
        reasoning: str | None = None,
        cited_steps: Sequence[int] | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cached_tokens: int | None = None,
        cost_usd: float | None = None,
        latency_ms: float | None = None,
        truncated: bool = False,
        raw_output: str | None = None,
    ) -> None:
        """Store (or overwrite) a judge answer under ``key``; committed at once."""
        self._writable()
        if verdict not in _VERDICTS:
            raise StoreError(f"verdict must be one of {', '.join(_VERDICTS)}, got {verdict!r}")
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO judge_cache (cache_key, model, verdict, reasoning, cited_steps, prompt_tokens, "
                "completion_tokens, cached_tokens, cost_usd, latency_ms, truncated, raw_output) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [key, model, verdict, reasoning, list(cited_steps) if cited_steps is not None else None,
                 prompt_tokens, completion_tokens, cached_tokens, cost_usd, latency_ms, truncated, raw_output],
            )

    # -- reading -----------------------------------------------------------------------------
    def pending(self, experiment: str, labels: Sequence[str] | None = None) -> list[PendingRating]:
        """Trial x criterion pairs of ``experiment`` with no rating yet, optionally for some labels only.

        Criteria added from pre-computed ratings have no real question and are never pending.
        """
        self._require_experiment(experiment)
        sql = """
            SELECT t.trial_id, t.task_name, c.label, c.question, c.kind, c.config
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
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [PendingRating(r[0], r[1], r[2], r[3], r[4], _loads(r[5]) or {}) for r in rows]

    def rated_pairs(
        self,
        experiment: str,
        labels: Sequence[str] | None = None,
        *,
        sources: Sequence[str] = ("judge", "function", "match"),
        verdicts: Sequence[str] | None = None,
    ) -> list[PendingRating]:
        """Trial x criterion pairs of ``experiment`` that have a rating from one of ``sources``.

        Optionally only ratings with one of ``verdicts`` (``["UNSCORED"]``: the ones to retry)
        and only some criterion labels. Criteria added from pre-computed ratings are left out,
        as in :meth:`pending`. Ordered by upload time of the trial, then criterion position.
        """
        unknown = [s for s in sources if s not in PRECEDENCE]
        if unknown:
            raise StoreError(f"source must be one of {', '.join(PRECEDENCE)}, got {unknown[0]!r}")
        self._require_experiment(experiment)
        sql = """
            SELECT t.trial_id, t.task_name, c.label, c.question, c.kind, c.config
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
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [PendingRating(r[0], r[1], r[2], r[3], r[4], _loads(r[5]) or {}) for r in rows]

    def pending_count(self, experiment: str) -> int:
        """How many trial x criterion pairs of ``experiment`` have no rating yet."""
        with self._lock:
            return pending_count(self._db, experiment)

    def _require_experiment(self, name: str) -> None:
        with self._lock:
            if self._db.execute("SELECT 1 FROM experiments WHERE name = ?", [name]).fetchone() is None:
                known = [r[0] for r in self._db.execute("SELECT name FROM experiments ORDER BY name").fetchall()]
                hint = f"; stored experiments: {', '.join(known[:10])}" if known else "; nothing is stored yet"
                raise NotFoundError(f"no experiment {name!r}{hint}")

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment with its collection, criterion set and counts."""
        return self._rows(
            """
            SELECT e.name, e.collection, e.criterion_set, e.description, e.created_at,
                   (SELECT count(*) FROM trial_data t WHERE t.experiment = e.name) AS n_trials,
                   (SELECT count(*) FROM rating_data r JOIN trial_data t USING (trial_id)
                     WHERE t.experiment = e.name) AS n_ratings
            FROM experiments e ORDER BY e.created_at, e.name
            """
        )

    def experiment(self, name: str) -> dict[str, Any]:
        """One experiment: collection, criterion set, criteria list, judge config, counts."""
        self._require_experiment(name)
        row = self._rows(
            """
            SELECT e.name, e.collection, e.criterion_set, e.judge_config, e.description, e.created_at,
                   (SELECT count(*) FROM trial_data t WHERE t.experiment = e.name) AS n_trials,
                   (SELECT count(*) FROM tasks k WHERE k.collection = e.collection) AS n_tasks
            FROM experiments e WHERE e.name = ?
            """,
            [name],
        )[0]
        row["judge_config"] = _loads(row["judge_config"])
        criteria = self._rows(
            "SELECT label, question, kind, config, position, origin FROM criteria WHERE criterion_set = ? "
            "ORDER BY position",
            [row["criterion_set"]],
        ) if row["criterion_set"] is not None else []
        for c in criteria:
            c["config"] = _loads(c["config"]) or {}
        row["criteria"] = criteria
        return row

    def trials(self, experiment: str) -> list[dict[str, Any]]:
        """The rows of the ``trials`` view for one experiment."""
        self._require_experiment(experiment)
        rows = self._rows("SELECT * FROM trials WHERE experiment = ? ORDER BY task_name, epoch, trial_id", [experiment])
        for r in rows:
            r["rewards"] = _loads(r["rewards"])
            r["metadata"] = _loads(r["metadata"])
        return rows

    def tasks(self, collection: str) -> list[dict[str, Any]]:
        """The tasks of a collection (name, instruction, tags)."""
        return self._rows(
            "SELECT name, instruction, tags FROM tasks WHERE collection = ? ORDER BY name", [collection]
        )

    def trial(self, trial_id: str) -> dict[str, Any]:
        """One trial: its record, task (with instruction), trajectory (raw bytes and parsed) and ratings."""
        t = self.trials_by_id([trial_id]).get(trial_id)
        if t is None:
            raise NotFoundError(f"no trial {trial_id!r}")
        t["ratings"] = self._rows(
            "SELECT * EXCLUDE (trial_id) FROM rating_data WHERE trial_id = ? ORDER BY criterion", [trial_id]
        )
        return t

    def trials_by_id(self, trial_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Trial records by id as :meth:`trial` gives them, without ratings, in one query.

        Ids with no trial are left out. A stored trajectory that is not valid JSON comes back
        as ``trajectory`` None (its bytes are still there).
        """
        ids = list(dict.fromkeys(trial_ids))
        if not ids:
            return {}
        rows = self._rows(
            """
            SELECT t.*, e.collection, k.instruction, k.tags,
                   j.schema_version, j.agent_name, j.agent_version, j.model_name, j.raw AS trajectory_bytes,
                   j.raw_encoding
            FROM trial_data t
            JOIN experiments e ON e.name = t.experiment
            LEFT JOIN tasks k ON k.collection = e.collection AND k.name = t.task_name
            LEFT JOIN trajectory_data j ON j.trajectory_id = t.trajectory_id
            WHERE t.trial_id IN ?
            """,
            [ids],
        )
        out: dict[str, dict[str, Any]] = {}
        for t in rows:
            for k in ("rewards", "metadata", "messages"):
                t[k] = _loads(t[k])
            raw, encoding = t["trajectory_bytes"], t.pop("raw_encoding")
            t["trajectory_bytes"] = decode_raw(raw, encoding) if raw is not None else None
            try:
                t["trajectory"] = orjson.loads(t["trajectory_bytes"]) if raw is not None else None
            except orjson.JSONDecodeError:
                t["trajectory"] = None
            # Upload leaves out messages that equal the trajectory's chat messages: made again here.
            if t.pop("messages_from_trajectory") and t["trajectory"] is not None:
                t["messages"] = trajectory_messages(t["trajectory"])
            t["task"] = {"name": t["task_name"], "collection": t["collection"], "instruction": t["instruction"],
                         "tags": list(t["tags"] or [])}
            out[t["trial_id"]] = t
        return out

    def trajectory_bytes(self, trajectory_id: str) -> bytes:
        """The trajectory exactly as uploaded, byte for byte."""
        with self._lock:
            row = self._db.execute(
                "SELECT raw, raw_encoding FROM trajectory_data WHERE trajectory_id = ?", [trajectory_id]
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no trajectory {trajectory_id!r}")
        return decode_raw(row[0], row[1])

    def ratings(self, experiment: str) -> list[dict[str, Any]]:
        """The rows of the ``ratings`` view for one experiment."""
        self._require_experiment(experiment)
        return self._rows("SELECT * FROM ratings WHERE experiment = ? ORDER BY trial_id, criterion", [experiment])

    # -- SQL ---------------------------------------------------------------------------------
    def _read_only_sql(self, sql: str) -> list[Any]:
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise StoreError(f"SQL error: {_first_line(exc)}") from None
        if not statements:
            raise StoreError("no SQL statement given")
        for st in statements:
            kind = st.type.name
            if kind not in _READ_STATEMENTS:
                raise StoreError(
                    f"queries are read-only: {kind} statements are refused (only SELECT, WITH ... SELECT, "
                    "DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)"
                )
        return statements

    def query(
        self, sql: str, params: Sequence[Any] | None = None, *, decode_json: bool = False
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run read-only SQL; return ``(column names, rows)`` of the last statement.

        Anything but a query (INSERT, UPDATE, DELETE, CREATE, COPY, ATTACH, SET, ...) raises
        :class:`StoreError`. With ``decode_json``, values of JSON columns come back parsed.
        """
        statements = self._read_only_sql(sql)
        with self._lock:
            try:
                cur = None
                for i, st in enumerate(statements):
                    cur = self._db.execute(st, params if (params and i == len(statements) - 1) else None)
                assert cur is not None
                return _fetch(cur, decode_json)
            except duckdb.Error as exc:
                raise StoreError(f"SQL error: {_first_line(exc)}") from None

    def query_to_parquet(self, sql: str, out: str | os.PathLike[str]) -> int:
        """Write the result of read-only SQL to a Parquet file; return the number of rows."""
        statements = self._read_only_sql(sql)
        if len(statements) != 1:
            raise StoreError("Parquet output takes exactly one query")
        with self._lock:
            try:
                rel = self._db.sql(statements[0].query.rstrip().rstrip(";"))
                rel.write_parquet(str(out))
                return self._count(f"SELECT count(*) FROM read_parquet({_lit(str(out))})")
            except duckdb.Error as exc:
                raise StoreError(f"SQL error: {_first_line(exc)}") from None

    def export_parquet(self, out_dir: str | os.PathLike[str], experiment: str | None = None) -> dict[str, Path]:
        """Write every public view as Parquet, partitioned by experiment (``OUT/<view>/experiment=<name>/``).

        Any engine that reads Hive-partitioned Parquet (DuckDB, Spark, Trino, BigQuery) can take
        over from here. Returns view name -> its folder. Views without rows get no folder.
        """
        if experiment is not None:
            self._require_experiment(experiment)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        where = f" WHERE experiment = {_lit(experiment)}" if experiment is not None else ""
        with self._lock:
            for view in VIEWS:
                target = out / view
                if not self._count(f"SELECT count(*) FROM {view}{where}"):
                    continue
                try:
                    self._db.execute(
                        f"COPY (SELECT * FROM {view}{where}) TO {_lit(str(target))} "
                        "(FORMAT parquet, PARTITION_BY (experiment), OVERWRITE_OR_IGNORE true)"
                    )
                except duckdb.Error as exc:
                    raise StoreError(f"cannot export {view} to {target}: {_first_line(exc)}") from None
                written[view] = target
        return written


def _rating_row(row: Mapping[str, Any]) -> list[Any]:
    """A rating mapping as ``rating_data`` values in ``_RATING_FIELDS`` order, plus its ``replace`` mode."""
    unknown = set(row) - set(_RATING_FIELDS) - {"replace"}
    if unknown:
        raise StoreError(f"unknown rating field {min(unknown)!r}")
    for name in ("trial_id", "criterion"):
        if not isinstance(row.get(name), str):
            raise StoreError(f"a rating needs `{name}` (a string), got {row.get(name)!r}")
    if row.get("verdict") not in _VERDICTS:
        raise StoreError(f"verdict must be one of {', '.join(_VERDICTS)}, got {row.get('verdict')!r}")
    if row.get("source") not in PRECEDENCE:
        raise StoreError(f"source must be one of {', '.join(PRECEDENCE)}, got {row.get('source')!r}")
    values = [row.get(name, _RATING_DEFAULTS.get(name)) for name in _RATING_FIELDS]
    cited = values[4]
    values[4] = list(cited) if cited is not None else None
    values.append(row.get("replace"))
    return values


def _cache_row(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    """A cache mapping as ``judge_cache`` values (``_CACHE_FIELDS`` but ``created_at``), plus ``replace``."""
    fields = _CACHE_FIELDS[:-1]
    unknown = set(entry) - set(fields) - {"replace"}
    if unknown:
        raise StoreError(f"unknown cache field {min(unknown)!r}")
    if not isinstance(entry.get("cache_key"), str):
        raise StoreError(f"a cache entry needs `cache_key` (a string), got {entry.get('cache_key')!r}")
    if entry.get("verdict") not in _VERDICTS:
        raise StoreError(f"verdict must be one of {', '.join(_VERDICTS)}, got {entry.get('verdict')!r}")
    values = [entry.get(name, _RATING_DEFAULTS.get(name)) for name in fields]
    cited = values[4]
    values[4] = list(cited) if cited is not None else None
    values.append(bool(entry.get("replace")))
    return tuple(values)


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _values_sql(verb: str, table: str, columns: Sequence[str], n: int) -> str:
    row = "(" + ", ".join("?" * len(columns)) + ")"
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * n)


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
