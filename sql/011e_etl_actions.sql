-- dagq metastore, migration 011 (ETL features, 5 of 7): acting on a run.
--
-- dagq.stop(run [, task]): the run's unfinished task instances (or the
-- task's) end failed with the note "stopped by <role>", without retry;
-- those not started yet do not start ("... before it started"); a stopped
-- whole run ends failed at once. A running try is stopped by its worker,
-- which asks the metastore every half second which of its tries it still
-- holds (dagq.worker_lost_tries: a primary-key lookup per running try, no
-- LISTEN, so it works through a transaction-pooling PgBouncer), then sends
-- TERM to the try's process group, and KILL 5 s later.
--
-- dagq.mark(run, task, success|failed [, downstream]): sets a task
-- instance (and with downstream, every task instance downstream of it) to
-- that state as a user's decision: the note says "marked <state> by
-- <role>", ended_at says when, a task_marked event records it. A try still
-- running is stopped as dagq.stop does. A marked end is an end like any
-- other: its downstreams are told through end_pending, after an earlier
-- end already counted in their counters is taken back (as dagq.clear
-- does), so the counters invariant of 008 holds. Downstream task instances
-- that trigger rules had decided without running them (upstream_failed,
-- skipped) are cleared, so they follow the new state at once; an ended run
-- runs again and ends by the new states.
--
-- dag.dagrun_timeout: a running run past its deadline is stopped as
-- dagq.stop does it (its running tries stopped, the rest not started), with
-- the note "run timed out after <timeout> (dagrun_timeout)" on the run and
-- every task instance it ended, and run_timed_out and run_failed events.

-- Ends the unfinished task instances of a run (of one task, or all):
-- failed, with p_note; running ones get their try closed with the same
-- note. Rows are taken in ti_id order; with p_skip_locked, a row someone
-- else holds makes it change nothing and return -1 (the caller tries
-- again later). Writes task_failed for those that had a try queued,
-- running or waiting for a retry. Returns how many ended.
CREATE FUNCTION dagq.stop_task_instances(p_run_id bigint, p_task_id text, p_note text,
                                         p_skip_locked boolean)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    got int;
    n int;
    t record;
BEGIN
    SELECT array_agg(x.ti_id ORDER BY x.ti_id) INTO ids FROM dagq.task_instance x
     WHERE x.run_id = p_run_id AND (p_task_id IS NULL OR x.task_id = p_task_id)
       AND x.state IN ('scheduled', 'queued', 'running', 'up_for_retry');
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    IF p_skip_locked THEN
        SELECT count(*) INTO got
          FROM (SELECT 1 FROM dagq.task_instance x WHERE x.ti_id = ANY (ids)
                 ORDER BY x.ti_id FOR UPDATE SKIP LOCKED) s;
        IF got < cardinality(ids) THEN
            RETURN -1;
        END IF;
    ELSE
        PERFORM 1 FROM dagq.task_instance x WHERE x.ti_id = ANY (ids) ORDER BY x.ti_id FOR UPDATE;
    END IF;
    -- with the rows held (a new snapshot): those still unfinished
    FOR t IN SELECT x.ti_id, x.dag_id, x.task_id, x.try_number, x.state FROM dagq.task_instance x
              WHERE x.ti_id = ANY (ids) AND x.state IN ('queued', 'running', 'up_for_retry')
              ORDER BY x.ti_id LOOP
        PERFORM dagq.emit('task_failed', t.dag_id, p_run_id, t.task_id, t.ti_id, t.try_number,
                          'failed', CASE t.state WHEN 'up_for_retry' THEN p_note || '; no retry'
                                                 ELSE p_note END);
    END LOOP;
    UPDATE dagq.task_try y SET state = 'failed', ended_at = clock_timestamp(), note = p_note
      FROM dagq.task_instance x
     WHERE x.ti_id = ANY (ids) AND x.state = 'running'
       AND y.ti_id = x.ti_id AND y.try_number = x.try_number AND y.state = 'running';
    UPDATE dagq.task_instance x
       SET state = 'failed', ended_at = clock_timestamp(), next_retry_at = NULL,
           note = CASE x.state WHEN 'scheduled' THEN p_note || ' before it started'
                               WHEN 'up_for_retry' THEN p_note || '; no retry'
                               ELSE p_note END,
           end_pending = x.n_downstream > 0
     WHERE x.ti_id = ANY (ids) AND x.state IN ('scheduled', 'queued', 'running', 'up_for_retry');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- A queued or running run ends failed now, with p_note (its task
-- instances have ended: dagq.stop_task_instances). The caller holds the
-- run's row. Returns whether it ended.
CREATE FUNCTION dagq.end_run_failed(p_run_id bigint, p_note text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_dag text;
BEGIN
    UPDATE dagq.dag_run SET state = 'failed', ended_at = clock_timestamp(), note = p_note
     WHERE run_id = p_run_id AND state IN ('queued', 'running')
    RETURNING dag_id INTO v_dag;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- a backfill's run that never started is done with as well
    UPDATE dagq.backfill_run SET started_at = clock_timestamp(), note = p_note || ' before it started'
     WHERE run_id = p_run_id AND started_at IS NULL;
    PERFORM dagq.emit('run_failed', v_dag, p_run_id, p_state => 'failed', p_note => p_note);
    PERFORM pg_notify('dagq', p_run_id::text);
    RETURN true;
END;
$$;

------------------------------------------------------------------------------
-- For operators
------------------------------------------------------------------------------

-- Stops a run (p_task_id NULL) or one task of it. Returns how many task
-- instances it ended.
CREATE FUNCTION dagq.stop(p_run_id bigint, p_task_id text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    v_dag text;
    v_state text;
    why text := 'stopped by ' || dagq.caller();
    n int;
BEGIN
    SELECT dag_id INTO v_dag FROM dagq.dag_run WHERE run_id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.stop: unknown run %', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM dagq.require_operate(v_dag, 'dagq.stop');
    SELECT state INTO v_state FROM dagq.dag_run WHERE run_id = p_run_id FOR UPDATE;
    IF p_task_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM dagq.task_instance WHERE run_id = p_run_id AND task_id = p_task_id) THEN
        RAISE EXCEPTION 'dagq.stop: run % has no task "%"%', p_run_id, p_task_id,
            CASE WHEN v_state = 'queued' THEN ' (the run is queued: stop the whole run)' ELSE '' END
            USING ERRCODE = 'no_data_found';
    END IF;
    n := dagq.stop_task_instances(p_run_id, p_task_id, why, false);
    IF p_task_id IS NULL THEN
        PERFORM dagq.end_run_failed(p_run_id, why);
    END IF;
    PERFORM pg_notify('dagq', p_run_id::text);
    RETURN n;
END;
$$;

-- Sets task p_task_id of run p_run_id (with p_downstream, every task
-- instance downstream of it too) to p_state, 'success' or 'failed', as a
-- user's decision. Returns how many task instances changed state.
CREATE FUNCTION dagq.mark(p_run_id bigint, p_task_id text, p_state text,
                          p_downstream boolean DEFAULT false)
RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    v_dag text;
    v_state text;
    why text;
    targets bigint[];
    changed bigint[];
    t record;
BEGIN
    SELECT dag_id INTO v_dag FROM dagq.dag_run WHERE run_id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.mark: unknown run %', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM dagq.require_operate(v_dag, 'dagq.mark');
    IF p_state IS NULL OR p_state NOT IN ('success', 'failed') THEN
        RAISE EXCEPTION 'dagq.mark: the state must be success or failed, got %', COALESCE(p_state, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT state INTO v_state FROM dagq.dag_run WHERE run_id = p_run_id FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM dagq.task_instance WHERE run_id = p_run_id AND task_id = p_task_id) THEN
        RAISE EXCEPTION 'dagq.mark: run % has no task "%"%', p_run_id, p_task_id,
            CASE WHEN v_state = 'queued' THEN ' (the run is queued: its task instances are created when it starts)'
                 ELSE '' END
            USING ERRCODE = 'no_data_found';
    END IF;
    why := format('marked %s by %s', p_state, dagq.caller());
    WITH RECURSIVE d(ti_id) AS (
        SELECT ti.ti_id FROM dagq.task_instance ti WHERE ti.run_id = p_run_id AND ti.task_id = p_task_id
        UNION
        SELECT e.ti_id FROM dagq.task_instance_dependency e JOIN d ON e.upstream_ti_id = d.ti_id
         WHERE p_downstream
    )
    SELECT array_agg(d.ti_id) INTO targets FROM d;
    -- the targets and their direct downstreams (whose counters change), in ti_id order
    PERFORM 1 FROM dagq.task_instance x
     WHERE x.ti_id = ANY (targets)
        OR x.ti_id IN (SELECT e.ti_id FROM dagq.task_instance_dependency e
                        WHERE e.upstream_ti_id = ANY (targets))
     ORDER BY x.ti_id
       FOR UPDATE;
    SELECT array_agg(x.ti_id) INTO changed FROM dagq.task_instance x
     WHERE x.ti_id = ANY (targets) AND x.state <> p_state;
    IF changed IS NULL THEN
        RETURN 0;
    END IF;
    -- ends already counted downstream are taken back; the new ones are told
    -- through end_pending, as any end
    UPDATE dagq.task_instance d
       SET up_success = d.up_success - x.ok, up_failed = d.up_failed - x.bad,
           up_skipped = d.up_skipped - x.skip
      FROM (SELECT e.ti_id,
                   count(*) FILTER (WHERE u.state = 'success') AS ok,
                   count(*) FILTER (WHERE u.state IN ('failed', 'upstream_failed')) AS bad,
                   count(*) FILTER (WHERE u.state = 'skipped') AS skip
              FROM dagq.task_instance u
              JOIN dagq.task_instance_dependency e ON e.upstream_ti_id = u.ti_id
             WHERE u.ti_id = ANY (changed) AND NOT u.end_pending
               AND u.state IN ('success', 'failed', 'upstream_failed', 'skipped')
             GROUP BY e.ti_id) x
     WHERE d.ti_id = x.ti_id;
    UPDATE dagq.task_try y SET state = 'failed', ended_at = clock_timestamp(), note = 'stopped: ' || why
      FROM dagq.task_instance x
     WHERE x.ti_id = ANY (changed) AND x.state = 'running'
       AND y.ti_id = x.ti_id AND y.try_number = x.try_number AND y.state = 'running';
    UPDATE dagq.task_instance x
       SET state = p_state, ended_at = clock_timestamp(), next_retry_at = NULL, note = why,
           end_pending = x.n_downstream > 0
     WHERE x.ti_id = ANY (changed);
    FOR t IN SELECT x.ti_id, x.task_id, x.try_number FROM dagq.task_instance x
              WHERE x.ti_id = ANY (changed) ORDER BY x.ti_id LOOP
        PERFORM dagq.emit('task_marked', v_dag, p_run_id, t.task_id, t.ti_id, t.try_number, p_state, why);
    END LOOP;
    -- what trigger rules decided downstream without running it follows the
    -- new state: cleared, its counters read again
    FOR t IN WITH RECURSIVE f(ti_id) AS (
                 SELECT x.ti_id FROM dagq.task_instance_dependency e
                   JOIN dagq.task_instance x ON x.ti_id = e.ti_id
                  WHERE e.upstream_ti_id = ANY (changed)
                    AND x.state IN ('upstream_failed', 'skipped') AND x.started_at IS NULL
                    AND NOT (x.ti_id = ANY (targets))
                 UNION
                 SELECT x.ti_id FROM f
                   JOIN dagq.task_instance_dependency e ON e.upstream_ti_id = f.ti_id
                   JOIN dagq.task_instance x ON x.ti_id = e.ti_id
                  WHERE x.state IN ('upstream_failed', 'skipped') AND x.started_at IS NULL
                    AND NOT (x.ti_id = ANY (targets)))
             SELECT x.task_id FROM f JOIN dagq.task_instance x ON x.ti_id = f.ti_id
              ORDER BY x.ti_id LOOP
        PERFORM dagq.clear_unchecked(p_run_id, t.task_id, false);
    END LOOP;
    PERFORM dagq.revive_run(p_run_id);
    PERFORM pg_notify('dagq', p_run_id::text);
    RETURN cardinality(changed);
END;
$$;

------------------------------------------------------------------------------
-- For the scheduler
------------------------------------------------------------------------------

-- Running runs past their deadline fail, as dagq.stop would end them. A
-- run one of whose rows someone else holds waits for a later pass.
-- Returns the runs ended, for the log.
CREATE FUNCTION dagq.time_out_runs()
RETURNS TABLE (run_id bigint, dag_id text, note text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r record;
    why text;
BEGIN
    FOR r IN SELECT x.run_id, x.dag_id, x.dagrun_timeout FROM dagq.dag_run x
              WHERE x.state = 'running' AND x.deadline <= clock_timestamp()
              ORDER BY x.run_id
                FOR UPDATE SKIP LOCKED LOOP
        why := format('run timed out after %s (dagrun_timeout)', dagq.duration_text(r.dagrun_timeout));
        CONTINUE WHEN dagq.stop_task_instances(r.run_id, NULL, why, true) < 0;
        PERFORM dagq.emit('run_timed_out', r.dag_id, r.run_id, p_state => 'failed', p_note => why);
        PERFORM dagq.end_run_failed(r.run_id, why);
        run_id := r.run_id;
        dag_id := r.dag_id;
        note := why;
        RETURN NEXT;
    END LOOP;
END;
$$;

------------------------------------------------------------------------------
-- For workers
------------------------------------------------------------------------------

-- Of the tries a worker incarnation runs (p_ti[i] at try p_try[i]), those
-- the metastore no longer gives it (stopped, marked, a zombie verdict, a
-- cleared and requeued task instance), with the state and note that say
-- why. A primary-key lookup per try: the worker asks twice a second.
CREATE FUNCTION dagq.worker_lost_tries(p_worker text, p_incarnation uuid, p_ti bigint[], p_try int[])
RETURNS TABLE (ti_id bigint, try_number int, state text, note text)
LANGUAGE sql STABLE AS $$
    SELECT u.ti, u.try, t.state, t.note
      FROM unnest(p_ti, p_try) AS u(ti, try)
      LEFT JOIN dagq.task_instance t ON t.ti_id = u.ti
     WHERE t.ti_id IS NULL
        OR NOT (t.state = 'running' AND t.try_number = u.try AND t.worker_id = p_worker
                AND t.incarnation = p_incarnation)
$$;

-- As in 009; a try that was taken away (stopped, marked, a zombie verdict)
-- still leaves its output: the result is discarded, its log is kept.
CREATE OR REPLACE FUNCTION dagq.finish_try(p_ti_id bigint, p_try int, p_worker text, p_incarnation uuid,
                                           p_ok boolean, p_exit_code int, p_retry_in_s double precision,
                                           p_note text, p_output text, p_truncated bigint)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    fin dagq.task_instance;
BEGIN
    IF NOT dagq.fence_try(p_ti_id, p_try, 'running', p_worker, p_incarnation) THEN
        INSERT INTO dagq.task_log (ti_id, try_number, output, truncated_bytes)
        SELECT p_ti_id, p_try, COALESCE(p_output, ''), COALESCE(p_truncated, 0)
         WHERE EXISTS (SELECT 1 FROM dagq.task_try y
                        WHERE y.ti_id = p_ti_id AND y.try_number = p_try AND y.worker_id = p_worker
                          AND y.incarnation = p_incarnation AND y.state <> 'running')
        ON CONFLICT ON CONSTRAINT task_log_pkey DO NOTHING;
        RETURN NULL;
    END IF;
    UPDATE dagq.task_instance t
       SET state = CASE WHEN p_ok THEN 'success'
                        WHEN t.try_number < t.max_tries THEN 'up_for_retry'
                        ELSE 'failed' END,
           ended_at = clock_timestamp(), exit_code = p_exit_code, note = p_note,
           next_retry_at = CASE WHEN NOT p_ok AND t.try_number < t.max_tries
                                THEN dagq.retry_at(p_retry_in_s) END,
           end_pending = (p_ok OR t.try_number >= t.max_tries) AND t.n_downstream > 0
     WHERE t.ti_id = p_ti_id
    RETURNING * INTO fin;
    UPDATE dagq.task_try
       SET state = fin.state, ended_at = clock_timestamp(), exit_code = p_exit_code, note = p_note
     WHERE ti_id = p_ti_id AND try_number = p_try;
    INSERT INTO dagq.task_log (ti_id, try_number, output, truncated_bytes)
    VALUES (p_ti_id, p_try, COALESCE(p_output, ''), COALESCE(p_truncated, 0))
    ON CONFLICT ON CONSTRAINT task_log_pkey DO UPDATE
        SET output = EXCLUDED.output, truncated_bytes = EXCLUDED.truncated_bytes,
            created_at = clock_timestamp();
    IF fin.state = 'failed' THEN
        PERFORM dagq.emit('task_failed', fin.dag_id, fin.run_id, fin.task_id, fin.ti_id,
                          fin.try_number, fin.state, p_note);
    ELSIF fin.state = 'up_for_retry' THEN
        PERFORM dagq.emit('task_retry', fin.dag_id, fin.run_id, fin.task_id, fin.ti_id,
                          fin.try_number, fin.state, p_note);
    END IF;
    -- Wake the schedulers when this end can make work (see 009).
    IF fin.state <> 'success' OR fin.pool IS NOT NULL OR fin.n_downstream > 0
       OR EXISTS (SELECT 1 FROM dagq.dag_run r
                    JOIN dagq.task_instance x ON x.run_id = r.run_id
                   WHERE r.dag_id = fin.dag_id AND r.state = 'running' AND x.state = 'scheduled'
                     AND dagq.rule_verdict(x.trigger_rule, x.up_total, x.up_success, x.up_failed,
                                           x.up_skipped) IS NOT NULL)
       OR NOT EXISTS (SELECT 1 FROM dagq.task_instance x
                       WHERE x.run_id = fin.run_id AND x.state IN ('scheduled', 'queued', 'up_for_retry')) THEN
        PERFORM pg_notify('dagq', fin.run_id::text);
    END IF;
    RETURN fin.state;
END;
$$;
