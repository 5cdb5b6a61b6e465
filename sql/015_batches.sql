-- dagq metastore, migration 015: the worker's hot path in batches.
--
-- A worker claims every message it has taken in one statement and one
-- commit (dagq.claim_tries), and writes every result ready at that moment
-- in one (dagq.finish_tries). On a durable database a commit is a WAL
-- flush, so per task that is two flushes shared by the batch instead of two
-- of its own. The fences are those of claim_try and finish_try, row by row:
-- the rows of a batch are locked in ti_id order (two workers claiming the
-- same duplicates never wait on each other in a circle) and each is then
-- judged as it is once locked, so a try still starts at most once and a
-- result written for a try taken away is discarded (its output kept).

------------------------------------------------------------------------------
-- Claims.
------------------------------------------------------------------------------

-- Claims the tries (p_ti[i], p_try[i]) for this worker incarnation: those
-- still queued at that try become running. One row per try claimed, with
-- what to run (never what the message said), as dagq.claim_try; nothing for
-- a duplicate or stale message. A try named twice is claimed once.
CREATE FUNCTION dagq.claim_tries(p_ti bigint[], p_try int[], p_worker text, p_incarnation uuid,
                                 p_host text)
RETURNS TABLE (ti_id bigint, try_number int, command text, env text[],
               execution_timeout_s double precision, dag_id text, task_id text, run_id bigint,
               logical_date text, max_tries int, retry_delay_s double precision,
               retry_exponential_backoff boolean, max_retry_delay_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp SET lock_timeout = '2s' AS $$
#variable_conflict use_column
DECLARE
    ids bigint[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dagq.worker w
                    WHERE w.worker_id = p_worker AND w.incarnation = p_incarnation) THEN
        RAISE EXCEPTION 'dagq.claim_tries: worker "%" incarnation % has not registered (heartbeat first)',
            p_worker, p_incarnation USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(p_ti) IS DISTINCT FROM cardinality(p_try) THEN
        RAISE EXCEPTION 'dagq.claim_tries: % task instances but % try numbers',
            cardinality(p_ti), cardinality(p_try) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the fence: lock by primary key, in order, then judge each row as it
    -- now is (FOR UPDATE waits for a concurrent writer and reads its result)
    SELECT array_agg(l.ti_id) INTO ids
      FROM (SELECT t.ti_id, t.try_number, t.state FROM dagq.task_instance t
             WHERE t.ti_id = ANY (p_ti)
             ORDER BY t.ti_id FOR UPDATE) l
     WHERE l.state = 'queued'
       AND EXISTS (SELECT 1 FROM unnest(p_ti, p_try) u(ti, try)
                    WHERE u.ti = l.ti_id AND u.try = l.try_number);
    IF ids IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE dagq.task_instance t
           SET state = 'running', worker_id = p_worker, incarnation = p_incarnation,
               hostname = p_host, started_at = clock_timestamp()
         WHERE t.ti_id = ANY (ids)
        RETURNING t.*
    ), tries AS (
        INSERT INTO dagq.task_try (ti_id, try_number, worker_id, incarnation, hostname, state, started_at)
        SELECT c.ti_id, c.try_number, p_worker, p_incarnation, p_host, 'running', c.started_at
          FROM claimed c
        ON CONFLICT ON CONSTRAINT task_try_pkey DO UPDATE
            SET worker_id = EXCLUDED.worker_id, incarnation = EXCLUDED.incarnation,
                hostname = EXCLUDED.hostname, state = 'running', started_at = EXCLUDED.started_at,
                ended_at = NULL, exit_code = NULL, note = NULL
    )
    SELECT c.ti_id, c.try_number, c.command,
           ARRAY(SELECT 'DAGQ_PARAM_' || upper(p.key) || '=' || COALESCE(p.value, '')
                   FROM jsonb_each_text(COALESCE(r.params, '{}')) p
                  WHERE p.key ~ '^[A-Za-z_][A-Za-z0-9_]*$' ORDER BY p.key)
           || ARRAY(SELECT e.key || '=' || e.value FROM jsonb_each_text(c.env) e ORDER BY e.key),
           extract(epoch FROM c.execution_timeout)::float8,
           c.dag_id, c.task_id, c.run_id,
           to_char(r.logical_date AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
           c.max_tries, extract(epoch FROM c.retry_delay)::float8,
           c.retry_exponential_backoff, extract(epoch FROM c.max_retry_delay)::float8
      FROM claimed c
      JOIN dagq.dag_run r ON r.run_id = c.run_id
     ORDER BY c.ti_id;
END;
$$;

------------------------------------------------------------------------------
-- Results.
------------------------------------------------------------------------------

-- Whether the end of task instance fin, a success with no downstream and no
-- pool, can still make work for the schedulers: a task of its DAG waiting
-- for a max_active_tasks slot, or its run near its end (nothing left but
-- running). Ends at the same moment cannot see each other, so each of them
-- wakes the schedulers and the last one is never missed.
CREATE FUNCTION dagq.end_wakes(p_dag text, p_run bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM dagq.dag_run r
                     JOIN dagq.task_instance x ON x.run_id = r.run_id
                    WHERE r.dag_id = p_dag AND r.state = 'running' AND x.state = 'scheduled'
                      AND dagq.rule_verdict(x.trigger_rule, x.up_total, x.up_success, x.up_failed,
                                            x.up_skipped) IS NOT NULL)
        OR NOT EXISTS (SELECT 1 FROM dagq.task_instance x
                        WHERE x.run_id = p_run AND x.state IN ('scheduled', 'queued', 'up_for_retry'))
$$;

-- Writes the ends of tries (p_ti[i], p_try[i]) of this worker incarnation,
-- as dagq.finish_try does one: p_ok[i] the command exited 0; a failed try
-- becomes up_for_retry after p_retry_in_s[i] while tries are left, else
-- failed; the output is kept per try. One row per try given: its new state,
-- or NULL when the try had been taken away (stopped, marked, a zombie
-- verdict): that result is discarded and its output kept. Writes
-- task_failed / task_retry events; wakes the schedulers once per run whose
-- ends can make work.
CREATE FUNCTION dagq.finish_tries(p_ti bigint[], p_try int[], p_worker text, p_incarnation uuid,
                                  p_ok boolean[], p_exit_code int[], p_retry_in_s double precision[],
                                  p_note text[], p_output text[], p_truncated bigint[])
RETURNS TABLE (ti_id bigint, try_number int, state text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp SET lock_timeout = '2s' AS $$
#variable_conflict use_column
DECLARE
    n int := cardinality(p_ti);
    ids bigint[];
    done bigint[];
    done_try int[];
    states text[];
    rec record;
BEGIN
    IF n IS NULL OR n = 0 THEN
        RETURN;
    END IF;
    IF cardinality(p_try) IS DISTINCT FROM n OR cardinality(p_ok) IS DISTINCT FROM n
       OR cardinality(p_exit_code) IS DISTINCT FROM n OR cardinality(p_retry_in_s) IS DISTINCT FROM n
       OR cardinality(p_note) IS DISTINCT FROM n OR cardinality(p_output) IS DISTINCT FROM n
       OR cardinality(p_truncated) IS DISTINCT FROM n THEN
        RAISE EXCEPTION 'dagq.finish_tries: the arrays must be of one length (% task instances)', n
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the fence, as in claim_tries: the tries this incarnation still holds
    SELECT array_agg(l.ti_id) INTO ids
      FROM (SELECT t.ti_id, t.try_number, t.state, t.worker_id, t.incarnation
              FROM dagq.task_instance t
             WHERE t.ti_id = ANY (p_ti)
             ORDER BY t.ti_id FOR UPDATE) l
     WHERE l.state = 'running' AND l.worker_id = p_worker AND l.incarnation = p_incarnation
       AND EXISTS (SELECT 1 FROM unnest(p_ti, p_try) u(ti, try)
                    WHERE u.ti = l.ti_id AND u.try = l.try_number);
    WITH given AS (
        SELECT DISTINCT ON (u.ti) u.ti, u.try, u.ok, u.code, u.delay, u.note, u.out, u.trunc
          FROM unnest(p_ti, p_try, p_ok, p_exit_code, p_retry_in_s, p_note, p_output, p_truncated)
               AS u(ti, try, ok, code, delay, note, out, trunc)
         ORDER BY u.ti, u.try DESC
    ), fin AS (
        UPDATE dagq.task_instance t
           SET state = CASE WHEN g.ok THEN 'success'
                            WHEN t.try_number < t.max_tries THEN 'up_for_retry'
                            ELSE 'failed' END,
               ended_at = clock_timestamp(), exit_code = g.code, note = g.note,
               next_retry_at = CASE WHEN NOT g.ok AND t.try_number < t.max_tries
                                    THEN dagq.retry_at(g.delay) END,
               end_pending = (g.ok OR t.try_number >= t.max_tries) AND t.n_downstream > 0
          FROM given g
         WHERE t.ti_id = ANY (COALESCE(ids, '{}')) AND g.ti = t.ti_id AND g.try = t.try_number
        RETURNING t.ti_id, t.try_number, t.state, g.code, g.note
    ), tries AS (
        UPDATE dagq.task_try y
           SET state = fin.state, ended_at = clock_timestamp(), exit_code = fin.code, note = fin.note
          FROM fin
         WHERE y.ti_id = fin.ti_id AND y.try_number = fin.try_number
    ), logs AS (
        INSERT INTO dagq.task_log (ti_id, try_number, output, truncated_bytes)
        SELECT g.ti, g.try, COALESCE(g.out, ''), COALESCE(g.trunc, 0)
          FROM given g
         WHERE g.ti = ANY (COALESCE(ids, '{}'))
        ON CONFLICT ON CONSTRAINT task_log_pkey DO UPDATE
            SET output = EXCLUDED.output, truncated_bytes = EXCLUDED.truncated_bytes,
                created_at = clock_timestamp()
    ), lost_logs AS (
        -- a try taken away (stopped, marked, a zombie verdict) still leaves
        -- its output; the result itself is discarded
        INSERT INTO dagq.task_log (ti_id, try_number, output, truncated_bytes)
        SELECT g.ti, g.try, COALESCE(g.out, ''), COALESCE(g.trunc, 0)
          FROM given g
         WHERE NOT (g.ti = ANY (COALESCE(ids, '{}')))
           AND EXISTS (SELECT 1 FROM dagq.task_try y
                        WHERE y.ti_id = g.ti AND y.try_number = g.try AND y.worker_id = p_worker
                          AND y.incarnation = p_incarnation AND y.state <> 'running')
        ON CONFLICT ON CONSTRAINT task_log_pkey DO NOTHING
    )
    SELECT array_agg(fin.ti_id), array_agg(fin.try_number), array_agg(fin.state)
      INTO done, done_try, states FROM fin;
    FOR rec IN SELECT t.* FROM dagq.task_instance t
                WHERE t.ti_id = ANY (COALESCE(done, '{}')) AND t.state IN ('failed', 'up_for_retry')
                ORDER BY t.ti_id LOOP
        PERFORM dagq.emit(CASE rec.state WHEN 'failed' THEN 'task_failed' ELSE 'task_retry' END,
                          rec.dag_id, rec.run_id, rec.task_id, rec.ti_id, rec.try_number, rec.state,
                          rec.note);
    END LOOP;
    -- wake the schedulers, once per run, when its ends can make work (009)
    FOR rec IN SELECT t.run_id, min(t.dag_id) AS dag_id,
                      bool_or(t.state <> 'success' OR t.pool IS NOT NULL OR t.n_downstream > 0) AS wakes
                 FROM dagq.task_instance t
                WHERE t.ti_id = ANY (COALESCE(done, '{}'))
                GROUP BY t.run_id ORDER BY t.run_id LOOP
        IF rec.wakes OR dagq.end_wakes(rec.dag_id, rec.run_id) THEN
            PERFORM pg_notify('dagq', rec.run_id::text);
        END IF;
    END LOOP;
    RETURN QUERY
    SELECT u.ti, u.try, d.st
      FROM unnest(p_ti, p_try) WITH ORDINALITY AS u(ti, try, i)
      LEFT JOIN unnest(done, done_try, states) AS d(ti, try, st) ON d.ti = u.ti AND d.try = u.try
     ORDER BY u.i;
END;
$$;

GRANT EXECUTE ON FUNCTION
    dagq.claim_tries(bigint[], int[], text, uuid, text),
    dagq.finish_tries(bigint[], int[], text, uuid, boolean[], int[], double precision[], text[],
                      text[], bigint[])
    TO dagq_worker;
