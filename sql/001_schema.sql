-- dagq metastore, migration 001: the tables of the SQL contract.
--
-- ETL teams define DAGs with plain INSERT/UPDATE on dagq.dag, dagq.task and
-- dagq.task_dependency. What cannot run is rejected by the database itself
-- with an error that names the problem (see the validation triggers in 003).
-- Every state change of a run or a task instance is a conditional UPDATE;
-- the functions in 004 are the only writers the programs use.

CREATE SCHEMA IF NOT EXISTS dagq;

CREATE TABLE dagq.dag (
    dag_id               text PRIMARY KEY,
    description          text,
    schedule             text,
    timezone             text NOT NULL DEFAULT 'UTC',
    start_date           timestamptz,
    end_date             timestamptz,
    catchup              boolean NOT NULL DEFAULT false,
    is_paused            boolean NOT NULL DEFAULT false,
    max_active_runs      int NOT NULL DEFAULT 16,
    max_active_tasks     int NOT NULL DEFAULT 16,
    default_worker_group text NOT NULL DEFAULT 'default',
    params               jsonb NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    -- the scheduler's bookkeeping: the next data interval to create a run
    -- for; NULL means "compute it" (reset whenever the schedule changes)
    next_dagrun_start    timestamptz,
    next_dagrun_end      timestamptz
);

CREATE INDEX dag_schedule_due ON dagq.dag (next_dagrun_end)
    WHERE schedule IS NOT NULL AND NOT is_paused;

-- Pools cap how many task instances of any DAG run at once against a shared
-- resource (a database, an API quota): a task names its pool and how many of
-- its slots it takes; queued and running task instances hold their slots.
-- A task without a pool is limited only by its DAG's max_active_tasks.
-- slots = 0 holds a pool's tasks back until it is raised again.
CREATE TABLE dagq.pool (
    pool        text PRIMARY KEY,
    slots       int NOT NULL,
    description text
);

CREATE TABLE dagq.task (
    dag_id                    text NOT NULL REFERENCES dagq.dag (dag_id)
                                  ON DELETE CASCADE ON UPDATE CASCADE
                                  DEFERRABLE INITIALLY DEFERRED,
    task_id                   text NOT NULL,
    kind                      text NOT NULL DEFAULT 'shell',
    command                   text,
    worker_group              text,
    retries                   int NOT NULL DEFAULT 0,
    retry_delay               interval NOT NULL DEFAULT '5 minutes',
    retry_exponential_backoff boolean NOT NULL DEFAULT false,
    max_retry_delay           interval NOT NULL DEFAULT '1 day',
    execution_timeout         interval,
    priority                  int NOT NULL DEFAULT 0,
    trigger_rule              text NOT NULL DEFAULT 'all_success',
    env                       jsonb NOT NULL DEFAULT '{}',
    pool                      text,
    pool_slots                int NOT NULL DEFAULT 1,
    PRIMARY KEY (dag_id, task_id)
);

-- Edges: task_id runs after upstream_task_id. Existence of both ends and
-- acyclicity are checked at commit by a deferred constraint trigger, so a DAG
-- may be written in any order inside one transaction.
CREATE TABLE dagq.task_dependency (
    dag_id           text NOT NULL,
    task_id          text NOT NULL,
    upstream_task_id text NOT NULL,
    PRIMARY KEY (dag_id, task_id, upstream_task_id)
);
CREATE INDEX task_dependency_upstream ON dagq.task_dependency (dag_id, upstream_task_id);

CREATE TABLE dagq.dag_run (
    run_id              bigserial PRIMARY KEY,
    dag_id              text NOT NULL REFERENCES dagq.dag (dag_id)
                            ON DELETE CASCADE ON UPDATE CASCADE,
    run_type            text NOT NULL CHECK (run_type IN ('scheduled', 'manual')),
    logical_date        timestamptz NOT NULL,
    data_interval_start timestamptz NOT NULL,
    data_interval_end   timestamptz NOT NULL,
    state               text NOT NULL DEFAULT 'queued'
                            CHECK (state IN ('queued', 'running', 'success', 'failed')),
    conf                jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at          timestamptz,
    ended_at            timestamptz
);
-- one scheduled run per interval, whatever number of schedulers race for it
CREATE UNIQUE INDEX dag_run_scheduled_once ON dagq.dag_run (dag_id, logical_date)
    WHERE run_type = 'scheduled';
CREATE INDEX dag_run_active ON dagq.dag_run (dag_id, logical_date)
    WHERE state IN ('queued', 'running');
CREATE INDEX dag_run_by_dag ON dagq.dag_run (dag_id, run_id DESC);

CREATE TABLE dagq.task_instance (
    ti_id                     bigserial PRIMARY KEY,
    run_id                    bigint NOT NULL REFERENCES dagq.dag_run (run_id) ON DELETE CASCADE,
    dag_id                    text NOT NULL,
    task_id                   text NOT NULL,
    state                     text NOT NULL DEFAULT 'scheduled'
                                  CHECK (state IN ('scheduled', 'queued', 'running', 'success',
                                                   'failed', 'up_for_retry', 'upstream_failed',
                                                   'skipped')),
    try_number                int NOT NULL DEFAULT 0,
    max_tries                 int NOT NULL,
    worker_group              text NOT NULL,
    worker_id                 text,
    hostname                  text,
    -- what the task instance runs, frozen when the run starts: editing the
    -- DAG never changes a run in flight
    command                   text NOT NULL,
    env                       jsonb NOT NULL DEFAULT '{}',
    priority                  int NOT NULL DEFAULT 0,
    pool                      text,
    pool_slots                int NOT NULL DEFAULT 1,
    trigger_rule              text NOT NULL,
    retries                   int NOT NULL,
    retry_delay               interval NOT NULL,
    retry_exponential_backoff boolean NOT NULL,
    max_retry_delay           interval NOT NULL,
    execution_timeout         interval,
    queued_at                 timestamptz,
    pushed_at                 timestamptz, -- last time the try's message was pushed
    started_at                timestamptz,
    ended_at                  timestamptz,
    heartbeat_at              timestamptz,
    next_retry_at             timestamptz,
    exit_code                 int,
    note                      text,        -- why it ended as it did, when not obvious
    UNIQUE (run_id, task_id)
) WITH (fillfactor = 80);

-- The scheduler only ever looks at unfinished task instances, through these
-- partial indexes: its cost follows the active work, not the history.
CREATE INDEX ti_scheduled ON dagq.task_instance (run_id) WHERE state = 'scheduled';
CREATE INDEX ti_active ON dagq.task_instance (dag_id) WHERE state IN ('queued', 'running');
CREATE INDEX ti_pool_active ON dagq.task_instance (pool)
    WHERE pool IS NOT NULL AND state IN ('queued', 'running');
CREATE INDEX ti_retry_due ON dagq.task_instance (next_retry_at) WHERE state = 'up_for_retry';
CREATE INDEX ti_queued ON dagq.task_instance (pushed_at) WHERE state = 'queued';
CREATE INDEX ti_running ON dagq.task_instance (heartbeat_at) WHERE state = 'running';
CREATE INDEX ti_running_worker ON dagq.task_instance (worker_id) WHERE state = 'running';
CREATE INDEX ti_unfinished ON dagq.task_instance (run_id)
    WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry');
-- settle_trigger_rules() has work only when a running run holds one of
-- these: without them its check walked every task instance of the run
CREATE INDEX ti_ended_badly ON dagq.task_instance (run_id)
    WHERE state IN ('failed', 'upstream_failed', 'skipped');
CREATE INDEX ti_waits_for_failure ON dagq.task_instance (run_id)
    WHERE state = 'scheduled' AND trigger_rule IN ('all_failed', 'one_failed');

-- One row per try: who ran it, when, and how it ended. Kept for every try,
-- not only the last.
CREATE TABLE dagq.task_try (
    ti_id      bigint NOT NULL REFERENCES dagq.task_instance (ti_id) ON DELETE CASCADE,
    try_number int NOT NULL,
    worker_id  text,
    hostname   text,
    state      text NOT NULL,
    started_at timestamptz,
    ended_at   timestamptz,
    exit_code  int,
    note       text,
    PRIMARY KEY (ti_id, try_number)
);

-- Captured stdout+stderr of a try, bounded by the worker (the tail is kept).
CREATE TABLE dagq.task_log (
    ti_id           bigint NOT NULL REFERENCES dagq.task_instance (ti_id) ON DELETE CASCADE,
    try_number      int NOT NULL,
    output          text NOT NULL,
    truncated_bytes bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (ti_id, try_number)
);

CREATE TABLE dagq.worker (
    worker_id    text PRIMARY KEY,
    hostname     text NOT NULL,
    pid          int NOT NULL,
    groups       text[] NOT NULL,
    slots        int NOT NULL,
    running      int NOT NULL DEFAULT 0,
    state        text NOT NULL DEFAULT 'up' CHECK (state IN ('up', 'draining', 'gone')),
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
