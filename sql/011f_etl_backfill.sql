-- dagq metastore, migration 011 (ETL features, 6 of 7): backfills.
--
-- dagq.backfill(dag, from, to [, reprocess, reverse, max_active_runs, conf])
-- decides, in one transaction, what every data interval of the DAG's
-- schedule whose logical date lies in [from, to] gets (from and to are wall
-- clock times in the DAG's time zone; a date alone is its midnight), and
-- records it in dagq.backfill_run, in the order the backfill runs it
-- (oldest first, newest with reverse):
--   - no run yet: 'new', a run_type 'backfill' run is created now, queued;
--   - a run queued or running: left to it;
--   - a run that ended: left alone (reprocess none), rerun if it failed
--     (failed: its failed and upstream_failed task instances are cleared),
--     or cleared whole and rerun (all), when its turn comes;
--   - an interval that has not ended yet: left to the schedule.
-- dagq.backfill_plan is the same decision without writing it (--dry-run).
-- Backfills of one DAG are decided one at a time (an advisory lock), and
-- the runs are created through the unique index of 011b, so two backfills
-- at once, or a backfill and the scheduler, create each interval's run once.
--
-- The scheduler starts backfill runs in their order as slots free, one per
-- freed slot (dagq.runs_to_start): at most max_active_runs of the
-- backfill's runs (default: the DAG's) run at once, and the DAG's
-- max_active_runs holds for all its runs together (the DAG's own scheduled
-- and manual runs are started first when a slot frees). A failed run does
-- not stop the rest. The backfill is done when every run it started has
-- ended (dagq.finish_backfills). dagq.backfill_cancel deletes the runs it
-- created that have not started; runs already running go on.

-- The plan of a backfill: one row per interval, in its order.
CREATE FUNCTION dagq.backfill_plan(p_dag_id text, p_from timestamp, p_to timestamp,
                                   p_reprocess text DEFAULT 'none', p_reverse boolean DEFAULT false)
RETURNS TABLE (seq int, logical_date timestamptz, data_interval_end timestamptz, run_id bigint,
               run_state text, action text, note text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    d dagq.dag;
    lo timestamptz;
    hi timestamptz;
BEGIN
    SELECT * INTO d FROM dagq.dag WHERE dag_id = p_dag_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.backfill: unknown DAG "%"', p_dag_id USING ERRCODE = 'no_data_found';
    END IF;
    IF d.schedule IS NULL THEN
        RAISE EXCEPTION 'dagq.backfill: DAG "%" has no schedule, so it has no intervals to backfill', p_dag_id
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'trigger runs of it with dagq.trigger_dag(dag, conf, logical_date)';
    END IF;
    IF p_reprocess IS NULL OR p_reprocess NOT IN ('none', 'failed', 'all') THEN
        RAISE EXCEPTION 'dagq.backfill: reprocess must be none, failed or all, got %', COALESCE(p_reprocess, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_from IS NULL OR p_to IS NULL OR p_from > p_to THEN
        RAISE EXCEPTION 'dagq.backfill: from (%) must not be after to (%)', p_from, p_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    lo := p_from AT TIME ZONE d.timezone;
    hi := p_to AT TIME ZONE d.timezone;
    IF dagq.date_problem('from', lo) IS NOT NULL OR dagq.date_problem('to', hi) IS NOT NULL THEN
        RAISE EXCEPTION 'dagq.backfill: %', COALESCE(dagq.date_problem('from', lo), dagq.date_problem('to', hi))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT (row_number() OVER (ORDER BY CASE WHEN p_reverse THEN -extract(epoch FROM i.data_interval_start)
                                             ELSE extract(epoch FROM i.data_interval_start) END))::int,
           i.data_interval_start, i.data_interval_end, x.run_id, x.state,
           CASE WHEN i.data_interval_end > clock_timestamp() THEN 'skip'
                WHEN x.run_id IS NULL THEN 'new'
                WHEN x.state IN ('queued', 'running') THEN 'skip'
                WHEN p_reprocess = 'all' THEN 'rerun_all'
                WHEN p_reprocess = 'failed' AND x.state = 'failed' THEN 'rerun_failed'
                ELSE 'skip' END,
           CASE WHEN i.data_interval_end > clock_timestamp() THEN 'the interval has not ended (the schedule runs it)'
                WHEN x.run_id IS NULL THEN NULL
                WHEN x.state IN ('queued', 'running') THEN format('run %s is %s', x.run_id, x.state)
                WHEN p_reprocess = 'all' THEN format('run %s (%s) is cleared and run again', x.run_id, x.state)
                WHEN p_reprocess = 'failed' AND x.state = 'failed'
                THEN format('run %s failed: its failed tasks run again', x.run_id)
                ELSE format('run %s ended %s', x.run_id, x.state) END
      FROM dagq.schedule_intervals(d.schedule, d.timezone, dagq.schedule_anchor(d.start_date, d.created_at),
                                   lo, hi) i
      LEFT JOIN LATERAL (SELECT r.run_id, r.state FROM dagq.dag_run r
                          WHERE r.dag_id = p_dag_id AND r.logical_date = i.data_interval_start
                          ORDER BY r.run_id DESC LIMIT 1) x ON true
     ORDER BY 1;
END;
$$;

CREATE FUNCTION dagq.backfill(p_dag_id text, p_from timestamp, p_to timestamp,
                              p_reprocess text DEFAULT 'none', p_reverse boolean DEFAULT false,
                              p_max_active_runs int DEFAULT NULL, p_conf jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    v_tz text;
    id bigint;
    err text;
    n int;
BEGIN
    PERFORM dagq.require_operate(p_dag_id, 'dagq.backfill');
    IF NOT EXISTS (SELECT 1 FROM dagq.dag WHERE dag_id = p_dag_id) THEN
        RAISE EXCEPTION 'dagq.backfill: unknown DAG "%"', p_dag_id USING ERRCODE = 'no_data_found';
    END IF;
    IF p_reprocess IS NULL OR p_reprocess NOT IN ('none', 'failed', 'all') THEN
        RAISE EXCEPTION 'dagq.backfill: reprocess must be none, failed or all, got %', COALESCE(p_reprocess, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_from IS NULL OR p_to IS NULL OR p_from > p_to THEN
        RAISE EXCEPTION 'dagq.backfill: from (%) must not be after to (%)', p_from, p_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_max_active_runs IS NOT NULL AND (p_max_active_runs < 1 OR p_max_active_runs > 10000) THEN
        RAISE EXCEPTION 'dagq.backfill: max_active_runs must be from 1 to 10000, got %', p_max_active_runs
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    err := dagq.json_problem('conf', COALESCE(p_conf, '{}'));
    IF err IS NOT NULL THEN
        RAISE EXCEPTION 'dagq.backfill: %', err USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- one backfill of a DAG decides at a time, seeing the runs of the one before
    PERFORM pg_advisory_xact_lock(1684107633, hashtext('backfill:' || p_dag_id));
    SELECT timezone INTO v_tz FROM dagq.dag WHERE dag_id = p_dag_id;
    INSERT INTO dagq.backfill (dag_id, from_date, to_date, reprocess, reverse, max_active_runs,
                               conf, created_by)
    VALUES (p_dag_id, p_from AT TIME ZONE COALESCE(v_tz, 'UTC'), p_to AT TIME ZONE COALESCE(v_tz, 'UTC'),
            COALESCE(p_reprocess, 'none'), COALESCE(p_reverse, false), p_max_active_runs,
            COALESCE(p_conf, '{}'), dagq.caller())
    RETURNING backfill_id INTO id;
    INSERT INTO dagq.backfill_run (backfill_id, seq, logical_date, data_interval_end, action, run_id, note)
    SELECT id, p.seq, p.logical_date, p.data_interval_end, p.action, p.run_id, p.note
      FROM dagq.backfill_plan(p_dag_id, p_from, p_to, p_reprocess, p_reverse) p;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 100000 THEN
        RAISE EXCEPTION 'dagq.backfill: % intervals of DAG "%" lie in the range, more than the 100000 one backfill may hold',
            n, p_dag_id USING ERRCODE = 'invalid_parameter_value', HINT = 'backfill a shorter range at a time';
    END IF;
    -- the new runs, oldest first whatever the order (so that backfills
    -- inserting at once never wait on each other in a circle)
    WITH ins AS (
        INSERT INTO dagq.dag_run (dag_id, run_type, logical_date, data_interval_start,
                                  data_interval_end, conf, backfill_id)
        SELECT p_dag_id, 'backfill', e.logical_date, e.logical_date, e.data_interval_end,
               COALESCE(p_conf, '{}'), id
          FROM dagq.backfill_run e
         WHERE e.backfill_id = id AND e.action = 'new'
         ORDER BY e.logical_date
        ON CONFLICT (dag_id, logical_date) WHERE run_type IN ('scheduled', 'backfill', 'triggered')
        DO NOTHING
        RETURNING run_id, logical_date
    )
    UPDATE dagq.backfill_run e SET run_id = ins.run_id
      FROM ins
     WHERE e.backfill_id = id AND e.logical_date = ins.logical_date AND e.action = 'new';
    -- an interval whose run appeared meanwhile (the scheduler's) is left to it
    UPDATE dagq.backfill_run e
       SET action = 'skip', run_id = x.run_id,
           note = format('run %s was created meanwhile', x.run_id)
      FROM dagq.dag_run x
     WHERE e.backfill_id = id AND e.action = 'new' AND e.run_id IS NULL
       AND x.dag_id = p_dag_id AND x.logical_date = e.logical_date
       AND x.run_type IN ('scheduled', 'backfill', 'triggered');
    IF NOT EXISTS (SELECT 1 FROM dagq.backfill_run e WHERE e.backfill_id = id AND e.action <> 'skip') THEN
        UPDATE dagq.backfill SET state = 'done', ended_at = clock_timestamp(),
                                 note = 'nothing to run: every interval was left alone'
         WHERE backfill_id = id;
    END IF;
    PERFORM pg_notify('dagq', 'backfill');
    RETURN id;
END;
$$;

-- Cancels a running backfill: the runs it created that have not started
-- are deleted, the reruns it has not done are not done; its running runs
-- go on (dagq.stop ends them). Returns how many runs were deleted.
CREATE FUNCTION dagq.backfill_cancel(p_backfill_id bigint) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    b dagq.backfill;
    n int;
BEGIN
    SELECT * INTO b FROM dagq.backfill WHERE backfill_id = p_backfill_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.backfill_cancel: unknown backfill %', p_backfill_id USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM dagq.require_operate(b.dag_id, 'dagq.backfill_cancel');
    SELECT * INTO b FROM dagq.backfill WHERE backfill_id = p_backfill_id FOR UPDATE;
    IF b.state <> 'running' THEN
        RAISE EXCEPTION 'dagq.backfill_cancel: backfill % is % already', p_backfill_id, b.state
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE dagq.backfill_run e SET note = 'canceled by ' || dagq.caller() || ' before it started'
     WHERE e.backfill_id = p_backfill_id AND e.started_at IS NULL AND e.action <> 'skip';
    DELETE FROM dagq.dag_run r
     WHERE r.backfill_id = p_backfill_id AND r.run_type = 'backfill' AND r.state = 'queued';
    GET DIAGNOSTICS n = ROW_COUNT;
    -- a run of another kind it had queued to start again is the DAG's own again
    UPDATE dagq.dag_run SET backfill_id = NULL
     WHERE backfill_id = p_backfill_id AND state = 'queued';
    UPDATE dagq.backfill SET state = 'canceled', ended_at = clock_timestamp(),
                             note = 'canceled by ' || dagq.caller()
     WHERE backfill_id = p_backfill_id;
    PERFORM dagq.emit('backfill_canceled', b.dag_id, p_note => format('backfill %s canceled by %s', p_backfill_id, dagq.caller()));
    RETURN n;
END;
$$;

------------------------------------------------------------------------------
-- For the scheduler
------------------------------------------------------------------------------

-- A backfill's rerun, when its turn comes: its run is cleared (the failed
-- and upstream_failed task instances, or all) and runs again, now one of
-- the backfill's. A run that is queued or running, or (rerun_failed) no
-- longer failed, is left alone. Returns false when the run's row is held
-- elsewhere (a later pass tries again).
CREATE FUNCTION dagq.backfill_rerun(p_backfill_id bigint, p_seq int) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    e dagq.backfill_run;
    st text;
    n int := 0;
    t record;
BEGIN
    SELECT * INTO e FROM dagq.backfill_run WHERE backfill_id = p_backfill_id AND seq = p_seq;
    SELECT r.state INTO st FROM dagq.dag_run r WHERE r.run_id = e.run_id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        IF NOT EXISTS (SELECT 1 FROM dagq.dag_run r WHERE r.run_id = e.run_id) THEN
            UPDATE dagq.backfill_run SET started_at = clock_timestamp(), note = 'its run was deleted'
             WHERE backfill_id = p_backfill_id AND seq = p_seq;
            RETURN true;
        END IF;
        RETURN false;
    END IF;
    IF st IN ('queued', 'running') OR (e.action = 'rerun_failed' AND st <> 'failed') THEN
        UPDATE dagq.backfill_run
           SET started_at = clock_timestamp(), note = format('left alone: run %s was %s when its turn came', e.run_id, st)
         WHERE backfill_id = p_backfill_id AND seq = p_seq;
        RETURN true;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dagq.task_instance x WHERE x.run_id = e.run_id) THEN
        -- it never started: it starts now, as a new run of the backfill
        UPDATE dagq.dag_run SET state = 'queued', ended_at = NULL, note = NULL, backfill_id = p_backfill_id
         WHERE run_id = e.run_id;
        UPDATE dagq.backfill_run SET action = 'new' WHERE backfill_id = p_backfill_id AND seq = p_seq;
        RETURN true;
    END IF;
    IF e.action = 'rerun_all' THEN
        n := dagq.clear_unchecked(e.run_id, NULL, false);
    ELSE
        FOR t IN SELECT x.task_id FROM dagq.task_instance x
                  WHERE x.run_id = e.run_id AND x.state IN ('failed', 'upstream_failed')
                  ORDER BY x.ti_id LOOP
            n := n + dagq.clear_unchecked(e.run_id, t.task_id, false);
        END LOOP;
    END IF;
    UPDATE dagq.dag_run SET backfill_id = p_backfill_id WHERE run_id = e.run_id;
    UPDATE dagq.backfill_run
       SET started_at = clock_timestamp(),
           note = format('run %s (%s) runs again: %s task instance(s) cleared', e.run_id, st, n)
     WHERE backfill_id = p_backfill_id AND seq = p_seq;
    RETURN true;
END;
$$;

-- The runs a pass may start, at most p_limit: per DAG (unpaused, not
-- parked) while its max_active_runs allows, first its queued scheduled,
-- manual and triggered runs (oldest first), then its backfills' next
-- entries in their order, each backfill within its own max_active_runs,
-- several backfills of one DAG taking turns. Backfill reruns among them are
-- done here (their runs run again at once); the runs to start are returned
-- for the caller to start (dagq.start_run) and render.
CREATE FUNCTION dagq.runs_to_start(p_limit int)
RETURNS TABLE (run_id bigint, dag_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c record;
BEGIN
    FOR c IN
        WITH normal AS (
            SELECT r.run_id, r.dag_id, r.logical_date, NULL::bigint AS backfill_id, NULL::int AS seq,
                   'run'::text AS action, 0 AS cls,
                   row_number() OVER (PARTITION BY r.dag_id ORDER BY r.logical_date, r.run_id) AS rk
              FROM dagq.dag_run r
             WHERE r.state = 'queued' AND r.backfill_id IS NULL
        ), bf AS (
            SELECT b.backfill_id, b.dag_id,
                   COALESCE(b.max_active_runs, d.max_active_runs)
                   - (SELECT count(*) FROM dagq.dag_run x
                       WHERE x.backfill_id = b.backfill_id AND x.state = 'running') AS free
              FROM dagq.backfill b
              JOIN dagq.dag d ON d.dag_id = b.dag_id
             WHERE b.state = 'running'
        ), ent AS (
            SELECT e.run_id, bf.dag_id, e.logical_date, bf.backfill_id, e.seq, e.action, 1 AS cls,
                   row_number() OVER (PARTITION BY bf.backfill_id ORDER BY e.seq) AS rk
              FROM bf
             CROSS JOIN LATERAL (
                   SELECT x.* FROM dagq.backfill_run x
                    WHERE x.backfill_id = bf.backfill_id AND x.started_at IS NULL AND x.action <> 'skip'
                      AND (x.action <> 'new'
                           OR EXISTS (SELECT 1 FROM dagq.dag_run q
                                       WHERE q.run_id = x.run_id AND q.state = 'queued'))
                    ORDER BY x.seq
                    LIMIT greatest(bf.free, 0)) e
        ), cand AS (
            SELECT * FROM normal UNION ALL SELECT * FROM ent
        ), ranked AS (
            SELECT cand.*,
                   row_number() OVER (PARTITION BY cand.dag_id
                                      ORDER BY cand.cls, cand.rk, cand.backfill_id) AS drk,
                   d.max_active_runs - (SELECT count(*) FROM dagq.dag_run x
                                         WHERE x.dag_id = cand.dag_id AND x.state = 'running') AS dfree
              FROM cand
              JOIN dagq.dag d ON d.dag_id = cand.dag_id
             WHERE NOT d.is_paused AND d.parked_reason IS NULL
        )
        SELECT * FROM ranked WHERE ranked.drk <= ranked.dfree
         ORDER BY ranked.drk, ranked.logical_date, ranked.run_id
         LIMIT p_limit
    LOOP
        IF c.action IN ('rerun_failed', 'rerun_all') THEN
            PERFORM dagq.backfill_rerun(c.backfill_id, c.seq);
            CONTINUE;
        END IF;
        run_id := c.run_id;
        dag_id := c.dag_id;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Backfills whose every run has ended are done (a backfill_done event).
-- Returns them, for the log.
CREATE FUNCTION dagq.finish_backfills()
RETURNS TABLE (backfill_id bigint, dag_id text, note text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    b record;
    why text;
BEGIN
    FOR b IN SELECT x.backfill_id, x.dag_id FROM dagq.backfill x WHERE x.state = 'running'
              ORDER BY x.backfill_id FOR UPDATE SKIP LOCKED LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM dagq.backfill_run e
                               WHERE e.backfill_id = b.backfill_id AND e.started_at IS NULL
                                 AND e.action <> 'skip'
                                 AND (e.action <> 'new'
                                      OR EXISTS (SELECT 1 FROM dagq.dag_run q
                                                  WHERE q.run_id = e.run_id AND q.state = 'queued')))
                   OR EXISTS (SELECT 1 FROM dagq.dag_run r
                               WHERE r.backfill_id = b.backfill_id AND r.state IN ('queued', 'running'));
        SELECT format('%s run(s): %s succeeded, %s failed, %s left alone',
                      count(*) FILTER (WHERE e.action <> 'skip'),
                      count(*) FILTER (WHERE e.action <> 'skip' AND r.state = 'success'),
                      count(*) FILTER (WHERE e.action <> 'skip' AND r.state = 'failed'),
                      count(*) FILTER (WHERE e.action = 'skip'))
          INTO why
          FROM dagq.backfill_run e LEFT JOIN dagq.dag_run r ON r.run_id = e.run_id
         WHERE e.backfill_id = b.backfill_id;
        UPDATE dagq.backfill SET state = 'done', ended_at = clock_timestamp(), note = why
         WHERE backfill_id = b.backfill_id;
        PERFORM dagq.emit('backfill_done', b.dag_id, p_state => 'done', p_note => format('backfill %s: %s', b.backfill_id, why));
        backfill_id := b.backfill_id;
        dag_id := b.dag_id;
        note := why;
        RETURN NEXT;
    END LOOP;
END;
$$;

------------------------------------------------------------------------------
-- Progress
------------------------------------------------------------------------------

CREATE VIEW dagq.backfill_progress AS
SELECT b.backfill_id, b.dag_id, b.from_date, b.to_date, b.reprocess, b.reverse,
       COALESCE(b.max_active_runs, d.max_active_runs) AS max_active_runs, b.state,
       count(e.seq) FILTER (WHERE e.action <> 'skip') AS runs,
       count(e.seq) FILTER (WHERE e.action <> 'skip' AND e.started_at IS NULL
                            AND (e.action <> 'new' OR r.state = 'queued')) AS waiting,
       count(e.seq) FILTER (WHERE e.action <> 'skip' AND e.started_at IS NOT NULL
                            AND r.state = 'running') AS running,
       count(e.seq) FILTER (WHERE e.action <> 'skip' AND e.started_at IS NOT NULL
                            AND r.state = 'success') AS succeeded,
       count(e.seq) FILTER (WHERE e.action <> 'skip' AND e.started_at IS NOT NULL
                            AND r.state = 'failed') AS failed,
       count(e.seq) FILTER (WHERE e.action = 'skip') AS left_alone,
       b.created_by, b.created_at, b.ended_at, b.note
  FROM dagq.backfill b
  LEFT JOIN dagq.dag d ON d.dag_id = b.dag_id
  LEFT JOIN dagq.backfill_run e ON e.backfill_id = b.backfill_id
  LEFT JOIN dagq.dag_run r ON r.run_id = e.run_id
 GROUP BY b.backfill_id, d.max_active_runs;

COMMENT ON VIEW dagq.backfill_progress IS
    'Each backfill with its progress: runs to run, waiting for a slot, running, succeeded, failed, intervals left alone.';
