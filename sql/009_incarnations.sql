-- dagq metastore, migration 009: worker incarnations and one heartbeat row
-- per worker process.
--
-- A worker process has a name (--name, default host:pid) and an incarnation,
-- a random id it draws when it starts. Claims and finishes are fenced on
-- both, so a worker restarted under the same name (a container restart keeps
-- hostname and pid) never inherits, refreshes or finishes the tries of the
-- process it replaces: those tries become zombies one heartbeat timeout
-- after the dead process's last heartbeat and are retried.
--
-- A heartbeat writes only the worker's own row in dagq.worker; zombie
-- detection reads those rows (O(workers)), and no running task instance is
-- rewritten every few seconds.

ALTER TABLE dagq.worker ADD COLUMN incarnation uuid;
UPDATE dagq.worker SET incarnation = gen_random_uuid();
ALTER TABLE dagq.worker ALTER COLUMN incarnation SET NOT NULL;
ALTER TABLE dagq.worker DROP CONSTRAINT worker_pkey;
ALTER TABLE dagq.worker ADD PRIMARY KEY (worker_id, incarnation);


-- Tries running at upgrade time belong to the current row of their worker's
-- name; tries whose worker has no row get a silent one, so they are judged
-- (and retried) like any other zombie.
INSERT INTO dagq.worker (worker_id, incarnation, hostname, pid, groups, slots, state, heartbeat_at)
SELECT DISTINCT t.worker_id, gen_random_uuid(), COALESCE(t.hostname, ''), 0, '{}'::text[], 0, 'gone',
       clock_timestamp() - interval '1 day'
  FROM dagq.task_instance t
 WHERE t.state = 'running' AND t.worker_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM dagq.worker w WHERE w.worker_id = t.worker_id);
UPDATE dagq.task_instance t SET incarnation = w.incarnation
  FROM dagq.worker w WHERE t.state = 'running' AND w.worker_id = t.worker_id;

DROP INDEX dagq.ti_running;
DROP INDEX dagq.ti_running_worker;
CREATE INDEX ti_running_worker ON dagq.task_instance (worker_id, incarnation) WHERE state = 'running';
-- re-pushes go group by group, oldest push first
DROP INDEX dagq.ti_queued;
CREATE INDEX ti_queued ON dagq.task_instance (worker_group, pushed_at) WHERE state = 'queued';

DROP FUNCTION dagq.worker_heartbeat(text, text, int, text[], int, int, text);
DROP FUNCTION dagq.claim_try(bigint, int, text, text);
DROP FUNCTION dagq.finish_try(bigint, int, text, boolean, int, double precision, text, text, bigint);
DROP FUNCTION dagq.release_try(bigint, int, text, text);
DROP FUNCTION dagq.abandon_try(bigint, int, double precision, text);
DROP FUNCTION dagq.find_zombies(double precision, int);
DROP FUNCTION dagq.fence_try(bigint, int, text, text);

ALTER TABLE dagq.task_instance DROP COLUMN heartbeat_at;

-- The fence of a try: locks its task instance by the primary key and says
-- whether it is still try p_try in state p_state (and held by p_worker's
-- incarnation p_incarnation, when given). The fenced UPDATEs below then
-- reach the row by its key alone (the planner would otherwise walk a
-- partial index it believes nearly empty). Under READ COMMITTED, FOR UPDATE
-- waits for a concurrent writer and then reads the row as it now is.
CREATE FUNCTION dagq.fence_try(p_ti_id bigint, p_try int, p_state text,
                               p_worker text DEFAULT NULL, p_incarnation uuid DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
BEGIN
    SELECT t.try_number = p_try AND t.state = p_state
           AND (p_worker IS NULL OR (t.worker_id IS NOT DISTINCT FROM p_worker
                                     AND t.incarnation IS NOT DISTINCT FROM p_incarnation))
      INTO ok
      FROM dagq.task_instance t
     WHERE t.ti_id = p_ti_id
       FOR UPDATE;
    RETURN COALESCE(ok, false);
END;
$$;

-- A retry delay as the metastore can hold it: 0 .. 365 days.
CREATE FUNCTION dagq.retry_at(p_retry_in_s double precision) RETURNS timestamptz
LANGUAGE sql VOLATILE AS $$
    SELECT clock_timestamp()
           + make_interval(secs => LEAST(GREATEST(COALESCE(p_retry_in_s, 0), 0), 31536000))
$$;

------------------------------------------------------------------------------
-- For workers.
------------------------------------------------------------------------------

-- A worker's heartbeat: registers or refreshes the row of this incarnation
-- (and nothing else), and returns the ids of the running tries the metastore
-- says it holds, so the worker can tell tries taken away from it.
CREATE FUNCTION dagq.worker_heartbeat(p_worker text, p_incarnation uuid, p_host text, p_pid int,
                                      p_groups text[], p_slots int, p_running int, p_state text)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dagq.worker AS w (worker_id, incarnation, hostname, pid, groups, slots, running, state)
    VALUES (p_worker, p_incarnation, p_host, p_pid, p_groups, p_slots, p_running, p_state)
    ON CONFLICT (worker_id, incarnation) DO UPDATE
        SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, groups = EXCLUDED.groups,
            slots = EXCLUDED.slots, running = EXCLUDED.running, state = EXCLUDED.state,
            heartbeat_at = clock_timestamp();
    RETURN QUERY
    SELECT t.ti_id FROM dagq.task_instance t
     WHERE t.state = 'running' AND t.worker_id = p_worker AND t.incarnation = p_incarnation;
END;
$$;

-- A worker that stopped cleanly says so.
CREATE FUNCTION dagq.worker_gone(p_worker text, p_incarnation uuid) RETURNS void
LANGUAGE sql AS $$
    UPDATE dagq.worker SET state = 'gone', running = 0, heartbeat_at = clock_timestamp()
     WHERE worker_id = p_worker AND incarnation = p_incarnation;
$$;

-- The claim: queued -> running for this worker incarnation, fenced on the
-- try number. Returns what to run (never what the message said): the
-- command, and its environment as NAME=value strings: every param of the
-- run (the DAG's params overlaid by the run's conf, frozen when it started)
-- as DAGQ_PARAM_<NAME> (names that are not shell variable names are left
-- out), then the task's env. No row when the message was a duplicate or
-- stale. A worker must have heartbeated (registered) before it claims.
CREATE FUNCTION dagq.claim_try(p_ti_id bigint, p_try int, p_worker text, p_incarnation uuid,
                               p_host text)
RETURNS TABLE (command text, env text[], execution_timeout_s double precision,
               dag_id text, task_id text, run_id bigint, logical_date text,
               max_tries int, retry_delay_s double precision,
               retry_exponential_backoff boolean, max_retry_delay_s double precision)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    t dagq.task_instance;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dagq.worker w
                    WHERE w.worker_id = p_worker AND w.incarnation = p_incarnation) THEN
        RAISE EXCEPTION 'dagq.claim_try: worker "%" incarnation % has not registered (heartbeat first)',
            p_worker, p_incarnation USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT dagq.fence_try(p_ti_id, p_try, 'queued') THEN
        RETURN;
    END IF;
    UPDATE dagq.task_instance ti
       SET state = 'running', worker_id = p_worker, incarnation = p_incarnation, hostname = p_host,
           started_at = clock_timestamp()
     WHERE ti.ti_id = p_ti_id
    RETURNING ti.* INTO t;
    INSERT INTO dagq.task_try (ti_id, try_number, worker_id, incarnation, hostname, state, started_at)
    VALUES (t.ti_id, t.try_number, p_worker, p_incarnation, p_host, 'running', t.started_at)
    ON CONFLICT ON CONSTRAINT task_try_pkey DO UPDATE
        SET worker_id = EXCLUDED.worker_id, incarnation = EXCLUDED.incarnation,
            hostname = EXCLUDED.hostname, state = 'running', started_at = EXCLUDED.started_at,
            ended_at = NULL, exit_code = NULL, note = NULL;
    RETURN QUERY
    SELECT t.command,
           ARRAY(SELECT 'DAGQ_PARAM_' || upper(p.key) || '=' || COALESCE(p.value, '')
                   FROM jsonb_each_text(COALESCE(r.params, '{}')) p
                  WHERE p.key ~ '^[A-Za-z_][A-Za-z0-9_]*$' ORDER BY p.key)
           || ARRAY(SELECT e.key || '=' || e.value FROM jsonb_each_text(t.env) e ORDER BY e.key),
           extract(epoch FROM t.execution_timeout)::float8,
           t.dag_id, t.task_id, t.run_id,
           to_char(r.logical_date AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
           t.max_tries, extract(epoch FROM t.retry_delay)::float8,
           t.retry_exponential_backoff, extract(epoch FROM t.max_retry_delay)::float8
      FROM dagq.dag_run r WHERE r.run_id = t.run_id;
END;
$$;

-- The end of a try, fenced on this worker incarnation still holding it.
-- p_ok: the command exited 0. A failed try becomes up_for_retry (after
-- p_retry_in_s, at most 365 days) while tries are left, else failed. The
-- output is kept per try. Writes task_failed / task_retry events. Returns
-- the new state, or NULL when the try had been taken away (the result is
-- then discarded).
CREATE FUNCTION dagq.finish_try(p_ti_id bigint, p_try int, p_worker text, p_incarnation uuid,
                                p_ok boolean, p_exit_code int, p_retry_in_s double precision,
                                p_note text, p_output text, p_truncated bigint)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    fin dagq.task_instance;
BEGIN
    IF NOT dagq.fence_try(p_ti_id, p_try, 'running', p_worker, p_incarnation) THEN
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
    -- Wake the schedulers when this end can make work: a failure or a retry,
    -- a freed pool slot, a downstream task, a task of the DAG waiting for a
    -- max_active_tasks slot, or a run near its end. A success that can do
    -- none of these (most of a wide run) costs no scheduler pass. "Near its
    -- end" is "nothing left but running": tries ending at the same moment
    -- cannot see each other's end, so each of them wakes the schedulers and
    -- the last one is never missed.
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

-- A worker gives a running try back without it counting as a failure (it
-- is being stopped: drain timeout, scale-in): up_for_retry at once, with one
-- more try allowed. Fenced like finish_try. Returns the new state or NULL.
CREATE FUNCTION dagq.release_try(p_ti_id bigint, p_try int, p_worker text, p_incarnation uuid,
                                 p_note text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    rid bigint;
BEGIN
    IF NOT dagq.fence_try(p_ti_id, p_try, 'running', p_worker, p_incarnation) THEN
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

------------------------------------------------------------------------------
-- For the scheduler.
------------------------------------------------------------------------------

-- Running tries whose worker incarnation has not heartbeated for
-- p_threshold_s: read from the worker rows, then their tries.
CREATE FUNCTION dagq.find_zombies(p_threshold_s double precision, p_limit int)
RETURNS TABLE (ti_id bigint, try_number int, max_tries int, dag_id text, task_id text,
               run_id bigint, worker_id text, incarnation uuid, retry_delay_s double precision,
               retry_exponential_backoff boolean, max_retry_delay_s double precision,
               silent_s double precision, worker_group text)
LANGUAGE sql STABLE AS $$
    SELECT t.ti_id, t.try_number, t.max_tries, t.dag_id, t.task_id, t.run_id, t.worker_id,
           t.incarnation, extract(epoch FROM t.retry_delay)::float8, t.retry_exponential_backoff,
           extract(epoch FROM t.max_retry_delay)::float8,
           extract(epoch FROM clock_timestamp() - w.heartbeat_at)::float8, t.worker_group
      FROM dagq.worker w
      JOIN dagq.task_instance t
        ON t.state = 'running' AND t.worker_id = w.worker_id AND t.incarnation = w.incarnation
     WHERE w.heartbeat_at < clock_timestamp() - make_interval(secs => p_threshold_s)
     ORDER BY t.ti_id
     LIMIT p_limit;
$$;

-- Ends a try that is taken away from its silent worker (a zombie): up_for_retry
-- after p_retry_in_s if tries are left, else failed. The worker's row is
-- locked and its heartbeat read again first: a heartbeat that committed
-- since find_zombies looked wins, and nothing is taken away. Fenced on the
-- try number, 'running' and the incarnation. Writes a zombie event (and
-- task_failed / task_retry). Returns the new state or NULL.
CREATE FUNCTION dagq.abandon_try(p_ti_id bigint, p_try int, p_worker text, p_incarnation uuid,
                                 p_threshold_s double precision, p_retry_in_s double precision,
                                 p_note text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    fin dagq.task_instance;
    hb timestamptz;
BEGIN
    SELECT w.heartbeat_at INTO hb FROM dagq.worker w
     WHERE w.worker_id = p_worker AND w.incarnation = p_incarnation
       FOR UPDATE;
    IF FOUND AND hb >= clock_timestamp() - make_interval(secs => p_threshold_s) THEN
        RETURN NULL;
    END IF;
    IF NOT dagq.fence_try(p_ti_id, p_try, 'running', p_worker, p_incarnation) THEN
        RETURN NULL;
    END IF;
    UPDATE dagq.task_instance t
       SET state = CASE WHEN t.try_number < t.max_tries THEN 'up_for_retry' ELSE 'failed' END,
           ended_at = clock_timestamp(),
           next_retry_at = CASE WHEN t.try_number < t.max_tries THEN dagq.retry_at(p_retry_in_s) END,
           end_pending = t.try_number >= t.max_tries AND t.n_downstream > 0,
           note = p_note
     WHERE t.ti_id = p_ti_id
    RETURNING * INTO fin;
    UPDATE dagq.task_try SET state = fin.state, ended_at = clock_timestamp(), note = p_note
     WHERE ti_id = p_ti_id AND try_number = p_try;
    PERFORM dagq.emit('zombie', fin.dag_id, fin.run_id, fin.task_id, fin.ti_id, fin.try_number,
                      fin.state, p_note);
    PERFORM dagq.emit(CASE fin.state WHEN 'failed' THEN 'task_failed' ELSE 'task_retry' END,
                      fin.dag_id, fin.run_id, fin.task_id, fin.ti_id, fin.try_number, fin.state,
                      p_note);
    PERFORM pg_notify('dagq', fin.run_id::text);
    RETURN fin.state;
END;
$$;

-- Tries left 'queued' longer than p_timeout_s since their last push: the
-- message may have been lost (a crash between commit and push, a broker that
-- lost it). Same try number; the caller pushes them again. Bounded per
-- worker group by the free slots of its live workers (none without live
-- workers: their stream holds the messages until a worker comes), so a
-- group's queue never grows by its whole backlog; at most p_limit in all.
CREATE OR REPLACE FUNCTION dagq.requeue_stale(p_timeout_s double precision, p_limit int)
RETURNS TABLE (ti_id bigint, try_number int, dag_id text, task_id text, run_id bigint,
               worker_group text, queued_at_us bigint)
LANGUAGE sql AS $$
    WITH free AS (
        SELECT g.worker_group, sum(greatest(w.slots - w.running, 0))::int AS n
          FROM dagq.worker w CROSS JOIN LATERAL unnest(w.groups) AS g(worker_group)
         WHERE w.state = 'up' AND w.heartbeat_at >= clock_timestamp() - interval '60 seconds'
         GROUP BY g.worker_group
    ), pick AS (
        SELECT s.ti_id FROM free f
         CROSS JOIN LATERAL (SELECT x.ti_id FROM dagq.task_instance x
                              WHERE x.state = 'queued' AND x.worker_group = f.worker_group
                                AND x.pushed_at < clock_timestamp() - make_interval(secs => p_timeout_s)
                              ORDER BY x.pushed_at
                              LIMIT LEAST(f.n, p_limit)
                                FOR UPDATE SKIP LOCKED) s
         LIMIT p_limit
    )
    UPDATE dagq.task_instance t
       SET pushed_at = clock_timestamp()
      FROM pick
     WHERE t.ti_id = pick.ti_id AND t.state = 'queued'
    RETURNING t.ti_id, t.try_number, t.dag_id, t.task_id, t.run_id, t.worker_group,
              (extract(epoch FROM t.queued_at) * 1000000)::bigint;
$$;

-- Worker groups with queued tries and no live worker (heartbeat in the last
-- 60 s, state up): the scheduler says so in its log.
CREATE FUNCTION dagq.groups_without_workers()
RETURNS TABLE (worker_group text, queued bigint, oldest_queued_s double precision)
LANGUAGE sql STABLE AS $$
    SELECT q.worker_group, q.n, q.age
      FROM (SELECT t.worker_group, count(*) AS n,
                   extract(epoch FROM clock_timestamp() - min(t.queued_at))::float8 AS age
              FROM dagq.task_instance t WHERE t.state = 'queued' GROUP BY t.worker_group) q
     WHERE NOT EXISTS (SELECT 1 FROM dagq.worker w
                        WHERE w.state = 'up'
                          AND w.heartbeat_at >= clock_timestamp() - interval '60 seconds'
                          AND q.worker_group = ANY (w.groups));
$$;

-- A task instance whose command cannot be rendered fails, with the reason.
CREATE FUNCTION dagq.fail_unrendered(p_ti_id bigint, p_note text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    fin dagq.task_instance;
BEGIN
    UPDATE dagq.task_instance t
       SET state = 'failed', ended_at = clock_timestamp(), note = p_note,
           end_pending = t.n_downstream > 0
     WHERE t.ti_id = p_ti_id AND t.state = 'scheduled'
    RETURNING * INTO fin;
    IF FOUND THEN
        PERFORM dagq.emit('task_failed', fin.dag_id, fin.run_id, fin.task_id, fin.ti_id,
                          fin.try_number, fin.state, p_note);
    END IF;
END;
$$;

-- A DAG the scheduler cannot evaluate is parked until its definition is
-- edited; a dag_parked event says why. Returns false if it was parked
-- already (no second event).
CREATE FUNCTION dagq.park_dag(p_dag_id text, p_reason text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE dagq.dag SET parked_reason = p_reason, parked_at = clock_timestamp()
     WHERE dag_id = p_dag_id AND parked_reason IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM dagq.emit('dag_parked', p_dag_id, p_note => p_reason);
    RETURN true;
END;
$$;

-- Rows of workers gone (or silent) for a day, that hold no running try.
CREATE FUNCTION dagq.prune_workers(p_older_than interval DEFAULT '1 day') RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    DELETE FROM dagq.worker w
     WHERE w.heartbeat_at < clock_timestamp() - p_older_than
       AND NOT EXISTS (SELECT 1 FROM dagq.task_instance t
                        WHERE t.state = 'running' AND t.worker_id = w.worker_id
                          AND t.incarnation = w.incarnation);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- What workers call waits at most 2 s for a row lock (a user's open
-- transaction holding a try, say): the call fails, the worker tries again,
-- and its loop goes on heartbeating. Set on the functions, not the session,
-- so that it holds through a transaction-pooling PgBouncer too.
ALTER FUNCTION dagq.worker_heartbeat(text, uuid, text, int, text[], int, int, text) SET lock_timeout = '2s';
ALTER FUNCTION dagq.worker_gone(text, uuid) SET lock_timeout = '2s';
ALTER FUNCTION dagq.claim_try(bigint, int, text, uuid, text) SET lock_timeout = '2s';
ALTER FUNCTION dagq.finish_try(bigint, int, text, uuid, boolean, int, double precision, text, text, bigint) SET lock_timeout = '2s';
ALTER FUNCTION dagq.release_try(bigint, int, text, uuid, text) SET lock_timeout = '2s';
