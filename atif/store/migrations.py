"""Ordered schema migrations of the store.

Each migration is a function applied once, in one transaction with its record
in ``_atif_migrations``. Never edit a shipped migration: add a new one.

Tables hold the data (``*_data``); the views are the public SQL API and keep
their names and columns stable: ``trials``, ``steps``, ``tool_calls``,
``ratings``, ``experiment_metrics``, ``criterion_metrics``, ``judge_usage``.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

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


def m002_rating_p_yes(db: duckdb.DuckDBPyConnection) -> None:
    """``p_yes``: the judge's probability of YES (from the verdict token's log-probabilities), when known."""
    db.execute(
        """
        ALTER TABLE rating_data ADD COLUMN p_yes DOUBLE;
        ALTER TABLE judge_cache ADD COLUMN p_yes DOUBLE;
        CREATE OR REPLACE VIEW ratings AS
        SELECT r.trial_id, t.experiment, t.task_name, r.criterion, r.verdict, r.source, r.reasoning,
               r.judge_model, r.cost_usd, r.cached, r.truncated, r.error, r.cited_steps,
               r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.latency_ms, r.prompt_version, r.created_at,
               r.p_yes
        FROM rating_data r
        JOIN trial_data t USING (trial_id);
        """
    )


MIGRATIONS: list[Migration] = [m001_initial, m002_rating_p_yes]


def apply(db: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _atif_migrations ("
        " id INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)"
    )
    done = {row[0] for row in db.execute("SELECT id FROM _atif_migrations").fetchall()}
    applied = []
    for i, fn in enumerate(MIGRATIONS, start=1):
        if i in done:
            continue
        db.execute("BEGIN TRANSACTION")
        try:
            fn(db)
            db.execute("INSERT INTO _atif_migrations (id, name) VALUES (?, ?)", [i, fn.__name__])
            db.execute("COMMIT")
        except Exception:
            db.execute("ROLLBACK")
            raise
        applied.append(fn.__name__)
    return applied
