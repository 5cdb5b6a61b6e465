-- dagq metastore, migration 011 (ETL features, 4 of 7): DAG triggers, and
-- 008's functions with the waits of 011c in their counters.
--
-- propagate_ends starts a waiting task's execution_timeout when its in-run
-- upstreams are done; settle_trigger_rules keeps the note a wait gave;
-- clear_unchecked decides a cleared task instance's waits again and gives
-- a revived run its whole dagrun_timeout; finish_runs fires the DAG
-- triggers a success completes (011c describes them). Each restates
-- SECURITY DEFINER and its search_path where 010 gave it one.

------------------------------------------------------------------------------
-- DAG triggers
------------------------------------------------------------------------------

-- After run p_run_id succeeded (in the same transaction): the DAGs it
-- triggers whose every trigger upstream now has a successful run for its
-- data interval get their run for that interval. Returns how many runs
-- were created.
CREATE FUNCTION dagq.fire_dag_triggers(p_run_id bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    r dagq.dag_run;
    d record;
    why text;
    rid bigint;
    n int := 0;
BEGIN
    SELECT * INTO r FROM dagq.dag_run WHERE run_id = p_run_id AND state = 'success';
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    FOR d IN SELECT t.dag_id FROM dagq.dag_trigger t WHERE t.upstream_dag_id = r.dag_id
              ORDER BY t.dag_id LOOP
        -- one decision at a time per triggered DAG, each seeing the ends
        -- committed before it
        PERFORM pg_advisory_xact_lock(1684107633, hashtext(d.dag_id));
        SELECT string_agg(format('%s run %s', t.upstream_dag_id, x.run_id), ', ' ORDER BY t.upstream_dag_id)
          INTO why
          FROM dagq.dag_trigger t
          LEFT JOIN LATERAL (SELECT y.run_id FROM dagq.dag_run y
                              WHERE y.dag_id = t.upstream_dag_id AND y.state = 'success'
                                AND y.data_interval_start = r.data_interval_start
                                AND y.data_interval_end = r.data_interval_end
                              ORDER BY y.run_id LIMIT 1) x ON true
         WHERE t.dag_id = d.dag_id
        HAVING count(*) = count(x.run_id);
        CONTINUE WHEN why IS NULL;
        INSERT INTO dagq.dag_run (dag_id, run_type, logical_date, data_interval_start,
                                  data_interval_end, note)
        VALUES (d.dag_id, 'triggered', r.data_interval_start, r.data_interval_start,
                r.data_interval_end, 'triggered by ' || why)
        ON CONFLICT (dag_id, logical_date) WHERE run_type IN ('scheduled', 'backfill', 'triggered')
        DO NOTHING
        RETURNING run_id INTO rid;
        IF rid IS NOT NULL THEN
            n := n + 1;
            PERFORM pg_notify('dagq', 'run');
        END IF;
    END LOOP;
    RETURN n;
END;
$$;

------------------------------------------------------------------------------
-- 008's functions, with the waits in their counters
------------------------------------------------------------------------------

-- As in 008; a task instance whose in-run upstreams are now all done and
-- that still waits for other DAGs starts its execution_timeout.
CREATE OR REPLACE FUNCTION dagq.propagate_ends() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
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
           up_skipped = d.up_skipped + x.skip,
           ext_deadline = CASE
               WHEN d.state = 'scheduled' AND d.up_external > d.ext_done AND d.ext_deadline IS NULL
                    AND d.up_success + x.ok + d.up_failed + x.bad + d.up_skipped + x.skip - d.ext_done
                        = d.up_total - d.up_external
               THEN clock_timestamp() + d.execution_timeout
               ELSE d.ext_deadline END
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

-- As in 008; a task instance a wait has already given a note (what it
-- waited for, and what became of it) keeps it.
CREATE OR REPLACE FUNCTION dagq.settle_trigger_rules()
RETURNS TABLE (worker_group text, state text, n bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
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
                   ended_at = clock_timestamp(),
                   note = COALESCE(t.note, 'by trigger rule ' || t.trigger_rule),
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

-- As in 008 (clear_unchecked since 010): the cleared task instances' waits
-- for other DAGs start over and are decided again from what those DAGs have
-- done by now, and a run that runs again gets its whole dagrun_timeout.
CREATE OR REPLACE FUNCTION dagq.clear_unchecked(p_run_id bigint, p_task_id text DEFAULT NULL,
                                                p_downstream boolean DEFAULT false)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
    targets bigint[];
    cleared bigint[];
    waiting bigint[];
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
       SET up_success = x.ok, up_failed = x.bad, up_skipped = x.skip, ext_done = 0,
           ext_deadline = CASE WHEN d.up_external > 0 AND x.ok + x.bad + x.skip = d.up_total - d.up_external
                               THEN clock_timestamp() + d.execution_timeout END
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
    -- and their waits for other DAGs, decided again
    SELECT array_agg(x.ti_id) INTO waiting FROM dagq.task_instance x
     WHERE x.ti_id = ANY (cleared) AND x.up_external > 0;
    IF waiting IS NOT NULL THEN
        UPDATE dagq.ti_external_wait SET state = 'waiting', upstream_run_id = NULL, decided_at = NULL
         WHERE ti_id = ANY (waiting);
        PERFORM dagq.resolve_waits(waiting);
    END IF;
    PERFORM dagq.revive_run(p_run_id);
    PERFORM pg_notify('dagq', p_run_id::text);
    RETURN n;
END;
$$;

-- As in 008; a run that succeeds fires the DAG triggers it completes.
CREATE OR REPLACE FUNCTION dagq.finish_runs()
RETURNS TABLE (run_id bigint, dag_id text, state text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
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
            PERFORM dagq.fire_dag_triggers(rec.run_id);
        END IF;
        run_id := rec.run_id;
        dag_id := rec.dag_id;
        state := v;
        RETURN NEXT;
    END LOOP;
END;
$$;

------------------------------------------------------------------------------
-- What DAGs wait on
------------------------------------------------------------------------------

CREATE VIEW dagq.dag_waits_on AS
SELECT e.dag_id, e.task_id, 'task'::text AS kind, e.upstream_dag_id, e.upstream_task_id,
       e.logical_date_offset, e.if_upstream_failed
  FROM dagq.task_external_dependency e
UNION ALL
SELECT t.dag_id, NULL, 'trigger', t.upstream_dag_id, NULL, NULL, NULL
  FROM dagq.dag_trigger t;

COMMENT ON VIEW dagq.dag_waits_on IS
    'What each DAG waits on: kind task (a task waits for another DAG''s task or run, '
    'dagq.task_external_dependency) or trigger (the DAG runs when its upstream DAGs succeeded, dagq.dag_trigger).';

CREATE VIEW dagq.external_waits AS
SELECT w.wait_id, ti.run_id, ti.dag_id, ti.task_id, ti.ti_id, ti.state AS task_state,
       w.upstream_dag_id, w.upstream_task_id, w.target AS upstream_logical_date,
       w.if_upstream_failed, w.state, w.upstream_run_id, w.decided_at,
       ti.ext_deadline AS deadline
  FROM dagq.ti_external_wait w
  JOIN dagq.task_instance ti ON ti.ti_id = w.ti_id;

COMMENT ON VIEW dagq.external_waits IS
    'Each task instance''s waits for other DAGs: the upstream and the logical date waited for, '
    'and whether it is waiting or decided (and by which run).';
