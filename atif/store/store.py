"""The store: collections, criteria, experiments, trials and ratings in one DuckDB file or a team store.

:class:`Store` is the one facade: it opens (and migrates) the file and delegates to one module
per job: :mod:`~atif.store.ingest` stores converted trials, :mod:`~atif.store.ratings` writes
ratings and judge-cache answers, :mod:`~atif.store.sql` runs user SQL read-only.

DuckDB allows one writing process per file; a second one gets :class:`StoreLockedError`. A team
store (:mod:`atif.store.team`) takes many writers; every write goes through
:func:`atif.store.txn.in_transaction`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import duckdb
import orjson

from atif.errors import NotFoundError, StoreError
from atif.progress import ProgressCallback
from atif.store import migrations, ratings, setup
from atif.store.codec import decode_raw
from atif.store.connection import connect, fetch, first_line, loads, lock_down
from atif.store.ratings import PendingRating
from atif.store.results import UploadResult
from atif.store.sql import run_query, write_parquet
from atif.store.team import connect_team, is_team_target, parse_target
from atif.store.txn import in_transaction

if TYPE_CHECKING:
    from atif.trial import Converted, Failure, Unchanged

__all__ = ["DEFAULT_DB", "VIEWS", "Store", "default_path"]

T = TypeVar("T")

DEFAULT_DB = "atif.duckdb"
VIEWS = ("trials", "steps", "tool_calls", "ratings", "replaced_ratings", "experiment_metrics", "criterion_metrics",
         "judge_usage")
"""The public SQL API: views whose names and columns stay stable."""


def default_path() -> Path:
    """``$ATIF_DB``, else ``./atif.duckdb`` (for a file store)."""
    return Path(os.environ.get("ATIF_DB") or DEFAULT_DB)


class Store:
    """One store, created and migrated on first use: a DuckDB file, or a team store (DuckLake).

    ``Store()`` opens ``$ATIF_DB`` or ``./atif.duckdb`` for writing; ``Store.open(path,
    read_only=True)`` opens an existing store for queries only. Use it as a context manager,
    or call :meth:`close`. ``path`` is the file, or a team store's data path; ``label`` names
    the store in messages (a team store's connection string without its password).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        wait: float = 0.0,
        allow_files: Sequence[str | os.PathLike[str]] = (),
        data_path: str | os.PathLike[str] | None = None,
        shard: tuple[int, int] | None = None,
    ) -> None:
        self.shard = ratings.check_shard(shard)
        """``(i, n)``: :meth:`pending` and :meth:`rated_pairs` hand out only shard i of n (parallel judges)."""
        target = path if path is not None else os.environ.get("ATIF_DB") or DEFAULT_DB
        self.read_only = read_only
        self._lock = threading.RLock()
        self.team = is_team_target(target)
        """True for a team store (DuckLake over PostgreSQL), False for a DuckDB file."""
        if self.team:
            team = parse_target(str(target), data_path)
            self.path = Path(team.data_path)
            self.label = team.label
            self._db = connect_team(team, read_only=read_only)
            data_dirs = [team.data_path]
        else:
            self.path = Path(target)
            self.label = str(self.path)
            if read_only and not self.path.exists():
                raise NotFoundError(f"{self.path}: no such store (upload something first: atif upload ... --db {self.path})")
            if not read_only and self.path.parent and not self.path.parent.exists():
                raise StoreError(f"{self.path}: the folder {self.path.parent} does not exist")
            self._db = connect(self.path, read_only=read_only, wait=wait, allow_files=allow_files)
            data_dirs = []
        try:
            if self.team:
                lock_down(self._db, allow_files, data_dirs)
            self._check_schema()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        wait: float = 0.0,
        allow_files: Sequence[str | os.PathLike[str]] = (),
        data_path: str | os.PathLike[str] | None = None,
        shard: tuple[int, int] | None = None,
    ) -> Store:
        """Open a store; with ``read_only`` the file must exist and DuckDB refuses every write.

        ``path`` is a DuckDB file, or a team store ``ducklake:postgres:<connection string>`` whose
        Parquet files go to ``data_path`` (else ``$ATIF_DATA_PATH``); see :mod:`atif.store.team`.
        When another process writes the file, keep trying for ``wait`` seconds before raising
        :class:`StoreLockedError`. The connection reads no file but the store and ``allow_files``
        (files, or folders of them), and reaches no network (see :mod:`atif.store.sql`).
        With ``shard=(i, n)`` the store hands its judges only shard i of n of the pairs to rate
        (a deterministic split by pair hash: ``atif evaluate --shard i/n`` on n machines).
        """
        return cls(path, read_only=read_only, wait=wait, allow_files=allow_files, data_path=data_path, shard=shard)

    def _check_schema(self) -> None:
        try:
            done = {r[0] for r in self._db.execute("SELECT id FROM _atif_migrations").fetchall()}
        except duckdb.CatalogException:
            done = None
        if done is not None and max(done, default=0) > len(migrations.MIGRATIONS):
            raise StoreError(f"{self.label} was written by a newer atif; upgrade atif to use it")
        if not self.read_only:
            try:
                if migrations.apply(self._db, team=self.team) and not self.team:
                    # Into the file at once, not left in the WAL: DuckDB 1.5 cannot replay a WAL holding
                    # the views' DDL ("GetDefaultDatabase with no default database set").
                    self._db.execute("CHECKPOINT")
            except duckdb.Error as exc:
                raise StoreError(f"{self.label}: cannot prepare the schema: {first_line(exc)}") from None
            return
        if done is None:
            raise StoreError(f"{self.label} is not an atif store (no _atif_migrations table)")
        if len(done) < len(migrations.MIGRATIONS):
            raise StoreError(f"{self.label} needs a schema upgrade; open it once for writing (e.g. atif upload)")

    def close(self) -> None:
        """Close the connection (releases the write lock)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.label!r}{', read_only=True' if self.read_only else ''})"

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection, for reading the views directly; write through the Store's methods."""
        return self._db

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.label} is open read-only")

    def _rows(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            cols, rows = fetch(self._db.execute(sql, params or []))
        return [dict(zip(cols, row, strict=False)) for row in rows]

    def read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows (as dicts) of atif's own SQL over the public views (:data:`VIEWS`).

        For the library's reports, which read only the documented views. User-provided SQL goes
        through :meth:`query`, which refuses anything but reads.
        """
        with self._lock:
            try:
                cur = self._db.execute(sql, params or [])
                cols = [d[0] for d in cur.description or []]
                return [dict(zip(cols, row, strict=False)) for row in cur.fetchall()]
            except duckdb.Error as exc:
                raise StoreError(f"{self.label}: cannot read: {first_line(exc)}") from None

    def read_batches(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None,
                     size: int = 10_000) -> Iterator[list[dict[str, Any]]]:
        """Rows of atif's own SQL (see :meth:`read`), ``size`` at a time, for results too long to hold at once.

        The query runs on its own cursor, so other reads of this store may run between batches.
        """
        try:
            with self._lock:
                cur = self._db.cursor()
                cur.execute(sql, params or [])
            cols = [d[0] for d in cur.description or []]
            while rows := cur.fetchmany(size):
                yield [dict(zip(cols, row, strict=False)) for row in rows]
        except duckdb.Error as exc:
            raise StoreError(f"{self.label}: cannot read: {first_line(exc)}") from None

    def read_one(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...]:
        """The single row of an aggregate query over the views (see :meth:`read`)."""
        with self._lock:
            try:
                row = self._db.execute(sql, params or []).fetchone()
            except duckdb.Error as exc:
                raise StoreError(f"{self.label}: cannot read: {first_line(exc)}") from None
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

    def ingest(
        self,
        items: Iterable[Converted | Failure | Unchanged],
        experiment: str,
        *,
        collection: str | None = None,
        criteria: dict[str, Any] | None = None,
        tasks_file: str | os.PathLike[str] | None = None,
        epoch: int | None = None,
        create_missing_tasks: bool = False,
        replace: bool = False,
        batch_size: int = 500,
        sources: Sequence[str] = (),
        on_progress: ProgressCallback | None = None,
        known_inputs: Any = None,
    ) -> UploadResult:
        """Store converted trials (``Converted``; a ``Failure`` is reported as an error, or a warning when skipped).

        Idempotent: trials already stored with the same content are counted as unchanged. A
        changed record for a stored trial key is an error unless ``replace``. Everything valid
        is stored, ``batch_size`` trials per transaction. ``epoch`` applies to trials whose
        record gives none. ``criteria`` is ``{"name": set, "criteria": [{label, question, kind,
        config}], "judge": {...}}``. ``sources`` (the inputs read) are recorded with the upload.
        ``on_progress`` receives ``Progress(stage="uploading", done=trials)`` after each batch.
        ``known_inputs`` (:class:`atif.store.ingest.KnownInputs`) answers the reader's questions
        about lines stored before. To read and convert files first, use :func:`atif.upload`.
        """
        self._writable()
        with self._lock:
            # Imported here: ingest loads the schema models, which reading commands never need.
            from atif.store.ingest import Ingest

            job = Ingest(
                self._db,
                experiment,
                collection=collection,
                criteria=criteria,
                tasks_file=Path(tasks_file) if tasks_file is not None else None,
                epoch=epoch,
                create_missing_tasks=create_missing_tasks,
                replace=replace,
                batch_size=batch_size,
                on_progress=on_progress,
                team=self.team,
                known_inputs=known_inputs,
            )
            try:
                return job.run(items, list(sources))
            except duckdb.Error as exc:
                raise StoreError(f"{self.label}: upload failed: {exc}") from None

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
        rating_rows = [ratings.rating_row(r) for r in rows]
        entries = list({e[0]: e for e in (ratings.cache_row(c) for c in cache)}.values())
        if not rating_rows and not entries:
            return []
        with self._lock:
            kept = self._write(
                lambda: ratings.write_ratings(
                    self._db, rating_rows, entries, replace_judge=replace_judge, skip_unknown=skip_unknown
                ),
                "cannot store the ratings",
            )
        return kept

    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The cached judge answer stored under ``key``, or None."""
        return self.cache_get_many([key]).get(key)

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The cached judge answers stored under ``keys``, by key (keys without one are left out)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        fields = ratings.CACHE_FIELDS
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(fields[:-1])}, created_at::VARCHAR FROM judge_cache WHERE cache_key IN ?",
                [wanted],
            ).fetchall()
        return {row[0]: dict(zip(fields, row, strict=False)) for row in rows}

    def cache_keys(self, model: str | None) -> set[str]:
        """Every judge cache key stored for ``model`` (and for no model): a run looks up only these."""
        with self._lock:
            return ratings.cache_keys(self._db, model)

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
        entry = ratings.cache_row({
            "cache_key": key, "model": model, "verdict": verdict, "reasoning": reasoning, "cited_steps": cited_steps,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cached_tokens": cached_tokens,
            "cost_usd": cost_usd, "latency_ms": latency_ms, "truncated": truncated, "raw_output": raw_output,
            "replace": True,
        })
        with self._lock:
            self._write(lambda: ratings.write_cache(self._db, [entry]), "cannot store the judge answer")

    def _write(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn`` in one write transaction (serialised and retried on a team store)."""
        try:
            return in_transaction(self._db, fn, team=self.team, what=f"{self.label}: {what}")
        except duckdb.Error as exc:
            raise StoreError(f"{self.label}: {what}: {first_line(exc)}") from None

    def pending(
        self, experiment: str, labels: Sequence[str] | None = None, *, shard: tuple[int, int] | None = None
    ) -> list[PendingRating]:
        """Trial x criterion pairs of ``experiment`` with no rating yet, optionally for some labels only.

        Criteria added from pre-computed ratings have no real question and are never pending.
        ``shard=(i, n)`` (default: the store's :attr:`shard`) keeps the pairs of shard i of n.
        """
        self._require_experiment(experiment)
        with self._lock:
            pairs = ratings.pending_pairs(self._db, experiment, labels)
        return ratings.in_shard(pairs, ratings.check_shard(shard) or self.shard)

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
        as in :meth:`pending`, and so are pairs of other shards. Ordered by upload time of the trial, then criterion position.
        """
        ratings.check_sources(sources)
        self._require_experiment(experiment)
        with self._lock:
            pairs = ratings.rated_pairs(self._db, experiment, labels, sources, verdicts)
        return ratings.in_shard(pairs, self.shard)

    def pending_count(self, experiment: str) -> int:
        """How many trial x criterion pairs of ``experiment`` have no rating yet."""
        with self._lock:
            return ratings.pending_count(self._db, experiment)

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
        row["judge_config"] = loads(row["judge_config"])
        criteria = self._rows(
            "SELECT label, question, kind, config, position, origin, fitted_threshold, fitted FROM criteria "
            "WHERE criterion_set = ? ORDER BY position",
            [row["criterion_set"]],
        ) if row["criterion_set"] is not None else []
        for c in criteria:
            c["config"] = loads(c["config"]) or {}
            c["fitted"] = loads(c["fitted"])
            c["threshold"] = setup.effective_threshold(c["config"], c["fitted_threshold"])
        row["criteria"] = criteria
        return row

    def save_thresholds(self, experiment: str, fits: Mapping[str, tuple[float, Mapping[str, Any]]]) -> None:
        """Keep fitted ``p_yes`` thresholds with the criteria of ``experiment``'s criterion set.

        ``fits`` maps a criterion label to ``(threshold, details)``; the next evaluation uses the
        threshold where the criteria file sets none (see :func:`atif.store.setup.effective_threshold`).
        """
        self._writable()
        cset = self.experiment(experiment)["criterion_set"]
        if cset is None:
            raise NotFoundError(f"experiment {experiment!r} has no criterion set")
        plain = {label: (float(t), dict(d)) for label, (t, d) in fits.items()}
        with self._lock:
            self._write(lambda: setup.save_fitted_thresholds(self._db, cset, plain), "cannot store the thresholds")

    def redecide(self, experiment: str, thresholds: Mapping[str, float]) -> list[dict[str, Any]]:
        """Re-decide ``experiment``'s scored judge verdicts with ``thresholds`` (label -> p_yes cut).

        Returns the ratings whose verdict changed (``trial_id``, ``criterion``, ``old``, ``new``,
        ``p_yes``); each replaced verdict is kept in the ``replaced_ratings`` history.
        """
        self._writable()
        self._require_experiment(experiment)
        with self._lock:
            return self._write(lambda: setup.redecide(self._db, experiment, dict(thresholds)),
                               "cannot re-decide the ratings")

    def trials(self, experiment: str) -> list[dict[str, Any]]:
        """The rows of the ``trials`` view for one experiment."""
        self._require_experiment(experiment)
        rows = self._rows("SELECT * FROM trials WHERE experiment = ? ORDER BY task_name, epoch, trial_id", [experiment])
        for r in rows:
            r["rewards"] = loads(r["rewards"])
            r["metadata"] = loads(r["metadata"])
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
            "SELECT * EXCLUDE (trial_id, trial_key, experiment, agent_name, model_name) FROM rating_data "
            "WHERE trial_id = ? ORDER BY criterion", [trial_id]
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
            SELECT t.* EXCLUDE (trial_key, agent_name, model_name), e.collection, k.instruction, k.tags,
                   j.schema_version, j.agent_name, j.agent_version, j.model_name,
                   -- the trial's own bytes: another byte string of the content, else the first one stored
                   CASE WHEN x.raw_id IS NULL THEN j.raw ELSE x.raw END AS trajectory_bytes,
                   CASE WHEN x.raw_id IS NULL THEN j.raw_encoding ELSE x.raw_encoding END AS raw_encoding
            FROM trial_data t
            JOIN experiments e ON e.name = t.experiment
            LEFT JOIN tasks k ON k.collection = e.collection AND k.name = t.task_name
            LEFT JOIN trajectory_data j ON j.trajectory_id = t.trajectory_id
            LEFT JOIN trajectory_raw x ON x.raw_id = t.raw_id
            WHERE t.trial_id IN ?
            """,
            [ids],
        )
        out: dict[str, dict[str, Any]] = {}
        for t in rows:
            for k in ("rewards", "metadata", "messages"):
                t[k] = loads(t[k])
            del t["raw_id"]
            raw, encoding = t["trajectory_bytes"], t.pop("raw_encoding")
            t["trajectory_bytes"] = decode_raw(raw, encoding) if raw is not None else None
            try:
                t["trajectory"] = orjson.loads(t["trajectory_bytes"]) if raw is not None else None
            except orjson.JSONDecodeError:
                t["trajectory"] = None
            # Upload leaves out messages that equal the trajectory's chat messages: made again here.
            if t.pop("messages_from_trajectory") and t["trajectory"] is not None:
                from atif.trial import trajectory_messages

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

    def query(
        self, sql: str, params: Sequence[Any] | None = None, *, decode_json: bool = False
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run read-only SQL; return ``(column names, rows)`` of the last statement.

        Anything but a query (INSERT, UPDATE, DELETE, CREATE, COPY, ATTACH, SET, ...) raises
        :class:`StoreError`, and whatever a query does is rolled back; files and network are out
        of its reach (see :mod:`atif.store.sql`). With ``decode_json``, values of JSON columns
        come back parsed.
        """
        with self._lock:
            return run_query(self._db, sql, params, decode_json)

    def query_to_parquet(self, sql: str, out: str | os.PathLike[str]) -> int:
        """Write the result of read-only SQL to a Parquet file; return the number of rows."""
        with self._lock:
            return write_parquet(self._db, sql, out)

    def export_parquet(self, out_dir: str | os.PathLike[str], experiment: str | None = None) -> dict[str, Path]:
        """Write every public view as Parquet, partitioned by experiment (``OUT/<view>/experiment=<name>/``).

        Any engine that reads Hive-partitioned Parquet (DuckDB, Spark, Trino, BigQuery) can take
        over from here. Returns view name -> its folder. Views without rows get no folder.
        """
        import pyarrow.dataset as pads

        if experiment is not None:
            self._require_experiment(experiment)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        where = " WHERE experiment = ?" if experiment is not None else ""
        params = [experiment] if experiment is not None else []
        with self._lock:
            for view in VIEWS:
                target = out / view
                try:
                    if not self._db.execute(f"SELECT count(*) FROM {view}{where}", params).fetchall()[0][0]:
                        continue
                    # Written through Arrow: the store's connection cannot write files (see atif.store.sql).
                    reader = self._db.sql(f"SELECT * FROM {view}{where}", params=params).to_arrow_reader(100_000)
                    pads.write_dataset(
                        reader, target, format="parquet", partitioning=["experiment"], partitioning_flavor="hive",
                        existing_data_behavior="overwrite_or_ignore",
                    )
                except duckdb.Error as exc:
                    raise StoreError(f"cannot export {view} to {target}: {first_line(exc)}") from None
                except OSError as exc:
                    raise StoreError(f"cannot export {view} to {target}: {exc.strerror or exc}") from None
                written[view] = target
        return written
