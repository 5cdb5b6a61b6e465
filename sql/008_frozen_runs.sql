-- dagq metastore, migration 008: runs are frozen, and every decision is
-- fenced by the row it writes.
--
-- A run executes the DAG as it was when the run started (DESIGN.md): its
-- task instances were always created then, with commands, trigger rules and
-- pools copied; now its edges are copied too, into
-- dagq.task_instance_dependency, so renaming, deleting or rewiring tasks,
-- edges or the DAG changes nothing in a run in flight. Renaming a DAG
-- carries its runs along (foreign keys cascade to every task instance);
-- deleting a DAG with runs in flight is refused.
--
-- Trigger rules are decided from counters kept in the downstream task
-- instance's own row: up_total edges, and how many upstreams ended in
-- success, failed (failed or upstream_failed) or skipped. Whoever ends a
-- task instance that has downstreams sets end_pending on it; the
-- scheduler's pass adds pending ends to the downstream counters
-- (propagate_ends). A user's clear takes ends back out. Because the
-- counters live in the row a verdict writes, the verdict's UPDATE re-reads
-- them under the row lock: a concurrent clear can never leave a verdict
-- taken on upstream states that no longer hold. The invariant, kept by every
-- function below: a task instance's counters count exactly its upstreams
-- that are in a finished state and not end_pending.
--
-- Locks: functions that lock several task instances take them in ti_id
-- order; the scheduler's set-wise statements skip rows someone else holds
-- (SKIP LOCKED) and pick them up in a later pass, so a user's open
-- transaction never stalls scheduling.

CREATE TABLE dagq.task_instance_dependency (
    ti_id          bigint NOT NULL REFERENCES dagq.task_instance (ti_id) ON DELETE CASCADE,
    upstream_ti_id bigint NOT NULL REFERENCES dagq.task_instance (ti_id) ON DELETE CASCADE,
    PRIMARY KEY (ti_id, upstream_ti_id)
);
CREATE INDEX task_instance_dependency_upstream ON dagq.task_instance_dependency (upstream_ti_id);

COMMENT ON TABLE dagq.task_instance_dependency IS
    'The edges of a run, frozen when it started: ti_id runs after upstream_ti_id.';

ALTER TABLE dagq.task_instance
    ADD COLUMN up_total     int NOT NULL DEFAULT 0,
    ADD COLUMN up_success   int NOT NULL DEFAULT 0,
    ADD COLUMN up_failed    int NOT NULL DEFAULT 0,
    ADD COLUMN up_skipped   int NOT NULL DEFAULT 0,
    ADD COLUMN n_downstream int NOT NULL DEFAULT 0,
    ADD COLUMN end_pending  boolean NOT NULL DEFAULT false,
    -- the worker process holding a running try (migration 009)
    ADD COLUMN incarnation  uuid;
ALTER TABLE dagq.task_try ADD COLUMN incarnation uuid;

-- the DAG's params overlaid by the run's conf, as the run started
ALTER TABLE dagq.dag_run ADD COLUMN params jsonb;

-- A task instance belongs to its run's DAG, whatever the DAG is called later.
UPDATE dagq.task_instance ti SET dag_id = r.dag_id
  FROM dagq.dag_run r WHERE r.run_id = ti.run_id AND ti.dag_id <> r.dag_id;
ALTER TABLE dagq.dag_run ADD CONSTRAINT dag_run_run_dag UNIQUE (run_id, dag_id);
ALTER TABLE dagq.task_instance DROP CONSTRAINT task_instance_run_id_fkey;
ALTER TABLE dagq.task_instance ADD CONSTRAINT task_instance_run_fkey
    FOREIGN KEY (run_id, dag_id) REFERENCES dagq.dag_run (run_id, dag_id)
    ON UPDATE CASCADE ON DELETE CASCADE;

CREATE INDEX dag_run_finished ON dagq.dag_run (dag_id, ended_at DESC)
    WHERE state IN ('success', 'failed');

CREATE FUNCTION dagq.dag_delete_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT run_id, count(*) OVER () AS n INTO r FROM dagq.dag_run
     WHERE dag_id = OLD.dag_id AND state IN ('queued', 'running') ORDER BY run_id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'dagq.dag "%": cannot delete it while % run(s) are in flight (queued or running), such as run %',
            OLD.dag_id, r.n, r.run_id
            USING ERRCODE = 'object_in_use',
                  HINT = 'pause the DAG (dagq pause) and let its runs end, or stop them, then delete it';
    END IF;
    RETURN OLD;
END;
$$;

CREATE TRIGGER dag_delete_guard BEFORE DELETE ON dagq.dag
    FOR EACH ROW EXECUTE FUNCTION dagq.dag_delete_guard();

-- A trigger rule's verdict from the counters: 'run', 'upstream_failed',
-- 'skipped', or NULL (wait). Airflow's meaning; a skipped upstream skips an
-- all_success task.
CREATE FUNCTION dagq.rule_verdict(p_rule text, n int, ok int, bad int, skip int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
         WHEN n = 0 OR p_rule = 'always' THEN 'run'
         WHEN p_rule = 'all_success' THEN
              CASE WHEN bad > 0 THEN 'upstream_failed'
                   WHEN skip > 0 THEN 'skipped'
                   WHEN ok = n THEN 'run' END
         WHEN p_rule = 'all_failed' THEN
              CASE WHEN ok > 0 OR skip > 0 THEN 'skipped'
                   WHEN bad = n THEN 'run' END
         WHEN p_rule = 'all_done' THEN
              CASE WHEN ok + bad + skip = n THEN 'run' END
         WHEN p_rule = 'one_success' THEN
              CASE WHEN ok > 0 THEN 'run'
                   WHEN skip = n THEN 'skipped'
                   WHEN ok + bad + skip = n THEN 'upstream_failed' END
         WHEN p_rule = 'one_failed' THEN
              CASE WHEN bad > 0 THEN 'run'
                   WHEN ok + bad + skip = n THEN 'skipped' END
         WHEN p_rule = 'none_failed' THEN
              CASE WHEN bad > 0 THEN 'upstream_failed'
                   WHEN ok + bad + skip = n THEN 'run' END
    END
$$;

-- What a pass reads: waiting task instances whose rule is decided, and ends
-- not yet told to their downstreams. Both stay as small as the work at hand.
CREATE INDEX ti_decided ON dagq.task_instance (run_id)
    WHERE state = 'scheduled'
      AND dagq.rule_verdict(trigger_rule, up_total, up_success, up_failed, up_skipped) IS NOT NULL;
CREATE INDEX ti_end_pending ON dagq.task_instance (ti_id) WHERE end_pending;
DROP INDEX dagq.ti_ended_badly;
DROP INDEX dagq.ti_waits_for_failure;

CREATE OR REPLACE VIEW dagq.ti_verdict AS
SELECT ti.ti_id,
       dagq.rule_verdict(ti.trigger_rule, ti.up_total, ti.up_success, ti.up_failed, ti.up_skipped) AS verdict
  FROM dagq.task_instance ti
  JOIN dagq.dag_run r ON r.run_id = ti.run_id AND r.state = 'running'
  JOIN dagq.dag d ON d.dag_id = ti.dag_id AND NOT d.is_paused
 WHERE ti.state = 'scheduled';

-- Runs already in the metastore get their edges and counters from the
-- definition they have been following so far.
INSERT INTO dagq.task_instance_dependency (ti_id, upstream_ti_id)
SELECT a.ti_id, b.ti_id
  FROM dagq.task_instance a
  JOIN dagq.task_dependency e ON e.dag_id = a.dag_id AND e.task_id = a.task_id
  JOIN dagq.task_instance b ON b.run_id = a.run_id AND b.task_id = e.upstream_task_id;
UPDATE dagq.task_instance d
   SET up_total = x.n, up_success = x.ok, up_failed = x.bad, up_skipped = x.skip
  FROM (SELECT e.ti_id, count(*) AS n,
               count(*) FILTER (WHERE u.state = 'success') AS ok,
               count(*) FILTER (WHERE u.state IN ('failed', 'upstream_failed')) AS bad,
               count(*) FILTER (WHERE u.state = 'skipped') AS skip
          FROM dagq.task_instance_dependency e
          JOIN dagq.task_instance u ON u.ti_id = e.upstream_ti_id
         GROUP BY e.ti_id) x
 WHERE d.ti_id = x.ti_id;
UPDATE dagq.task_instance u SET n_downstream = x.n
  FROM (SELECT upstream_ti_id, count(*) AS n FROM dagq.task_instance_dependency
         GROUP BY upstream_ti_id) x
 WHERE u.ti_id = x.upstream_ti_id;
UPDATE dagq.dag_run r SET params = d.params || r.conf
  FROM dagq.dag d WHERE d.dag_id = r.dag_id AND r.state <> 'queued';

------------------------------------------------------------------------------
-- For ETL teams: trigger and clear.
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dagq.trigger_dag(p_dag_id text, p_conf jsonb DEFAULT '{}',
                                            p_logical_date timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    rid bigint;
    err text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dagq.dag WHERE dag_id = p_dag_id) THEN
        RAISE EXCEPTION 'dagq.trigger_dag: unknown DAG "%"', p_dag_id
            USING ERRCODE = 'no_data_found';
    END IF;
    err := dagq.json_problem('conf', COALESCE(p_conf, '{}'));
    IF err IS NOT NULL THEN
        RAISE EXCEPTION 'dagq.trigger_dag: %', err USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_logical_date IS NULL THEN
        RAISE EXCEPTION 'dagq.trigger_dag: logical_date must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    err := dagq.date_problem('logical_date', p_logical_date);
    IF err IS NOT NULL THEN
        RAISE EXCEPTION 'dagq.trigger_dag: %', err USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO dagq.dag_run (dag_id, run_type, logical_date, data_interval_start,
                              data_interval_end, conf)
    VALUES (p_dag_id, 'manual', p_logical_date, p_logical_date, p_logical_date,
            COALESCE(p_conf, '{}'))
    RETURNING run_id INTO rid;
    PERFORM pg_notify('dagq', 'run');
    RETURN rid;
END;
$$;

-- Sets finished task instances of a run back to 'scheduled' (all of them, or
-- one task, with p_downstream the task instances downstream of it in the
-- run's frozen edges too), so they run again with new tries; their history
-- (task_try, task_log) is kept. Queued and running task instances are left
-- alone. Returns how many were cleared.
--
-- Fenced: the run row and then the targets with their direct downstreams
-- are locked, in ti_id order, before their states are read; a verdict the
-- scheduler is taking on them either committed first (and is then cleared
-- too) or waits and re-reads the counters this takes back.
CREATE OR REPLACE FUNCTION dagq.clear(p_run_id bigint, p_task_id text DEFAULT NULL,
                                      p_downstream boolean DEFAULT false)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
    targets bigint[];
    cleared bigint[];
BEGIN
    PERFORM 1 FROM dagq.dag_run WHERE run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.clear: unknown run %', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    IF p_task_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM dagq.task_instance WHERE run_id = p_run_id AND task_id = p_task_id) THEN
        RAISE EXCEPTION 'dagq.clear: run % has no task "%"', p_run_id, p_task_id
            USING ERRCODE = 'no_data_found';
    END IF;
    WITH RECURSIVE t(ti_id) AS (
        SELECT ti.ti_id FROM dagq.task_instance ti
         WHERE ti.run_id = p_run_id AND (p_task_id IS NULL OR ti.task_id = p_task_id)
        UNION
        SELECT e.ti_id FROM dagq.task_instance_dependency e JOIN t ON e.upstream_ti_id = t.ti_id
         WHERE p_downstream
    )
    SELECT array_agg(t.ti_id) INTO targets FROM t;
    PERFORM 1 FROM dagq.task_instance x
     WHERE x.ti_id = ANY (targets)
        OR x.ti_id IN (SELECT e.ti_id FROM dagq.task_instance_dependency e
                        WHERE e.upstream_ti_id = ANY (targets))
     ORDER BY x.ti_id
       FOR UPDATE;
    -- read with the locks held: a new statement, a new snapshot
    SELECT array_agg(x.ti_id) INTO cleared FROM dagq.task_instance x
     WHERE x.ti_id = ANY (targets)
       AND x.state IN ('success', 'failed', 'upstream_failed', 'skipped', 'up_for_retry');
    n := COALESCE(cardinality(cleared), 0);
    IF n = 0 THEN
        RETURN 0;
    END IF;
    -- downstreams were told of these ends (unless still pending): take them back
    UPDATE dagq.task_instance d
       SET up_success = d.up_success - x.ok, up_failed = d.up_failed - x.bad,
           up_skipped = d.up_skipped - x.skip
      FROM (SELECT e.ti_id,
                   count(*) FILTER (WHERE u.state = 'success') AS ok,
                   count(*) FILTER (WHERE u.state IN ('failed', 'upstream_failed')) AS bad,
                   count(*) FILTER (WHERE u.state = 'skipped') AS skip
              FROM dagq.task_instance u
              JOIN dagq.task_instance_dependency e ON e.upstream_ti_id = u.ti_id
             WHERE u.ti_id = ANY (cleared) AND NOT u.end_pending
             GROUP BY e.ti_id) x
     WHERE d.ti_id = x.ti_id;
    UPDATE dagq.task_instance ti
       SET state = 'scheduled', max_tries = ti.try_number + ti.retries + 1,
           worker_id = NULL, incarnation = NULL, hostname = NULL, queued_at = NULL,
           pushed_at = NULL, started_at = NULL, ended_at = NULL, next_retry_at = NULL, exit_code = NULL, note = NULL,
           end_pending = false
     WHERE ti.ti_id = ANY (cleared);
    -- what the cleared ones wait for now: their upstreams as they stand
    UPDATE dagq.task_instance d
       SET up_success = x.ok, up_failed = x.bad, up_skipped = x.skip
      FROM (SELECT c.ti_id,
                   count(u.ti_id) FILTER (WHERE u.state = 'success' AND NOT u.end_pending) AS ok,
                   count(u.ti_id) FILTER (WHERE u.state IN ('failed', 'upstream_failed')
                                            AND NOT u.end_pending) AS bad,
                   count(u.ti_id) FILTER (WHERE u.state = 'skipped' AND NOT u.end_pending) AS skip
              FROM unnest(cleared) AS c(ti_id)
              LEFT JOIN dagq.task_instance_dependency e ON e.ti_id = c.ti_id
              LEFT JOIN dagq.task_instance u ON u.ti_id = e.upstream_ti_id
             GROUP BY c.ti_id) x
     WHERE d.ti_id = x.ti_id;
    UPDATE dagq.dag_run SET state = 'running', ended_at = NULL, note = NULL
     WHERE run_id = p_run_id AND state IN ('success', 'failed');
    PERFORM pg_notify('dagq', p_run_id::text);
    RETURN n;
END;
$$;

------------------------------------------------------------------------------
-- For the scheduler.
------------------------------------------------------------------------------

-- Moves a queued run to running and creates its task instances and their
-- edges from the DAG's definition, read in one statement (one snapshot):
-- a definition being edited at that moment is seen whole or not at all.
-- Returns the number of task instances, or -1 if the run was not queued
-- (another scheduler took it).
CREATE OR REPLACE FUNCTION dagq.start_run(p_run_id bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
    v_dag text;
BEGIN
    UPDATE dagq.dag_run r SET state = 'running', started_at = clock_timestamp(),
                              params = d.params || r.conf
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
    RETURN n;
END;
$$;

-- Tells downstream task instances of the ends that are pending: adds them
-- to their counters and clears end_pending. A pending end whose row or a
-- downstream row someone else holds waits for a later pass. Returns how
-- many ends were propagated.
CREATE FUNCTION dagq.propagate_ends() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    held bigint[];
BEGIN
    SELECT array_agg(s.ti_id) INTO ids
      FROM (SELECT ti_id FROM dagq.task_instance WHERE end_pending
             ORDER BY ti_id LIMIT 10000 FOR UPDATE SKIP LOCKED) s;
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    SELECT array_agg(s.ti_id) INTO held
      FROM (SELECT x.ti_id FROM dagq.task_instance x
             WHERE x.ti_id IN (SELECT e.ti_id FROM dagq.task_instance_dependency e
                                WHERE e.upstream_ti_id = ANY (ids))
             ORDER BY x.ti_id FOR UPDATE SKIP LOCKED) s;
    -- only ends whose every downstream row is ours now
    ids := ARRAY(SELECT u.id FROM unnest(ids) AS u(id)
                  WHERE NOT EXISTS (SELECT 1 FROM dagq.task_instance_dependency e
                                     WHERE e.upstream_ti_id = u.id
                                       AND NOT (e.ti_id = ANY (COALESCE(held, '{}')))));
    UPDATE dagq.task_instance d
       SET up_success = d.up_success + x.ok, up_failed = d.up_failed + x.bad,
           up_skipped = d.up_skipped + x.skip
      FROM (SELECT e.ti_id,
                   count(*) FILTER (WHERE u.state = 'success') AS ok,
                   count(*) FILTER (WHERE u.state IN ('failed', 'upstream_failed')) AS bad,
                   count(*) FILTER (WHERE u.state = 'skipped') AS skip
              FROM dagq.task_instance u
              JOIN dagq.task_instance_dependency e ON e.upstream_ti_id = u.ti_id
             WHERE u.ti_id = ANY (ids)
             GROUP BY e.ti_id) x
     WHERE d.ti_id = x.ti_id;
    UPDATE dagq.task_instance SET end_pending = false WHERE ti_id = ANY (ids);
    RETURN cardinality(ids);
END;
$$;

-- Settles task instances that trigger rules decide without running
-- (upstream_failed, skipped), propagating ends as it goes until nothing more
-- moves, so a failure travels down a chain in one call. Returns how many
-- moved, by worker group and new state (a pair may appear more than once).
CREATE OR REPLACE FUNCTION dagq.settle_trigger_rules()
RETURNS TABLE (worker_group text, state text, n bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    moved int;
BEGIN
    LOOP
        PERFORM dagq.propagate_ends();
        RETURN QUERY
        WITH cand AS (
            SELECT ti.ti_id FROM dagq.task_instance ti
              JOIN dagq.dag_run r ON r.run_id = ti.run_id AND r.state = 'running'
              JOIN dagq.dag d ON d.dag_id = ti.dag_id AND NOT d.is_paused
             WHERE ti.state = 'scheduled'
               AND dagq.rule_verdict(ti.trigger_rule, ti.up_total, ti.up_success, ti.up_failed,
                                     ti.up_skipped) IS NOT NULL
               AND dagq.rule_verdict(ti.trigger_rule, ti.up_total, ti.up_success, ti.up_failed,
                                     ti.up_skipped) IN ('upstream_failed', 'skipped')
        ), locked AS (
            SELECT x.ti_id FROM dagq.task_instance x
             WHERE x.ti_id IN (SELECT cand.ti_id FROM cand)
             ORDER BY x.ti_id FOR UPDATE OF x SKIP LOCKED
        ), u AS (
            UPDATE dagq.task_instance t
               SET state = dagq.rule_verdict(t.trigger_rule, t.up_total, t.up_success,
                                             t.up_failed, t.up_skipped),
                   ended_at = clock_timestamp(), note = 'by trigger rule ' || t.trigger_rule,
                   end_pending = t.n_downstream > 0
              FROM locked
             WHERE t.ti_id = locked.ti_id AND t.state = 'scheduled'
               AND dagq.rule_verdict(t.trigger_rule, t.up_total, t.up_success, t.up_failed,
                                     t.up_skipped) IN ('upstream_failed', 'skipped')
            RETURNING t.worker_group, t.state
        )
        SELECT u.worker_group, u.state, count(*) FROM u GROUP BY 1, 2;
        GET DIAGNOSTICS moved = ROW_COUNT;
        EXIT WHEN moved = 0;
    END LOOP;
END;
$$;

-- One scheduling step, after dagq.settle_trigger_rules(): queues the ready
-- task instances and the retries that are due: state -> 'queued',
-- try_number + 1, by priority (higher first), oldest run first, never more
-- per DAG than its max_active_tasks nor more of a pool's slots than it has,
-- counting what is already queued or running, at most p_limit in all.
-- Returns what was queued, for the caller to push after COMMIT.
CREATE OR REPLACE FUNCTION dagq.queue_ready(p_limit int)
RETURNS TABLE (ti_id bigint, try_number int, dag_id text, task_id text, run_id bigint,
               worker_group text, queued_at_us bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH cand AS (
        SELECT ti.ti_id FROM dagq.task_instance ti
         WHERE ti.state = 'scheduled'
           AND dagq.rule_verdict(ti.trigger_rule, ti.up_total, ti.up_success, ti.up_failed,
                                 ti.up_skipped) IS NOT NULL
           AND dagq.rule_verdict(ti.trigger_rule, ti.up_total, ti.up_success, ti.up_failed,
                                 ti.up_skipped) = 'run'
        UNION ALL
        SELECT ti.ti_id FROM dagq.task_instance ti
         WHERE ti.state = 'up_for_retry' AND ti.next_retry_at <= clock_timestamp()
    ), ready AS (
        SELECT ti.ti_id, ti.dag_id, ti.priority, ti.pool, ti.pool_slots, r.logical_date
          FROM cand
          JOIN dagq.task_instance ti ON ti.ti_id = cand.ti_id
          JOIN dagq.dag_run r ON r.run_id = ti.run_id AND r.state = 'running'
          JOIN dagq.dag d ON d.dag_id = ti.dag_id AND NOT d.is_paused
    ), busy AS (
        SELECT a.dag_id, count(*) AS n
          FROM dagq.task_instance a
         WHERE a.state IN ('queued', 'running')
           AND a.dag_id IN (SELECT DISTINCT ready.dag_id FROM ready)
         GROUP BY a.dag_id
    ), ranked AS (
        SELECT ready.*,
               row_number() OVER (PARTITION BY ready.dag_id
                                  ORDER BY ready.priority DESC, ready.logical_date, ready.ti_id) AS rk,
               d.max_active_tasks - COALESCE(b.n, 0) AS free
          FROM ready
          JOIN dagq.dag d ON d.dag_id = ready.dag_id
          LEFT JOIN busy b ON b.dag_id = ready.dag_id
    ), dag_ok AS (
        SELECT * FROM ranked WHERE ranked.rk <= ranked.free
    ), pool_busy AS (
        SELECT a.pool, sum(a.pool_slots) AS n
          FROM dagq.task_instance a
         WHERE a.pool IS NOT NULL AND a.state IN ('queued', 'running')
           AND a.pool IN (SELECT DISTINCT dag_ok.pool FROM dag_ok WHERE dag_ok.pool IS NOT NULL)
         GROUP BY a.pool
    ), pooled AS (
        -- in priority order, a pool admits task instances while their slots
        -- fit; one that does not fit holds back those behind it, so a task
        -- that needs many slots is not starved by small ones. A pool that
        -- was deleted since the run started limits nothing.
        SELECT dag_ok.ti_id, dag_ok.priority, dag_ok.logical_date,
               dag_ok.pool IS NULL OR p.pool IS NULL
               OR sum(dag_ok.pool_slots) OVER (PARTITION BY dag_ok.pool
                                               ORDER BY dag_ok.priority DESC, dag_ok.logical_date, dag_ok.ti_id)
                  <= p.slots - COALESCE(pb.n, 0) AS fits
          FROM dag_ok
          LEFT JOIN dagq.pool p ON p.pool = dag_ok.pool
          LEFT JOIN pool_busy pb ON pb.pool = dag_ok.pool
    ), pick AS (
        SELECT pooled.ti_id FROM pooled
         WHERE pooled.fits
         ORDER BY pooled.priority DESC, pooled.logical_date, pooled.ti_id
         LIMIT p_limit
    ), locked AS (
        SELECT x.ti_id FROM dagq.task_instance x
         WHERE x.ti_id IN (SELECT pick.ti_id FROM pick)
         ORDER BY x.ti_id FOR UPDATE OF x SKIP LOCKED
    )
    UPDATE dagq.task_instance t
       SET state = 'queued', try_number = t.try_number + 1,
           queued_at = clock_timestamp(), pushed_at = clock_timestamp(),
           worker_id = NULL, incarnation = NULL, hostname = NULL, started_at = NULL,
           ended_at = NULL, next_retry_at = NULL, exit_code = NULL
      FROM locked
     WHERE t.ti_id = locked.ti_id
       AND (t.state = 'up_for_retry'
            OR (t.state = 'scheduled'
                AND dagq.rule_verdict(t.trigger_rule, t.up_total, t.up_success, t.up_failed,
                                      t.up_skipped) = 'run'))
    RETURNING t.ti_id, t.try_number, t.dag_id, t.task_id, t.run_id, t.worker_group,
              (extract(epoch FROM t.queued_at) * 1000000)::bigint;
END;
$$;

-- Ends running runs whose task instances are all finished: 'failed' when a
-- leaf task instance (one the run's frozen edges give no downstream) failed
-- or was upstream_failed, else 'success' (Airflow's rule). Each run is
-- locked and checked again before it ends, so a clear committed meanwhile
-- keeps it running. Writes run_succeeded / run_failed events, and
-- run_recovered when a success follows a failed run of the same DAG.
CREATE OR REPLACE FUNCTION dagq.finish_runs()
RETURNS TABLE (run_id bigint, dag_id text, state text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    rec record;
    v text;
    prev text;
BEGIN
    FOR rec IN SELECT r.run_id, r.dag_id FROM dagq.dag_run r
                WHERE r.state = 'running'
                  AND NOT EXISTS (SELECT 1 FROM dagq.task_instance ti
                                   WHERE ti.run_id = r.run_id
                                     AND ti.state IN ('scheduled', 'queued', 'running', 'up_for_retry'))
                ORDER BY r.run_id
                  FOR UPDATE OF r SKIP LOCKED LOOP
        -- the run is ours: look again, with what committed until we got it
        CONTINUE WHEN EXISTS (SELECT 1 FROM dagq.task_instance ti
                               WHERE ti.run_id = rec.run_id
                                 AND ti.state IN ('scheduled', 'queued', 'running', 'up_for_retry'));
        v := CASE WHEN EXISTS (SELECT 1 FROM dagq.task_instance ti
                                WHERE ti.run_id = rec.run_id AND ti.n_downstream = 0
                                  AND ti.state IN ('failed', 'upstream_failed'))
                  THEN 'failed' ELSE 'success' END;
        UPDATE dagq.dag_run x SET state = v, ended_at = clock_timestamp()
         WHERE x.run_id = rec.run_id AND x.state = 'running';
        CONTINUE WHEN NOT FOUND;
        PERFORM dagq.emit(CASE v WHEN 'failed' THEN 'run_failed' ELSE 'run_succeeded' END,
                          rec.dag_id, rec.run_id, p_state => v);
        IF v = 'success' THEN
            SELECT p.state INTO prev FROM dagq.dag_run p
             WHERE p.dag_id = rec.dag_id AND p.run_id <> rec.run_id
               AND p.state IN ('success', 'failed')
             ORDER BY p.ended_at DESC LIMIT 1;
            IF prev = 'failed' THEN
                PERFORM dagq.emit('run_recovered', rec.dag_id, rec.run_id, p_state => v);
            END IF;
        END IF;
        run_id := rec.run_id;
        dag_id := rec.dag_id;
        state := v;
        RETURN NEXT;
    END LOOP;
END;
$$;
