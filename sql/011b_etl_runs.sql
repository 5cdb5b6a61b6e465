-- dagq metastore, migration 011 (ETL features, 2 of 7): run types, one run
-- per interval, run deadlines, backfill bookkeeping.
--
-- Runs are 'scheduled', 'manual', 'backfill' (dagq.backfill, 011f) or
-- 'triggered' (a DAG trigger, 011c and 011d). A data interval of a DAG has at most
-- one scheduled, backfill or triggered run: one unique index covers the
-- three, so a backfill and the DAG's own schedule, two backfills, or two
-- schedulers never create two runs for one (dag_id, logical_date), whoever
-- commits first. Manual runs are outside it: a trigger may name any logical
-- date, as often as it likes (a backfill leaves an interval that has a
-- manual run alone, as it does any interval that has a run).
--
-- dag.dagrun_timeout fails a run that has not ended that long after it
-- started (011e). A run keeps the timeout it started with (frozen, as the
-- rest of its definition) and its deadline; a clear or a mark that makes an
-- ended run run again gives it its whole timeout again.

ALTER TABLE dagq.dag ADD COLUMN dagrun_timeout interval;

ALTER TABLE dagq.dag_run DROP CONSTRAINT dag_run_run_type_check;
ALTER TABLE dagq.dag_run ADD CONSTRAINT dag_run_run_type_check
    CHECK (run_type IN ('scheduled', 'manual', 'backfill', 'triggered'));
ALTER TABLE dagq.dag_run
    ADD COLUMN backfill_id    bigint,      -- the backfill that runs it now (011f)
    ADD COLUMN dagrun_timeout interval,    -- the DAG's, when the run started
    ADD COLUMN deadline       timestamptz, -- started_at + dagrun_timeout
    ADD COLUMN ext_pending    boolean NOT NULL DEFAULT false; -- ended; waits may follow (011c)

DROP INDEX dagq.dag_run_scheduled_once;
CREATE UNIQUE INDEX dag_run_interval_once ON dagq.dag_run (dag_id, logical_date)
    WHERE run_type IN ('scheduled', 'backfill', 'triggered');
-- runs of any type by date: what waits and backfills look up
CREATE INDEX dag_run_by_date ON dagq.dag_run (dag_id, logical_date);
CREATE INDEX dag_run_deadline ON dagq.dag_run (deadline)
    WHERE state = 'running' AND deadline IS NOT NULL;
CREATE INDEX dag_run_ext_pending ON dagq.dag_run (run_id) WHERE ext_pending;

------------------------------------------------------------------------------
-- Backfills (their functions are in 011f).
------------------------------------------------------------------------------

CREATE TABLE dagq.backfill (
    backfill_id     bigserial PRIMARY KEY,
    dag_id          text NOT NULL REFERENCES dagq.dag (dag_id) ON UPDATE CASCADE ON DELETE CASCADE,
    from_date       timestamptz NOT NULL, -- logical dates from (the DAG's wall clock, as an instant)
    to_date         timestamptz NOT NULL, -- ... to, both included
    reprocess       text NOT NULL CHECK (reprocess IN ('none', 'failed', 'all')),
    reverse         boolean NOT NULL DEFAULT false,
    max_active_runs int,                  -- NULL: the DAG's max_active_runs
    conf            jsonb NOT NULL DEFAULT '{}',
    state           text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'canceled')),
    created_by      name NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at        timestamptz,
    note            text
);
CREATE INDEX backfill_running ON dagq.backfill (dag_id) WHERE state = 'running';
CREATE INDEX backfill_by_dag ON dagq.backfill (dag_id, backfill_id DESC);

COMMENT ON TABLE dagq.backfill IS
    'One row per dagq.backfill call: the range, how existing runs are treated, the cap on its active runs, its state.';

-- The intervals of a backfill, in the order it runs them (seq 1 first):
-- 'new' (its run was created by the backfill, queued until its turn),
-- 'rerun_failed' / 'rerun_all' (an existing run, cleared when its turn
-- comes), 'skip' (left alone: note says why). started_at: when the backfill
-- started its run, or reran it.
CREATE TABLE dagq.backfill_run (
    backfill_id       bigint NOT NULL REFERENCES dagq.backfill (backfill_id) ON DELETE CASCADE,
    seq               int NOT NULL,
    logical_date      timestamptz NOT NULL,
    data_interval_end timestamptz NOT NULL,
    action            text NOT NULL CHECK (action IN ('new', 'rerun_failed', 'rerun_all', 'skip')),
    run_id            bigint REFERENCES dagq.dag_run (run_id) ON DELETE SET NULL,
    started_at        timestamptz,
    note              text,
    PRIMARY KEY (backfill_id, seq)
);
-- what a backfill has still to start, in its order: the scheduler's only read
CREATE INDEX backfill_run_pending ON dagq.backfill_run (backfill_id, seq)
    WHERE started_at IS NULL AND action <> 'skip';
CREATE INDEX backfill_run_by_run ON dagq.backfill_run (run_id) WHERE run_id IS NOT NULL;

ALTER TABLE dagq.dag_run ADD CONSTRAINT dag_run_backfill_fkey
    FOREIGN KEY (backfill_id) REFERENCES dagq.backfill (backfill_id) ON DELETE SET NULL;
-- a backfill's active runs, counted against its max_active_runs
CREATE INDEX dag_run_backfill ON dagq.dag_run (backfill_id)
    WHERE backfill_id IS NOT NULL AND state IN ('queued', 'running');

------------------------------------------------------------------------------
-- The DAG's definition: dagrun_timeout is checked like the other bounds.
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dagq.dag_problem(d dagq.dag, p_check_timezone boolean DEFAULT true) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    err text;
BEGIN
    IF NOT dagq.name_ok(d.dag_id) THEN
        RETURN format('dag_id "%s" is not valid: use 1-250 letters, digits, "_", "." or "-", starting with a letter or digit', d.dag_id);
    END IF;
    IF d.schedule IS NOT NULL THEN
        err := dagq.cron_check(d.schedule);
        IF err IS NOT NULL THEN
            RETURN format('schedule "%s" is not valid: %s', d.schedule, err);
        END IF;
    END IF;
    IF p_check_timezone AND (d.timezone IS NULL
       OR NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = d.timezone)) THEN
        RETURN format('timezone "%s" is not a known IANA time zone name', d.timezone);
    END IF;
    err := COALESCE(dagq.date_problem('start_date', d.start_date), dagq.date_problem('end_date', d.end_date));
    IF err IS NOT NULL THEN
        RETURN err;
    END IF;
    IF d.end_date IS NOT NULL AND d.start_date IS NOT NULL AND d.end_date <= d.start_date THEN
        RETURN format('end_date %s is not after start_date %s', d.end_date, d.start_date);
    END IF;
    IF d.max_active_runs < 1 OR d.max_active_runs > 10000 THEN
        RETURN format('max_active_runs must be from 1 to 10000, got %s', d.max_active_runs);
    END IF;
    IF d.max_active_tasks < 1 OR d.max_active_tasks > 100000 THEN
        RETURN format('max_active_tasks must be from 1 to 100000, got %s', d.max_active_tasks);
    END IF;
    IF NOT dagq.group_name_ok(d.default_worker_group) THEN
        RETURN format('default_worker_group "%s" is not a valid worker group name (1-100 letters, digits, "_", "." or "-")', d.default_worker_group);
    END IF;
    IF d.dagrun_timeout IS NOT NULL AND (d.dagrun_timeout <= interval '0'
                                         OR d.dagrun_timeout > interval '365 days') THEN
        RETURN format('dagrun_timeout must be above 0 and at most 365 days, got %s', d.dagrun_timeout);
    END IF;
    RETURN dagq.json_problem('params', d.params);
END;
$$;

DROP TRIGGER dag_validate ON dagq.dag;
CREATE TRIGGER dag_validate
    BEFORE INSERT OR UPDATE OF dag_id, description, schedule, timezone, start_date, end_date,
                              catchup, max_active_runs, max_active_tasks, default_worker_group,
                              params, dagrun_timeout
    ON dagq.dag
    FOR EACH ROW EXECUTE FUNCTION dagq.dag_validate();

------------------------------------------------------------------------------
-- The scheduler: creating and starting runs.
------------------------------------------------------------------------------

-- A scheduled run, unless the interval has its run already (scheduled,
-- backfill or triggered).
CREATE OR REPLACE FUNCTION dagq.create_scheduled_run(p_dag_id text, p_start bigint, p_end bigint) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
    INSERT INTO dagq.dag_run (dag_id, run_type, logical_date, data_interval_start, data_interval_end)
    VALUES (p_dag_id, 'scheduled', to_timestamp(p_start), to_timestamp(p_start), to_timestamp(p_end))
    ON CONFLICT (dag_id, logical_date) WHERE run_type IN ('scheduled', 'backfill', 'triggered') DO NOTHING
    RETURNING run_id
$$;

-- Moves a queued run to running and creates its task instances and their
-- edges from the DAG's definition, read in one statement (one snapshot):
-- a definition being edited at that moment is seen whole or not at all.
-- The run keeps the DAG's dagrun_timeout and gets its deadline; its tasks'
-- waits for other DAGs are frozen too (dagq.freeze_external_waits, 011c);
-- a backfill's entry for it is marked started. Returns the number of task
-- instances, or -1 if the run was not queued (another scheduler took it).
CREATE OR REPLACE FUNCTION dagq.start_run(p_run_id bigint) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    n int;
    v_dag text;
BEGIN
    UPDATE dagq.dag_run r SET state = 'running', started_at = clock_timestamp(),
                              params = d.params || r.conf, dagrun_timeout = d.dagrun_timeout,
                              deadline = clock_timestamp() + d.dagrun_timeout
      FROM dagq.dag d
     WHERE r.run_id = p_run_id AND r.state = 'queued' AND d.dag_id = r.dag_id
    RETURNING r.dag_id INTO v_dag;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    WITH ins AS (
        INSERT INTO dagq.task_instance (run_id, dag_id, task_id, max_tries, worker_group, command,
                                        env, priority, pool, pool_slots, trigger_rule, retries,
                                        retry_delay, retry_exponential_backoff, max_retry_delay,
                                        execution_timeout, up_total, n_downstream)
        SELECT p_run_id, t.dag_id, t.task_id, t.retries + 1,
               COALESCE(t.worker_group, d.default_worker_group), t.command, t.env, t.priority,
               t.pool, t.pool_slots, t.trigger_rule, t.retries, t.retry_delay,
               t.retry_exponential_backoff, t.max_retry_delay, t.execution_timeout,
               (SELECT count(*) FROM dagq.task_dependency e
                 WHERE e.dag_id = t.dag_id AND e.task_id = t.task_id),
               (SELECT count(*) FROM dagq.task_dependency e
                 WHERE e.dag_id = t.dag_id AND e.upstream_task_id = t.task_id)
          FROM dagq.task t
          JOIN dagq.dag d ON d.dag_id = t.dag_id
         WHERE t.dag_id = v_dag
         ORDER BY t.task_id
        RETURNING ti_id, task_id
    ), edges AS (
        INSERT INTO dagq.task_instance_dependency (ti_id, upstream_ti_id)
        SELECT a.ti_id, b.ti_id
          FROM dagq.task_dependency e
          JOIN ins a ON a.task_id = e.task_id
          JOIN ins b ON b.task_id = e.upstream_task_id
         WHERE e.dag_id = v_dag
    )
    SELECT count(*) INTO n FROM ins;
    PERFORM dagq.freeze_external_waits(p_run_id);
    UPDATE dagq.backfill_run SET started_at = clock_timestamp()
     WHERE run_id = p_run_id AND started_at IS NULL;
    RETURN n;
END;
$$;

-- An ended run runs again (a clear, a mark): running, with its whole
-- dagrun_timeout ahead of it. The caller holds the run's row.
CREATE FUNCTION dagq.revive_run(p_run_id bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE dagq.dag_run SET state = 'running', ended_at = NULL, note = NULL,
                            deadline = clock_timestamp() + dagrun_timeout
     WHERE run_id = p_run_id AND state IN ('success', 'failed')
$$;
