-- dagq metastore, migration 004: the functions that move runs and task
-- instances between states. Each transition is a conditional UPDATE whose
-- WHERE clause is the fence (DESIGN.md); a function that finds nothing to
-- move changes nothing. Writers NOTIFY channel 'dagq' so schedulers wake at
-- once; polling remains the fallback.

------------------------------------------------------------------------------
-- For ETL teams (and the CLI): trigger, clear, pause.
------------------------------------------------------------------------------

CREATE FUNCTION dagq.trigger_dag(p_dag_id text, p_conf jsonb DEFAULT '{}',
                                 p_logical_date timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    rid bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dagq.dag WHERE dag_id = p_dag_id) THEN
        RAISE EXCEPTION 'dagq.trigger_dag: unknown DAG "%"', p_dag_id
            USING ERRCODE = 'no_data_found';
    END IF;
    IF jsonb_typeof(COALESCE(p_conf, '{}')) <> 'object' THEN
        RAISE EXCEPTION 'dagq.trigger_dag: conf must be a JSON object, got %', p_conf
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_logical_date IS NULL THEN
        RAISE EXCEPTION 'dagq.trigger_dag: logical_date must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
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
-- one task, with --downstream its downstream tasks too), so they run again
-- with new tries; their history (task_try, task_log) is kept. Queued and
-- running task instances are left alone. Returns how many were cleared.
CREATE FUNCTION dagq.clear(p_run_id bigint, p_task_id text DEFAULT NULL,
                           p_downstream boolean DEFAULT false)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
    v_dag text;
BEGIN
    SELECT dag_id INTO v_dag FROM dagq.dag_run WHERE run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.clear: unknown run %', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    IF p_task_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM dagq.task_instance WHERE run_id = p_run_id AND task_id = p_task_id) THEN
        RAISE EXCEPTION 'dagq.clear: run % has no task "%"', p_run_id, p_task_id
            USING ERRCODE = 'no_data_found';
    END IF;
    WITH RECURSIVE targets(task_id) AS (
        SELECT ti.task_id FROM dagq.task_instance ti
         WHERE ti.run_id = p_run_id AND (p_task_id IS NULL OR ti.task_id = p_task_id)
        UNION
        SELECT d.task_id FROM dagq.task_dependency d JOIN targets t ON d.upstream_task_id = t.task_id
         WHERE p_downstream AND d.dag_id = v_dag
    )
    UPDATE dagq.task_instance ti
       SET state = 'scheduled', max_tries = ti.try_number + ti.retries + 1,
           worker_id = NULL, hostname = NULL, queued_at = NULL, pushed_at = NULL,
           started_at = NULL, ended_at = NULL, heartbeat_at = NULL, next_retry_at = NULL,
           exit_code = NULL, note = NULL
      FROM targets t
     WHERE ti.run_id = p_run_id AND ti.task_id = t.task_id
       AND ti.state IN ('success', 'failed', 'upstream_failed', 'skipped', 'up_for_retry');
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE dagq.dag_run SET state = 'running', ended_at = NULL
         WHERE run_id = p_run_id AND state IN ('success', 'failed');
        PERFORM pg_notify('dagq', p_run_id::text);
    END IF;
    RETURN n;
END;
$$;

-- Pausing and unpausing: one writer; only unpausing wakes the schedulers
-- (a paused DAG needs no pass to stop).
CREATE FUNCTION dagq.set_paused(p_dag_id text, p_paused boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE dagq.dag SET is_paused = p_paused WHERE dag_id = p_dag_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.%: unknown DAG "%"', CASE WHEN p_paused THEN 'pause' ELSE 'unpause' END,
            p_dag_id USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT p_paused THEN
        PERFORM pg_notify('dagq', 'unpause');
    END IF;
END;
$$;

CREATE FUNCTION dagq.pause(p_dag_id text) RETURNS void
LANGUAGE sql AS $$ SELECT dagq.set_paused(p_dag_id, true) $$;

CREATE FUNCTION dagq.unpause(p_dag_id text) RETURNS void
LANGUAGE sql AS $$ SELECT dagq.set_paused(p_dag_id, false) $$;

------------------------------------------------------------------------------
-- For the scheduler.
------------------------------------------------------------------------------

-- Moves a queued run to running and creates one task instance per task, with
-- the task's definition frozen into it. Returns the number of task
-- instances, or -1 if the run was not queued (another scheduler took it).
CREATE FUNCTION dagq.start_run(p_run_id bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    UPDATE dagq.dag_run SET state = 'running', started_at = clock_timestamp()
     WHERE run_id = p_run_id AND state = 'queued';
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    INSERT INTO dagq.task_instance (run_id, dag_id, task_id, max_tries, worker_group, command,
                                    env, priority, pool, pool_slots, trigger_rule, retries,
                                    retry_delay, retry_exponential_backoff, max_retry_delay,
                                    execution_timeout)
    SELECT r.run_id, t.dag_id, t.task_id, t.retries + 1,
           COALESCE(t.worker_group, d.default_worker_group), t.command, t.env, t.priority,
           t.pool, t.pool_slots, t.trigger_rule, t.retries, t.retry_delay, t.retry_exponential_backoff,
           t.max_retry_delay, t.execution_timeout
      FROM dagq.dag_run r
      JOIN dagq.dag d ON d.dag_id = r.dag_id
      JOIN dagq.task t ON t.dag_id = r.dag_id
     WHERE r.run_id = p_run_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- Decides every 'scheduled' task instance of the running runs of unpaused
-- DAGs by its trigger rule and the states of its upstream task instances:
-- 'run', 'upstream_failed', 'skipped', or NULL (wait).
CREATE VIEW dagq.ti_verdict AS
WITH cand AS (
    SELECT ti.ti_id, ti.run_id, ti.dag_id, ti.task_id, ti.trigger_rule
      FROM dagq.task_instance ti
      JOIN dagq.dag_run r ON r.run_id = ti.run_id AND r.state = 'running'
      JOIN dagq.dag d ON d.dag_id = ti.dag_id AND NOT d.is_paused
     WHERE ti.state = 'scheduled'
), up AS (
    SELECT c.ti_id, c.trigger_rule,
           count(u.ti_id) AS n,
           count(u.ti_id) FILTER (WHERE u.state = 'success') AS ok,
           count(u.ti_id) FILTER (WHERE u.state IN ('failed', 'upstream_failed')) AS bad,
           count(u.ti_id) FILTER (WHERE u.state = 'skipped') AS skip
      FROM cand c
      LEFT JOIN dagq.task_dependency e ON e.dag_id = c.dag_id AND e.task_id = c.task_id
      LEFT JOIN dagq.task_instance u ON u.run_id = c.run_id AND u.task_id = e.upstream_task_id
     GROUP BY c.ti_id, c.trigger_rule
)
SELECT ti_id,
       CASE
         WHEN n = 0 OR trigger_rule = 'always' THEN 'run'
         WHEN trigger_rule = 'all_success' THEN
              CASE WHEN bad > 0 THEN 'upstream_failed'
                   WHEN skip > 0 THEN 'skipped'
                   WHEN ok = n THEN 'run' END
         WHEN trigger_rule = 'all_failed' THEN
              CASE WHEN ok > 0 OR skip > 0 THEN 'skipped'
                   WHEN bad = n THEN 'run' END
         WHEN trigger_rule = 'all_done' THEN
              CASE WHEN ok + bad + skip = n THEN 'run' END
         WHEN trigger_rule = 'one_success' THEN
              CASE WHEN ok > 0 THEN 'run'
                   WHEN skip = n THEN 'skipped'
                   WHEN ok + bad + skip = n THEN 'upstream_failed' END
         WHEN trigger_rule = 'one_failed' THEN
              CASE WHEN bad > 0 THEN 'run'
                   WHEN ok + bad + skip = n THEN 'skipped' END
         WHEN trigger_rule = 'none_failed' THEN
              CASE WHEN bad > 0 THEN 'upstream_failed'
                   WHEN ok + bad + skip = n THEN 'run' END
       END AS verdict
  FROM up;

-- Settles task instances that trigger rules decide without running:
-- upstream_failed and skipped, repeated until nothing more moves, so a
-- failure propagates down a chain in one call. Returns how many moved, by
-- worker group and new state (a group and state may appear more than once).
CREATE FUNCTION dagq.settle_trigger_rules()
RETURNS TABLE (worker_group text, state text, n bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    moved int;
BEGIN
    -- upstream_failed and skipped verdicts need a failed, upstream_failed or
    -- skipped upstream of a task instance still waiting, or a waiting
    -- all_failed / one_failed task (those skip when their upstreams
    -- succeed): without either in any running run, there is nothing to
    -- evaluate (a run with a failure long settled does not count)
    IF NOT EXISTS (SELECT 1 FROM dagq.dag_run r
                     JOIN dagq.task_instance x ON x.run_id = r.run_id
                     JOIN dagq.task_dependency e
                       ON e.dag_id = x.dag_id AND e.upstream_task_id = x.task_id
                     JOIN dagq.task_instance dn
                       ON dn.run_id = x.run_id AND dn.task_id = e.task_id AND dn.state = 'scheduled'
                    WHERE r.state = 'running'
                      AND x.state IN ('failed', 'upstream_failed', 'skipped'))
       AND NOT EXISTS (SELECT 1 FROM dagq.task_instance x
                        WHERE x.state = 'scheduled'
                          AND x.trigger_rule IN ('all_failed', 'one_failed')) THEN
        RETURN;
    END IF;
    LOOP
        RETURN QUERY
        WITH u AS (
            UPDATE dagq.task_instance t
               SET state = v.verdict, ended_at = clock_timestamp(),
                   note = 'by trigger rule ' || t.trigger_rule
              FROM dagq.ti_verdict v
             WHERE t.ti_id = v.ti_id AND v.verdict IN ('upstream_failed', 'skipped')
               AND t.state = 'scheduled'
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
CREATE FUNCTION dagq.queue_ready(p_limit int)
RETURNS TABLE (ti_id bigint, try_number int, dag_id text, task_id text, run_id bigint,
               worker_group text, queued_at_us bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH ready AS (
        SELECT ti.ti_id, ti.dag_id, ti.priority, ti.pool, ti.pool_slots, r.logical_date
          FROM dagq.ti_verdict v
          JOIN dagq.task_instance ti ON ti.ti_id = v.ti_id
          JOIN dagq.dag_run r ON r.run_id = ti.run_id
         WHERE v.verdict = 'run'
        UNION ALL
        SELECT ti.ti_id, ti.dag_id, ti.priority, ti.pool, ti.pool_slots, r.logical_date
          FROM dagq.task_instance ti
          JOIN dagq.dag_run r ON r.run_id = ti.run_id AND r.state = 'running'
          JOIN dagq.dag d ON d.dag_id = ti.dag_id AND NOT d.is_paused
         WHERE ti.state = 'up_for_retry' AND ti.next_retry_at <= clock_timestamp()
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
        -- slots held by queued and running task instances, of the pools asked for
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
    )
    UPDATE dagq.task_instance t
       SET state = 'queued', try_number = t.try_number + 1,
           queued_at = clock_timestamp(), pushed_at = clock_timestamp(),
           worker_id = NULL, hostname = NULL, started_at = NULL, ended_at = NULL,
           heartbeat_at = NULL, next_retry_at = NULL, exit_code = NULL
      FROM pick
     WHERE t.ti_id = pick.ti_id AND t.state IN ('scheduled', 'up_for_retry')
    RETURNING t.ti_id, t.try_number, t.dag_id, t.task_id, t.run_id, t.worker_group,
              (extract(epoch FROM t.queued_at) * 1000000)::bigint;
END;
$$;

-- Tries left 'queued' longer than p_timeout_s since their last push: the
-- message may have been lost (a crash between commit and push, a broker that
-- lost it). Same try number; the caller pushes them again.
CREATE FUNCTION dagq.requeue_stale(p_timeout_s double precision, p_limit int)
RETURNS TABLE (ti_id bigint, try_number int, dag_id text, task_id text, run_id bigint,
               worker_group text, queued_at_us bigint)
LANGUAGE sql AS $$
    UPDATE dagq.task_instance t
       SET pushed_at = clock_timestamp()
     WHERE t.ti_id IN (SELECT s.ti_id FROM dagq.task_instance s
                        WHERE s.state = 'queued'
                          AND s.pushed_at < clock_timestamp() - make_interval(secs => p_timeout_s)
                        ORDER BY s.pushed_at LIMIT p_limit)
       AND t.state = 'queued'
    RETURNING t.ti_id, t.try_number, t.dag_id, t.task_id, t.run_id, t.worker_group,
              (extract(epoch FROM t.queued_at) * 1000000)::bigint;
$$;

-- Running tries whose worker has not heartbeated for p_threshold_s.
CREATE FUNCTION dagq.find_zombies(p_threshold_s double precision, p_limit int)
RETURNS TABLE (ti_id bigint, try_number int, max_tries int, dag_id text, task_id text,
               run_id bigint, worker_id text, retry_delay_s double precision,
               retry_exponential_backoff boolean, max_retry_delay_s double precision,
               silent_s double precision, worker_group text)
LANGUAGE sql STABLE AS $$
    SELECT t.ti_id, t.try_number, t.max_tries, t.dag_id, t.task_id, t.run_id, t.worker_id,
           extract(epoch FROM t.retry_delay)::float8, t.retry_exponential_backoff,
           extract(epoch FROM t.max_retry_delay)::float8,
           extract(epoch FROM clock_timestamp() - t.heartbeat_at)::float8, t.worker_group
      FROM dagq.task_instance t
     WHERE t.state = 'running'
       AND t.heartbeat_at < clock_timestamp() - make_interval(secs => p_threshold_s)
     ORDER BY t.heartbeat_at
     LIMIT p_limit;
$$;

-- The fence of a try: locks its task instance by the primary key and says
-- whether it is still try p_try in state p_state (and held by p_worker, when
-- given). The fenced UPDATEs below then reach the row by its key alone. With
-- the state in their WHERE, the planner may pick a partial index (ti_queued,
-- ti_running: it believes them nearly empty once history has taught it that
-- almost every row is finished) and walk every queued or running row, so each
-- claim cost more the longer the backlog. Under READ COMMITTED, FOR UPDATE
-- waits for a concurrent writer and then reads the row as it now is.
CREATE FUNCTION dagq.fence_try(p_ti_id bigint, p_try int, p_state text,
                               p_worker text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
BEGIN
    SELECT t.try_number = p_try AND t.state = p_state
           AND (p_worker IS NULL OR t.worker_id IS NOT DISTINCT FROM p_worker)
      INTO ok
      FROM dagq.task_instance t
     WHERE t.ti_id = p_ti_id
       FOR UPDATE;
    RETURN COALESCE(ok, false);
END;
$$;

-- Ends a try that is taken away from its worker (zombie, or a worker giving
-- it back): up_for_retry after p_retry_in_s if tries are left, else failed.
-- Fenced on the try number and 'running'. Returns the new state or NULL.
CREATE FUNCTION dagq.abandon_try(p_ti_id bigint, p_try int, p_retry_in_s double precision,
                                 p_note text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    rid bigint;
BEGIN
    IF NOT dagq.fence_try(p_ti_id, p_try, 'running') THEN
        RETURN NULL;
    END IF;
    UPDATE dagq.task_instance t
       SET state = CASE WHEN t.try_number < t.max_tries THEN 'up_for_retry' ELSE 'failed' END,
           ended_at = clock_timestamp(),
           next_retry_at = CASE WHEN t.try_number < t.max_tries
                                THEN clock_timestamp() + make_interval(secs => p_retry_in_s) END,
           note = p_note
     WHERE t.ti_id = p_ti_id
    RETURNING t.state, t.run_id INTO st, rid;
    UPDATE dagq.task_try SET state = st, ended_at = clock_timestamp(), note = p_note
     WHERE ti_id = p_ti_id AND try_number = p_try;
    PERFORM pg_notify('dagq', rid::text);
    RETURN st;
END;
$$;

-- Ends running runs whose task instances are all finished: 'failed' when a
-- leaf task instance (one no other task of the run depends on) failed or
-- was upstream_failed, else 'success' (Airflow's rule).
CREATE FUNCTION dagq.finish_runs()
RETURNS TABLE (run_id bigint, dag_id text, state text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH done AS (
        SELECT r.run_id, r.dag_id
          FROM dagq.dag_run r
         WHERE r.state = 'running'
           AND NOT EXISTS (SELECT 1 FROM dagq.task_instance ti
                            WHERE ti.run_id = r.run_id
                              AND ti.state IN ('scheduled', 'queued', 'running', 'up_for_retry'))
    ), verdict AS (
        SELECT d.run_id,
               CASE WHEN EXISTS (
                   SELECT 1 FROM dagq.task_instance ti
                    WHERE ti.run_id = d.run_id AND ti.state IN ('failed', 'upstream_failed')
                      AND NOT EXISTS (SELECT 1 FROM dagq.task_dependency e
                                        JOIN dagq.task_instance dn
                                          ON dn.run_id = ti.run_id AND dn.task_id = e.task_id
                                       WHERE e.dag_id = ti.dag_id
                                         AND e.upstream_task_id = ti.task_id))
                    THEN 'failed' ELSE 'success' END AS st
          FROM done d
    )
    UPDATE dagq.dag_run r SET state = v.st, ended_at = clock_timestamp()
      FROM verdict v
     WHERE r.run_id = v.run_id AND r.state = 'running'
    RETURNING r.run_id, r.dag_id, r.state;
END;
$$;

------------------------------------------------------------------------------
-- For workers.
------------------------------------------------------------------------------

-- The claim: queued -> running for this worker, fenced on the try number.
-- Returns what to run (never what the message said), or no row when the
-- message was a duplicate or stale.
CREATE FUNCTION dagq.claim_try(p_ti_id bigint, p_try int, p_worker text, p_host text)
RETURNS TABLE (command text, env_count int, execution_timeout_s double precision,
               dag_id text, task_id text, run_id bigint, logical_date text,
               max_tries int, retry_delay_s double precision,
               retry_exponential_backoff boolean, max_retry_delay_s double precision)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    t dagq.task_instance;
BEGIN
    IF NOT dagq.fence_try(p_ti_id, p_try, 'queued') THEN
        RETURN;
    END IF;
    UPDATE dagq.task_instance ti
       SET state = 'running', worker_id = p_worker, hostname = p_host,
           started_at = clock_timestamp(), heartbeat_at = clock_timestamp()
     WHERE ti.ti_id = p_ti_id
    RETURNING ti.* INTO t;
    INSERT INTO dagq.task_try (ti_id, try_number, worker_id, hostname, state, started_at)
    VALUES (t.ti_id, t.try_number, p_worker, p_host, 'running', t.started_at)
    ON CONFLICT ON CONSTRAINT task_try_pkey DO UPDATE
        SET worker_id = EXCLUDED.worker_id, hostname = EXCLUDED.hostname,
            state = 'running', started_at = EXCLUDED.started_at, ended_at = NULL,
            exit_code = NULL, note = NULL;
    RETURN QUERY
    SELECT t.command, (SELECT count(*)::int FROM jsonb_object_keys(t.env)),
           extract(epoch FROM t.execution_timeout)::float8,
           t.dag_id, t.task_id, t.run_id,
           to_char(r.logical_date AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
           t.max_tries, extract(epoch FROM t.retry_delay)::float8,
           t.retry_exponential_backoff, extract(epoch FROM t.max_retry_delay)::float8
      FROM dagq.dag_run r WHERE r.run_id = t.run_id;
END;
$$;

-- The end of a try, fenced on this worker still holding it. p_ok: the
-- command exited 0. A failed try becomes up_for_retry (after p_retry_in_s)
-- while tries are left, else failed. The output is kept per try. Returns the
-- new state, or NULL when the try had been taken away (the result is then
-- discarded).
CREATE FUNCTION dagq.finish_try(p_ti_id bigint, p_try int, p_worker text, p_ok boolean,
                                p_exit_code int, p_retry_in_s double precision, p_note text,
                                p_output text, p_truncated bigint)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    fin dagq.task_instance;
BEGIN
    IF NOT dagq.fence_try(p_ti_id, p_try, 'running', p_worker) THEN
        RETURN NULL;
    END IF;
    UPDATE dagq.task_instance t
       SET state = CASE WHEN p_ok THEN 'success'
                        WHEN t.try_number < t.max_tries THEN 'up_for_retry'
                        ELSE 'failed' END,
           ended_at = clock_timestamp(), exit_code = p_exit_code, note = p_note,
           next_retry_at = CASE WHEN NOT p_ok AND t.try_number < t.max_tries
                                THEN clock_timestamp() + make_interval(secs => p_retry_in_s) END
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
    -- Wake the schedulers when this end can make work: a failure or a retry,
    -- a freed pool slot, a downstream task, a task of the DAG waiting for a
    -- max_active_tasks slot, or a run near its end. A success that can do
    -- none of these (most of a wide run) costs no scheduler pass. "Near its
    -- end" is "nothing left but running": tries ending at the same moment
    -- cannot see each other's end, so each of them wakes the schedulers and
    -- the last one is never missed.
    IF fin.state <> 'success' OR fin.pool IS NOT NULL
       OR EXISTS (SELECT 1 FROM dagq.task_dependency e
                   WHERE e.dag_id = fin.dag_id AND e.upstream_task_id = fin.task_id)
       OR EXISTS (SELECT 1 FROM dagq.dag_run r
                    JOIN dagq.task_instance x ON x.run_id = r.run_id AND x.state = 'scheduled'
                   WHERE r.dag_id = fin.dag_id AND r.state = 'running')
       OR NOT EXISTS (SELECT 1 FROM dagq.task_instance x
                       WHERE x.run_id = fin.run_id AND x.state IN ('scheduled', 'queued', 'up_for_retry')) THEN
        PERFORM pg_notify('dagq', fin.run_id::text);
    END IF;
    RETURN fin.state;
END;
$$;

-- A worker's heartbeat: registers or refreshes the worker, and refreshes the
-- heartbeat of every try it runs. Returns the ids of the running tries the
-- metastore says it holds, so the worker can tell tries taken away from it.
CREATE FUNCTION dagq.worker_heartbeat(p_worker text, p_host text, p_pid int, p_groups text[],
                                      p_slots int, p_running int, p_state text)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dagq.worker AS w (worker_id, hostname, pid, groups, slots, running, state)
    VALUES (p_worker, p_host, p_pid, p_groups, p_slots, p_running, p_state)
    ON CONFLICT (worker_id) DO UPDATE
        SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, groups = EXCLUDED.groups,
            slots = EXCLUDED.slots, running = EXCLUDED.running, state = EXCLUDED.state,
            heartbeat_at = clock_timestamp(),
            started_at = CASE WHEN w.pid <> EXCLUDED.pid THEN clock_timestamp()
                              ELSE w.started_at END;
    RETURN QUERY
    UPDATE dagq.task_instance t SET heartbeat_at = clock_timestamp()
     WHERE t.state = 'running' AND t.worker_id = p_worker
    RETURNING t.ti_id;
END;
$$;

-- A worker gives a running try back without it counting as a failure (it
-- is being stopped: drain timeout, scale-in): up_for_retry at once, with one
-- more try allowed. Fenced like finish_try. Returns the new state or NULL.
CREATE FUNCTION dagq.release_try(p_ti_id bigint, p_try int, p_worker text, p_note text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    rid bigint;
BEGIN
    IF NOT dagq.fence_try(p_ti_id, p_try, 'running', p_worker) THEN
        RETURN NULL;
    END IF;
    UPDATE dagq.task_instance t
       SET state = 'up_for_retry', max_tries = t.max_tries + 1, ended_at = clock_timestamp(),
           next_retry_at = clock_timestamp(), note = p_note
     WHERE t.ti_id = p_ti_id
    RETURNING t.state, t.run_id INTO st, rid;
    UPDATE dagq.task_try SET state = 'released', ended_at = clock_timestamp(), note = p_note
     WHERE ti_id = p_ti_id AND try_number = p_try;
    PERFORM pg_notify('dagq', rid::text);
    RETURN st;
END;
$$;
