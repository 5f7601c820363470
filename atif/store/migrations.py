"""Ordered schema migrations of the store.

Each migration is a function applied once, in one transaction with its record
in ``_atif_migrations``. Never edit a shipped migration: add a new one.

Tables hold the data (``*_data``); the views are the public SQL API and keep
their names and columns stable: ``trials``, ``steps``, ``tool_calls``,
``ratings``, ``experiment_metrics``, ``criterion_metrics``, ``judge_usage``.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from typing import Any, cast

import duckdb

from atif.store.txn import LOCK_TABLE, MAX_ATTEMPTS, in_transaction, is_conflict

Migration = Callable[[duckdb.DuckDBPyConnection], None]


def m001_initial(db: duckdb.DuckDBPyConnection) -> None:
    """Collections, tasks, criteria, experiments, trajectories, trials, steps, tool calls, ratings."""
    db.execute(
        """
        CREATE TABLE collections (
            name        VARCHAR PRIMARY KEY,
            created_by_upload VARCHAR,            -- the upload that created it from its trials, if one did
            created_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE tasks (
            collection  VARCHAR NOT NULL,
            name        VARCHAR NOT NULL,
            instruction VARCHAR,
            tags        VARCHAR[] NOT NULL DEFAULT [],
            created_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (collection, name)
        );
        CREATE TABLE criterion_sets (
            name        VARCHAR PRIMARY KEY,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE criteria (
            criterion_set VARCHAR NOT NULL,
            label       VARCHAR NOT NULL,
            question    VARCHAR NOT NULL,
            kind        VARCHAR NOT NULL CHECK (kind IN ('llm', 'function', 'match')),
            config      JSON,
            position    INTEGER NOT NULL,
            origin      VARCHAR NOT NULL DEFAULT 'file' CHECK (origin IN ('file', 'ratings')),  -- 'ratings': added from pre-computed ratings
            created_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (criterion_set, label)
        );
        CREATE TABLE experiments (
            name          VARCHAR PRIMARY KEY,
            collection    VARCHAR NOT NULL,
            criterion_set VARCHAR,
            judge_config  JSON,
            description   VARCHAR,
            created_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE trajectory_data (
            trajectory_id  VARCHAR PRIMARY KEY,   -- sha256 of the canonical JSON
            raw            BLOB NOT NULL,         -- the bytes as uploaded, verbatim, in raw_encoding
            raw_encoding   VARCHAR,               -- NULL: raw is those bytes; 'zstd': a zstd frame of them
            schema_version VARCHAR,
            agent_name     VARCHAR,
            agent_version  VARCHAR,
            model_name     VARCHAR,
            step_count     INTEGER,
            n_bytes        BIGINT,
            created_at     TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE trial_data (
            trial_id         VARCHAR PRIMARY KEY,  -- sha256 of (experiment, task, source id or trajectory id, epoch)
            experiment       VARCHAR NOT NULL,
            task_name        VARCHAR NOT NULL,
            epoch            INTEGER NOT NULL DEFAULT 1,
            source_trial_id  VARCHAR,
            trajectory_id    VARCHAR,
            reward           DOUBLE,               -- the primary reward
            rewards          JSON,                 -- named rewards, as given
            steps            INTEGER,
            cost_usd         DOUBLE,
            duration_seconds DOUBLE,
            input_tokens     BIGINT,
            output_tokens    BIGINT,
            cached_tokens    BIGINT,
            error            VARCHAR,
            metadata         JSON,
            messages         JSON,                 -- NULL when messages_from_trajectory
            messages_from_trajectory BOOLEAN NOT NULL DEFAULT false,  -- messages = the trajectory's, derived
            record_hash      VARCHAR NOT NULL,     -- sha256 of the canonical trial record
            upload_id        VARCHAR,
            created_at       TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE step_data (
            trajectory_id     VARCHAR NOT NULL,
            path              VARCHAR NOT NULL,    -- '' for the root, '/subagent_trajectories/0' ...
            step_id           INTEGER NOT NULL,
            source            VARCHAR,
            timestamp         VARCHAR,
            ts                TIMESTAMPTZ,
            model_name        VARCHAR,
            message_chars     INTEGER,
            reasoning_chars   INTEGER,
            tool_call_count   INTEGER,
            prompt_tokens     BIGINT,
            completion_tokens BIGINT,
            cached_tokens     BIGINT,
            cost_usd          DOUBLE,
            is_copied_context BOOLEAN
        );
        CREATE TABLE tool_call_data (
            trajectory_id  VARCHAR NOT NULL,
            path           VARCHAR NOT NULL,
            step_id        INTEGER NOT NULL,
            call_index     INTEGER NOT NULL,
            tool_call_id   VARCHAR,
            function_name  VARCHAR,
            arguments      JSON,
            result         VARCHAR,
            is_error       BOOLEAN
        );
        CREATE TABLE rating_data (
            trial_id          VARCHAR NOT NULL,
            criterion         VARCHAR NOT NULL,    -- the criterion label
            verdict           VARCHAR NOT NULL CHECK (verdict IN ('YES', 'NO', 'UNSCORED')),
            reasoning         VARCHAR,
            cited_steps       INTEGER[],
            source            VARCHAR NOT NULL CHECK (source IN ('human', 'precomputed', 'function', 'match', 'judge')),
            judge_model       VARCHAR,
            prompt_tokens     BIGINT,
            completion_tokens BIGINT,
            cached_tokens     BIGINT,
            cost_usd          DOUBLE,              -- NULL when the price is unknown, never 0
            latency_ms        DOUBLE,
            cache_key         VARCHAR,
            cached            BOOLEAN NOT NULL DEFAULT false,
            truncated         BOOLEAN NOT NULL DEFAULT false,
            prompt_version    VARCHAR,
            error             VARCHAR,
            raw_output        VARCHAR,
            created_at        TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (trial_id, criterion)
        );
        CREATE TABLE judge_cache (
            cache_key         VARCHAR PRIMARY KEY, -- sha256 of model, api_base, messages, parameters, prompt version
            model             VARCHAR,
            verdict           VARCHAR NOT NULL,
            reasoning         VARCHAR,
            cited_steps       INTEGER[],
            prompt_tokens     BIGINT,
            completion_tokens BIGINT,
            cached_tokens     BIGINT,
            cost_usd          DOUBLE,
            latency_ms        DOUBLE,
            truncated         BOOLEAN NOT NULL DEFAULT false,
            raw_output        VARCHAR,
            created_at        TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE uploads (
            upload_id        VARCHAR PRIMARY KEY,
            experiment       VARCHAR,
            started_at       TIMESTAMPTZ NOT NULL,
            finished_at      TIMESTAMPTZ,
            user_name        VARCHAR,
            host             VARCHAR,
            sources          JSON,
            created_trials   INTEGER,
            unchanged_trials INTEGER,
            replaced_trials  INTEGER,
            created_ratings  INTEGER,
            n_errors         INTEGER,
            errors           JSON
        );
        """
    )
    _create_views(db)


def _create_views(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE VIEW trials AS
        SELECT t.trial_id, t.experiment, t.task_name, t.epoch, t.reward, t.cost_usd, t.duration_seconds,
               t.steps, t.input_tokens, t.output_tokens, t.cached_tokens, t.error,
               j.agent_name, coalesce(j.model_name, json_extract_string(t.metadata, '$.model_name')) AS model_name,
               t.rewards, t.trajectory_id, t.source_trial_id, t.metadata, k.tags, t.created_at
        FROM trial_data t
        LEFT JOIN trajectory_data j USING (trajectory_id)
        LEFT JOIN experiments e ON e.name = t.experiment
        LEFT JOIN tasks k ON k.collection = e.collection AND k.name = t.task_name;

        CREATE VIEW steps AS
        SELECT t.trial_id, t.experiment, t.task_name, s.trajectory_id, s.path, s.step_id, s.source, s.timestamp,
               coalesce(s.model_name, CASE WHEN s.source = 'agent' THEN j.model_name END) AS model_name,
               s.message_chars, s.reasoning_chars, s.tool_call_count, s.prompt_tokens, s.completion_tokens,
               s.cached_tokens, s.cost_usd, s.is_copied_context
        FROM step_data s
        JOIN trial_data t USING (trajectory_id)
        LEFT JOIN trajectory_data j USING (trajectory_id);

        CREATE VIEW tool_calls AS
        SELECT t.trial_id, t.experiment, t.task_name, c.trajectory_id, c.path, c.step_id, c.call_index,
               c.tool_call_id, c.function_name, c.arguments, c.result, c.is_error
        FROM tool_call_data c
        JOIN trial_data t USING (trajectory_id);

        CREATE VIEW ratings AS
        SELECT r.trial_id, t.experiment, t.task_name, r.criterion, r.verdict, r.source, r.reasoning,
               r.judge_model, r.cost_usd, r.cached, r.truncated, r.error, r.cited_steps,
               r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.latency_ms, r.prompt_version, r.created_at
        FROM rating_data r
        JOIN trial_data t USING (trial_id);

        CREATE VIEW criterion_metrics AS
        WITH c AS (
            SELECT experiment, criterion,
                   count(*) FILTER (WHERE verdict = 'YES') AS n_yes,
                   count(*) FILTER (WHERE verdict = 'NO') AS n_no,
                   count(*) FILTER (WHERE verdict = 'UNSCORED') AS n_unscored
            FROM ratings GROUP BY experiment, criterion
        ), w AS (
            SELECT *, n_yes + n_no AS n_rated,
                   CASE WHEN n_yes + n_no > 0 THEN n_yes / (n_yes + n_no) END AS p
            FROM c
        )
        SELECT experiment, criterion, n_rated, n_yes, n_no, n_unscored, p AS yes_rate,
               CASE WHEN n_rated > 0 THEN
                 (p + 1.959963984540054^2 / (2 * n_rated)
                  - 1.959963984540054 * sqrt(p * (1 - p) / n_rated + 1.959963984540054^2 / (4 * n_rated^2)))
                 / (1 + 1.959963984540054^2 / n_rated) END AS ci_low,
               CASE WHEN n_rated > 0 THEN
                 (p + 1.959963984540054^2 / (2 * n_rated)
                  + 1.959963984540054 * sqrt(p * (1 - p) / n_rated + 1.959963984540054^2 / (4 * n_rated^2)))
                 / (1 + 1.959963984540054^2 / n_rated) END AS ci_high
        FROM w;

        CREATE VIEW experiment_metrics AS
        WITH pr AS (
            SELECT t.experiment, t.agent_name, t.model_name, r.criterion,
                   avg(CASE WHEN r.verdict = 'YES' THEN 1.0 WHEN r.verdict = 'NO' THEN 0.0 END) AS rate
            FROM rating_data r JOIN trials t USING (trial_id)
            GROUP BY ALL
        ), prm AS (
            SELECT experiment, agent_name, model_name, map(list(criterion ORDER BY criterion), list(rate ORDER BY criterion)) AS pass_rates
            FROM pr GROUP BY ALL
        ), m AS (
            SELECT experiment, agent_name, model_name,
                   count(*) AS n_trials,
                   count(error) AS n_errored,
                   avg(reward) AS reward_mean,
                   quantile_cont(reward, 0.5) AS reward_p50,
                   quantile_cont(reward, 0.95) AS reward_p95,
                   avg(duration_seconds) AS duration_mean,
                   quantile_cont(duration_seconds, 0.5) AS duration_p50,
                   quantile_cont(duration_seconds, 0.95) AS duration_p95,
                   avg(cost_usd) AS cost_mean,
                   sum(cost_usd) AS cost_total,
                   sum(input_tokens) AS input_tokens,
                   sum(output_tokens) AS output_tokens,
                   sum(cached_tokens) AS cached_tokens,
                   avg(steps) AS steps_mean
            FROM trials GROUP BY ALL
        )
        SELECT m.*, prm.pass_rates
        FROM m LEFT JOIN prm
          ON prm.experiment = m.experiment
         AND prm.agent_name IS NOT DISTINCT FROM m.agent_name
         AND prm.model_name IS NOT DISTINCT FROM m.model_name;

        CREATE VIEW judge_usage AS
        SELECT t.experiment, r.judge_model,
               count(*) FILTER (WHERE NOT r.cached) AS calls,
               count(*) FILTER (WHERE r.cached) AS cache_hits,
               count(*) FILTER (WHERE r.verdict = 'UNSCORED') AS unscored,
               sum(r.prompt_tokens) FILTER (WHERE NOT r.cached) AS prompt_tokens,
               sum(r.completion_tokens) FILTER (WHERE NOT r.cached) AS completion_tokens,
               sum(r.cost_usd) FILTER (WHERE NOT r.cached) AS cost_usd,
               avg(r.latency_ms) FILTER (WHERE NOT r.cached) AS mean_latency_ms
        FROM rating_data r JOIN trial_data t USING (trial_id)
        WHERE r.source = 'judge'
        GROUP BY ALL;
        """
    )


def m002_raw_per_trial(db: duckdb.DuckDBPyConnection) -> None:
    """Trajectory bytes per trial: each distinct byte string is kept, not only the first of a content.

    ``raw_id`` is the sha256 of the bytes (as uploaded, before compression). A trajectory's first
    bytes stay in ``trajectory_data``; other byte strings of the same content (re-indented, keys
    in another order) go into ``trajectory_raw``, and each trial names its own by ``raw_id``.
    """
    import hashlib

    from atif.store.codec import decode_raw

    db.execute(
        """
        ALTER TABLE trajectory_data ADD COLUMN raw_id VARCHAR;  -- sha256 of the bytes as uploaded
        ALTER TABLE trial_data ADD COLUMN raw_id VARCHAR;       -- the trial's own bytes (NULL: no trajectory)
        CREATE TABLE trajectory_raw (
            raw_id        VARCHAR PRIMARY KEY,  -- sha256 of the bytes as uploaded
            trajectory_id VARCHAR NOT NULL,     -- the content they hold
            raw           BLOB NOT NULL,        -- in raw_encoding, as trajectory_data.raw
            raw_encoding  VARCHAR,
            n_bytes       BIGINT,
            created_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );
        """
    )
    cur = db.execute("SELECT trajectory_id, raw, raw_encoding FROM trajectory_data")
    tids: list[str] = []
    raw_ids: list[str] = []
    while rows := cur.fetchmany(1000):
        for tid, raw, encoding in rows:
            tids.append(tid)
            raw_ids.append(hashlib.sha256(decode_raw(raw, encoding)).hexdigest())
    if tids:
        db.execute(
            "UPDATE trajectory_data SET raw_id = m.raw_id "
            "FROM (SELECT unnest(?::VARCHAR[]) AS tid, unnest(?::VARCHAR[]) AS raw_id) m "
            "WHERE trajectory_data.trajectory_id = m.tid",
            [tids, raw_ids],
        )
        db.execute(
            "UPDATE trial_data SET raw_id = j.raw_id FROM trajectory_data j "
            "WHERE j.trajectory_id = trial_data.trajectory_id"
        )


def m003_rating_samples(db: duckdb.DuckDBPyConnection) -> None:
    """Repeated judge samples and panels: each rating's votes and their agreement."""
    db.execute("ALTER TABLE rating_data ADD COLUMN votes JSON")
    db.execute("ALTER TABLE rating_data ADD COLUMN agreement DOUBLE")
    db.execute(
        """
        CREATE OR REPLACE VIEW ratings AS
        SELECT r.trial_id, t.experiment, t.task_name, r.criterion, r.verdict, r.source, r.reasoning,
               r.judge_model, r.cost_usd, r.cached, r.truncated, r.error, r.cited_steps,
               r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.latency_ms, r.prompt_version, r.created_at,
               r.votes, r.agreement
        FROM rating_data r
        JOIN trial_data t USING (trial_id);
        """
    )


def m004_replaced_ratings(db: duckdb.DuckDBPyConnection) -> None:
    """Ratings that a rating of higher precedence replaced are kept, so a human label and the
    judge verdict it overrode can be compared (calibration within one experiment).

    ``rating_history`` has ``rating_data``'s columns plus ``replaced_at``; a migration that adds
    a column to ``rating_data`` adds it here too (rows are inserted by name).
    """
    db.execute(
        """
        CREATE TABLE rating_history AS
            SELECT *, current_timestamp::TIMESTAMPTZ AS replaced_at FROM rating_data WHERE false;

        CREATE VIEW replaced_ratings AS
        SELECT h.trial_id, t.experiment, t.task_name, h.criterion, h.verdict, h.source, h.reasoning,
               h.judge_model, h.cited_steps, h.created_at, h.replaced_at
        FROM rating_history h
        JOIN trial_data t USING (trial_id);
        """
    )


def m005_rating_p_yes(db: duckdb.DuckDBPyConnection) -> None:
    """``p_yes``: the judge's probability of YES (from the verdict token's log-probabilities), when known."""
    db.execute(
        """
        ALTER TABLE rating_data ADD COLUMN p_yes DOUBLE;
        ALTER TABLE rating_history ADD COLUMN p_yes DOUBLE;
        ALTER TABLE judge_cache ADD COLUMN p_yes DOUBLE;
        CREATE OR REPLACE VIEW ratings AS
        SELECT r.trial_id, t.experiment, t.task_name, r.criterion, r.verdict, r.source, r.reasoning,
               r.judge_model, r.cost_usd, r.cached, r.truncated, r.error, r.cited_steps,
               r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.latency_ms, r.prompt_version, r.created_at,
               r.votes, r.agreement, r.p_yes
        FROM rating_data r
        JOIN trial_data t USING (trial_id);
        """
    )


def m006_trial_input_key(db: duckdb.DuckDBPyConnection) -> None:
    """What a re-upload compares before it parses a trial again.

    ``input_key`` is the 128-bit xxh3 hash of the trials-file line the trial was read from (with
    the ``--epoch`` given); ``input_file`` the trajectory file that line names and
    ``input_file_key`` the xxh3 hash of that file's bytes. NULL for trials from other inputs.
    """
    db.execute(
        """
        ALTER TABLE trial_data ADD COLUMN input_key VARCHAR;
        ALTER TABLE trial_data ADD COLUMN input_file VARCHAR;
        ALTER TABLE trial_data ADD COLUMN input_file_key VARCHAR;
        """
    )


def m007_fitted_thresholds(db: duckdb.DuckDBPyConnection) -> None:
    """A ``p_yes`` threshold fitted from labels, kept with each criterion (``atif calibrate --fit-threshold``).

    ``fitted_threshold`` is used when the criteria file sets no ``threshold`` of its own;
    ``fitted`` records where it came from (reference, counts, rates, when). Replaced ratings
    show their ``p_yes`` too, so labels that replaced judge verdicts can fit a threshold.
    """
    db.execute(
        """
        ALTER TABLE criteria ADD COLUMN fitted_threshold DOUBLE;
        ALTER TABLE criteria ADD COLUMN fitted JSON;
        CREATE OR REPLACE VIEW replaced_ratings AS
        SELECT h.trial_id, t.experiment, t.task_name, h.criterion, h.verdict, h.source, h.reasoning,
               h.judge_model, h.cited_steps, h.created_at, h.replaced_at, h.p_yes
        FROM rating_history h
        JOIN trial_data t USING (trial_id);
        """
    )


def m008_rating_segmented(db: duckdb.DuckDBPyConnection) -> None:
    """``segmented``: the judge read the trajectory in overlapping segments and combined their verdicts.

    No column default (DuckLake cannot add a column with one): earlier ratings are set to false here,
    new ones get false from the store's rating defaults.
    """
    db.execute(
        """
        ALTER TABLE rating_data ADD COLUMN segmented BOOLEAN;
        ALTER TABLE rating_history ADD COLUMN segmented BOOLEAN;
        UPDATE rating_data SET segmented = false WHERE segmented IS NULL;
        UPDATE rating_history SET segmented = false WHERE segmented IS NULL;
        CREATE OR REPLACE VIEW ratings AS
        SELECT r.trial_id, t.experiment, t.task_name, r.criterion, r.verdict, r.source, r.reasoning,
               r.judge_model, r.cost_usd, r.cached, r.truncated, r.error, r.cited_steps,
               r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.latency_ms, r.prompt_version, r.created_at,
               r.votes, r.agreement, r.p_yes, r.segmented
        FROM rating_data r
        JOIN trial_data t USING (trial_id);
        """
    )


def m009_trial_key(db: duckdb.DuckDBPyConnection) -> None:
    """``trial_key``: a BIGINT trial key in trials, ratings and replaced ratings (:mod:`atif.store.keys`),
    and each trial's ``agent_name`` and ``model_name`` kept with it, so that metrics join ratings
    to trials on an integer and never read ``trajectory_data``.

    ``model_name`` is what the ``trials`` view shows: the trajectory's model, else the trial
    metadata's ``model_name``. Existing rows are filled in here; writers set them from now on.
    """
    from atif.store.keys import trial_key_sql

    db.execute(
        f"""
        ALTER TABLE trial_data ADD COLUMN trial_key BIGINT;
        ALTER TABLE trial_data ADD COLUMN agent_name VARCHAR;
        ALTER TABLE trial_data ADD COLUMN model_name VARCHAR;
        ALTER TABLE rating_data ADD COLUMN trial_key BIGINT;
        ALTER TABLE rating_history ADD COLUMN trial_key BIGINT;
        UPDATE trial_data SET trial_key = {trial_key_sql('trial_id')},
                              model_name = json_extract_string(metadata, '$.model_name');
        UPDATE trial_data SET agent_name = j.agent_name, model_name = coalesce(j.model_name, trial_data.model_name)
        FROM trajectory_data j WHERE j.trajectory_id = trial_data.trajectory_id;
        UPDATE rating_data SET trial_key = {trial_key_sql('trial_id')};
        UPDATE rating_history SET trial_key = {trial_key_sql('trial_id')};
        """
    )


MIGRATIONS: list[Migration] = [
    m001_initial, m002_raw_per_trial, m003_rating_samples, m004_replaced_ratings, m005_rating_p_yes,
    m006_trial_input_key, m007_fitted_thresholds, m008_rating_segmented, m009_trial_key,
]

_PRIMARY_KEY = re.compile(r",\s*PRIMARY KEY \([^)]*\)|\s+PRIMARY KEY(?=\s*[,)\n])")
_CHECK = re.compile(r"\s+CHECK \((?:[^()]|\([^()]*\))*\)")
_LIST_DEFAULT = re.compile(r"\s+DEFAULT \[\]")


def ducklake_ddl(sql: str) -> str:
    """The store's DDL as DuckLake takes it: no PRIMARY KEY, no CHECK, no default lists.

    On a team store the keys hold by construction instead (content-addressed ids, each write
    checking for the key in its own serialised transaction: :mod:`atif.store.txn`), and the
    values by the one writer of each table (:mod:`atif.store.ratings` checks verdicts and sources).
    """
    return _LIST_DEFAULT.sub("", _CHECK.sub("", _PRIMARY_KEY.sub("", sql)))


class _DuckLakeSchema:
    """A connection whose ``execute`` rewrites DDL for DuckLake (what the migrations get on a team store)."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def execute(self, sql: str, params: Any = None) -> duckdb.DuckDBPyConnection:
        return self._db.execute(ducklake_ddl(sql), params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def apply(db: duckdb.DuckDBPyConnection, *, team: bool = False) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied.

    On a team store, every migration is one serialised transaction (:func:`in_transaction`) that
    looks again whether another process applied it meanwhile.
    """
    ddl = cast(duckdb.DuckDBPyConnection, _DuckLakeSchema(db)) if team else db

    def bootstrap() -> None:
        ddl.execute(
            "CREATE TABLE IF NOT EXISTS _atif_migrations ("
            " id INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)"
        )
        if team:
            db.execute(f"CREATE TABLE IF NOT EXISTS {LOCK_TABLE} (n BIGINT NOT NULL)")
            db.execute(f"INSERT INTO {LOCK_TABLE} SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM {LOCK_TABLE})")

    if team:
        # Not serialised (the lock row may not exist yet): two first openings conflict and one retries.
        for attempt in range(MAX_ATTEMPTS):
            try:
                db.execute("BEGIN TRANSACTION")
                bootstrap()
                db.execute("COMMIT")
                break
            except duckdb.Error as exc:
                with contextlib.suppress(duckdb.Error):
                    db.execute("ROLLBACK")
                if not is_conflict(exc) or attempt == MAX_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
    else:
        bootstrap()
    applied = []
    for i, fn in enumerate(MIGRATIONS, start=1):

        def step(i: int = i, fn: Migration = fn) -> bool:
            if db.execute("SELECT 1 FROM _atif_migrations WHERE id = ?", [i]).fetchone() is not None:
                return False
            fn(ddl)
            db.execute("INSERT INTO _atif_migrations (id, name) VALUES (?, ?)", [i, fn.__name__])
            return True

        if db.execute("SELECT 1 FROM _atif_migrations WHERE id = ?", [i]).fetchone() is not None:
            continue
        if in_transaction(db, step, team=team, what=f"schema migration {fn.__name__}"):
            applied.append(fn.__name__)
    return applied
