-- dagq metastore, migration 015b: two costs that did not follow the work.
--
-- 1. The plans of the scheduler's per-pass steps and of the worker's batches
--    must not depend on fresh statistics. Measured
--    (make bench, "many": 200 runs of 10 tasks triggered at once on a
--    metastore autovacuum had not analyzed yet): the planner, believing
--    task_instance nearly empty, read all of it once per running run
--    (a nested-loop anti join over a sequential scan), 75-140 ms a pass,
--    where probing the partial index ti_unfinished per run costs well
--    under a millisecond. A scheduler pass runs finish_runs every time, so
--    this was most of what a task waited for between its upstream's end
--    and its queueing. The same held for propagate_ends' and
--    propagate_external's reads of their flags (partial indexes that are
--    all but empty, read as a sequential scan of task_instance: 1.2-1.4 ms
--    a pass on 4,000 rows, and growing with the table), a chain's every hop
--    paying them. Each of these steps is meant to read what changed through
--    a partial or primary key index, never a whole table, so a sequential
--    scan is never the better plan: it is only chosen while the statistics
--    say the table is empty.
--
--    finish_runs looks, besides, only at the runs a pass was told about
--    when that is all that can have ended: dagq.finish_runs_of(runs) below,
--    which the scheduler calls with the run ids of the end notifications
--    that woke it (a task's end notifies its run's id when the run may be
--    over, after its commit), and with NULL (every running run, as
--    finish_runs()) after anything else: a housekeeping pass, a pass it
--    did not owe to notifications only, one whose own steps ended task
--    instances, the first after a (re)connection.
--
--    queue_ready counted the queued and running tries of each DAG (and
--    pool) once per ready task instance, not once: with a large history
--    the statistics say nearly nothing is unfinished, so the planner
--    inlined those counts as a nested loop. 200 DAGs triggered at once on
--    10,000,000 finished task instances made one pass take 25 s (13 million
--    buffers). The counts are now MATERIALIZED: computed once a pass.
--
--    (And set_next_dagrun gets a fence: see below.)
--
-- 2. A DAG's time zone was checked against pg_timezone_names, which reads
--    the whole time zone database from disk at each call: 50-200 ms per
--    DAG inserted (1,000 DAGs took close to a minute). The names are now
--    kept in dagq.timezone_name, filled here from pg_timezone_names; a name
--    not there (a time zone database updated since the migration) is still
--    looked up in pg_timezone_names, so nothing valid is refused.

ALTER FUNCTION dagq.propagate_ends() SET enable_seqscan = off;
ALTER FUNCTION dagq.propagate_external() SET enable_seqscan = off;
ALTER FUNCTION dagq.settle_trigger_rules() SET enable_seqscan = off;
ALTER FUNCTION dagq.claim_tries(bigint[], int[], text, uuid, text) SET enable_seqscan = off;
ALTER FUNCTION dagq.finish_tries(bigint[], int[], text, uuid, boolean[], int[], double precision[],
                                 text[], text[], bigint[]) SET enable_seqscan = off;

CREATE TABLE dagq.timezone_name (name text PRIMARY KEY);
INSERT INTO dagq.timezone_name SELECT DISTINCT name FROM pg_timezone_names;
COMMENT ON TABLE dagq.timezone_name IS
    'The IANA time zone names of pg_timezone_names when the metastore was migrated: a DAG''s timezone is checked here first.';

CREATE FUNCTION dagq.timezone_known(p_tz text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
    SELECT p_tz IS NOT NULL
       AND (EXISTS (SELECT 1 FROM dagq.timezone_name z WHERE z.name = p_tz)
            OR EXISTS (SELECT 1 FROM pg_timezone_names z WHERE z.name = p_tz))
$$;
REVOKE ALL ON FUNCTION dagq.timezone_known(text) FROM PUBLIC;

-- The next interval of a DAG, stored only if the row is still the version
-- the scheduler read (p_seen, its xmin): an edit committed in between (a
-- new schedule, start date, pause) is not overwritten by an interval
-- computed from what it replaced; the edit notifies, and the next pass
-- computes the interval again. Returns whether it was stored.
CREATE FUNCTION dagq.set_next_dagrun(p_dag_id text, p_start bigint, p_end bigint, p_seen xid)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
    WITH u AS (
        UPDATE dagq.dag SET next_dagrun_start = to_timestamp(p_start),
                            next_dagrun_end = COALESCE(to_timestamp(p_end), 'infinity')
         WHERE dag_id = p_dag_id AND xmin = p_seen
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM u)
$$;
REVOKE ALL ON FUNCTION dagq.set_next_dagrun(text, bigint, bigint, xid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dagq.set_next_dagrun(text, bigint, bigint, xid) TO dagq_scheduler;

-- queue_ready as in 008, the per-DAG and per-pool counts computed once
CREATE OR REPLACE FUNCTION dagq.queue_ready(p_limit int)
RETURNS TABLE (ti_id bigint, try_number int, dag_id text, task_id text, run_id bigint,
               worker_group text, queued_at_us bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp
SET enable_seqscan = off AS $$
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
    ), busy AS MATERIALIZED (
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
    ), pool_busy AS MATERIALIZED (
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

-- finish_runs as in 011d, for the runs given (NULL: every running run)
CREATE FUNCTION dagq.finish_runs_of(p_runs bigint[])
RETURNS TABLE (run_id bigint, dag_id text, state text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp
SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
    rec record;
    v text;
    prev text;
BEGIN
    FOR rec IN SELECT r.run_id, r.dag_id FROM dagq.dag_run r
                WHERE r.state = 'running'
                  AND (p_runs IS NULL OR r.run_id = ANY (p_runs))
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
            PERFORM dagq.fire_dag_triggers(rec.run_id);
        END IF;
        run_id := rec.run_id;
        dag_id := rec.dag_id;
        state := v;
        RETURN NEXT;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION dagq.finish_runs_of(bigint[]) IS
    'Ends the running runs among p_runs (NULL: all) that have no unfinished task instance; returns them with their new state.';

CREATE OR REPLACE FUNCTION dagq.finish_runs()
RETURNS TABLE (run_id bigint, dag_id text, state text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
    SELECT * FROM dagq.finish_runs_of(NULL)
$$;

REVOKE ALL ON FUNCTION dagq.finish_runs_of(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dagq.finish_runs_of(bigint[]) TO dagq_scheduler;

-- dag_problem as in 011b, with the time zone looked up through timezone_known
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
    IF p_check_timezone AND NOT dagq.timezone_known(d.timezone) THEN
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
