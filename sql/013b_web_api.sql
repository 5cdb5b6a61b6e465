-- dagq metastore, migration 013b: the JSON of dagq-web's REST API
-- (/api/v1/, described in web/openapi.json). Each endpoint is one function
-- call: reads are SECURITY INVOKER and run as the request's token role
-- (granted to dagq_viewer), writes check their body and call the same
-- operator functions the CLI calls, so GRANTs, row-level security and
-- dagq.require_operate decide. A read of something that does not exist
-- returns NULL (dagq-web answers 404). Times are ISO 8601 in the session's
-- time zone (dagq-web sets UTC).

-- limit and offset, checked: raises 22023 naming the parameter
CREATE FUNCTION dagq.web_page(p_limit int, p_offset int, p_max int DEFAULT 1000) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > p_max THEN
        RAISE EXCEPTION 'limit must be 1 to %, got %', p_max, p_limit USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_offset IS NULL OR p_offset < 0 THEN
        RAISE EXCEPTION 'offset must be 0 or more, got %', p_offset USING ERRCODE = 'invalid_parameter_value';
    END IF;
END;
$$;

CREATE FUNCTION dagq.web_whoami(p_token text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('token', p_token, 'role', dagq.caller(),
                              'operator', pg_has_role(dagq.caller(), 'dagq_operator', 'MEMBER'),
                              'author', pg_has_role(dagq.caller(), 'dagq_author', 'MEMBER'),
                              'admin', pg_has_role(dagq.caller(), 'dagq_admin', 'MEMBER'))
$$;

CREATE FUNCTION dagq.web_run_json(r dagq.dag_run) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('run_id', r.run_id, 'dag_id', r.dag_id, 'run_type', r.run_type,
               'state', r.state, 'logical_date', r.logical_date,
               'data_interval_start', r.data_interval_start, 'data_interval_end', r.data_interval_end,
               'conf', r.conf, 'note', r.note, 'created_at', r.created_at,
               'started_at', r.started_at, 'ended_at', r.ended_at,
               'duration_s', extract(epoch FROM COALESCE(r.ended_at, clock_timestamp()) - r.started_at)::float8)
$$;

CREATE FUNCTION dagq.web_dags(p_limit int, p_offset int, p_paused boolean, p_q text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    res jsonb;
BEGIN
    PERFORM dagq.web_page(p_limit, p_offset);
    WITH sel AS (
        SELECT d.* FROM dagq.dag d
         WHERE (p_paused IS NULL OR d.is_paused = p_paused)
           AND (p_q IS NULL OR strpos(lower(d.dag_id), lower(p_q)) > 0
                OR strpos(lower(COALESCE(d.description, '')), lower(p_q)) > 0
                OR strpos(lower(COALESCE(d.owner::text, '')), lower(p_q)) > 0)
    ), page AS (
        SELECT * FROM sel ORDER BY dag_id LIMIT p_limit OFFSET p_offset
    )
    SELECT jsonb_build_object(
        'total', (SELECT count(*) FROM sel), 'limit', p_limit, 'offset', p_offset,
        'dags', COALESCE((SELECT jsonb_agg(jsonb_build_object(
            'dag_id', d.dag_id, 'description', d.description, 'owner', d.owner,
            'schedule', d.schedule, 'timezone', d.timezone, 'is_paused', d.is_paused,
            'parked_reason', d.parked_reason,
            'next_run', CASE WHEN d.schedule IS NOT NULL AND d.next_dagrun_end <> 'infinity'
                             THEN d.next_dagrun_end END,
            'tasks', (SELECT count(*) FROM dagq.task t WHERE t.dag_id = d.dag_id),
            'active_runs', (SELECT count(*) FROM dagq.dag_run r
                             WHERE r.dag_id = d.dag_id AND r.state IN ('queued', 'running')),
            'last_runs', COALESCE((SELECT jsonb_agg(jsonb_build_object('run_id', x.run_id, 'state', x.state,
                                                                       'logical_date', x.logical_date)
                                                    ORDER BY x.run_id)
                                     FROM (SELECT r.run_id, r.state, r.logical_date FROM dagq.dag_run r
                                            WHERE r.dag_id = d.dag_id ORDER BY r.run_id DESC LIMIT 10) x),
                                  '[]'))
            ORDER BY d.dag_id) FROM page d), '[]'))
      INTO res;
    RETURN res;
END;
$$;

-- A DAG's definition: tasks, edges, schedule, next run.
CREATE FUNCTION dagq.web_dag(p_dag text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'dag_id', d.dag_id, 'description', d.description, 'owner', d.owner,
        'schedule', d.schedule, 'timezone', d.timezone, 'start_date', d.start_date,
        'end_date', d.end_date, 'catchup', d.catchup, 'is_paused', d.is_paused,
        'max_active_runs', d.max_active_runs, 'max_active_tasks', d.max_active_tasks,
        'default_worker_group', d.default_worker_group, 'params', d.params,
        'parked_reason', d.parked_reason,
        'next_run', CASE WHEN d.schedule IS NOT NULL AND d.next_dagrun_end <> 'infinity'
                         THEN d.next_dagrun_end END,
        'next_data_interval_start', d.next_dagrun_start,
        'tasks', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                     'task_id', t.task_id, 'kind', t.kind, 'command', t.command,
                     'worker_group', COALESCE(t.worker_group, d.default_worker_group),
                     'retries', t.retries, 'trigger_rule', t.trigger_rule, 'priority', t.priority,
                     'pool', t.pool, 'pool_slots', t.pool_slots,
                     'execution_timeout_s', extract(epoch FROM t.execution_timeout)::float8)
                     ORDER BY t.task_id) FROM dagq.task t WHERE t.dag_id = d.dag_id), '[]'),
        'edges', COALESCE((SELECT jsonb_agg(jsonb_build_array(e.upstream_task_id, e.task_id)
                                            ORDER BY e.upstream_task_id, e.task_id)
                             FROM dagq.task_dependency e WHERE e.dag_id = d.dag_id), '[]'))
      FROM dagq.dag d WHERE d.dag_id = p_dag
$$;

CREATE FUNCTION dagq.web_runs(p_dag text, p_limit int, p_offset int, p_state text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    res jsonb;
BEGIN
    PERFORM dagq.web_page(p_limit, p_offset);
    IF p_state IS NOT NULL AND p_state NOT IN ('queued', 'running', 'success', 'failed') THEN
        RAISE EXCEPTION 'state must be queued, running, success or failed, got "%"', p_state
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dagq.dag WHERE dag_id = p_dag) THEN
        RETURN NULL;
    END IF;
    SELECT jsonb_build_object(
        'total', (SELECT count(*) FROM dagq.dag_run r
                   WHERE r.dag_id = p_dag AND (p_state IS NULL OR r.state = p_state)),
        'limit', p_limit, 'offset', p_offset,
        'runs', COALESCE((SELECT jsonb_agg(dagq.web_run_json(x) ORDER BY x.run_id DESC)
                            FROM (SELECT * FROM dagq.dag_run r
                                   WHERE r.dag_id = p_dag AND (p_state IS NULL OR r.state = p_state)
                                   ORDER BY r.run_id DESC LIMIT p_limit OFFSET p_offset) x), '[]'))
      INTO res;
    RETURN res;
END;
$$;

-- The grid, compact: the p_runs latest runs (oldest first), the tasks
-- (the definition's and those of the runs, by name), the definition's
-- edges as index pairs, and per run one string with a letter per task:
-- c scheduled, q queued, r running, s success, f failed, y up_for_retry,
-- u upstream_failed, k skipped, - no task instance.
CREATE FUNCTION dagq.web_grid(p_dag text, p_runs int) RETURNS jsonb
LANGUAGE plpgsql STABLE SET work_mem = '32MB' AS $$
DECLARE
    res jsonb;
    v_runs bigint[];
BEGIN
    IF p_runs IS NULL OR p_runs < 1 OR p_runs > 100 THEN
        RAISE EXCEPTION 'runs must be 1 to %, got %', 100, p_runs USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dagq.dag WHERE dag_id = p_dag) THEN
        RETURN NULL;
    END IF;
    -- the runs first, so that their task instances are read by run_id
    -- (the planner cannot know how few runs a subquery yields)
    v_runs := ARRAY(SELECT r.run_id FROM dagq.dag_run r WHERE r.dag_id = p_dag
                     ORDER BY r.run_id DESC LIMIT p_runs);
    WITH tis AS MATERIALIZED (
        SELECT ti.run_id, ti.task_id, ti.state FROM dagq.task_instance ti WHERE ti.run_id = ANY (v_runs)
    ), names AS (
        SELECT t.task_id FROM dagq.task t WHERE t.dag_id = p_dag
        UNION
        SELECT tis.task_id FROM tis
    ), ix AS MATERIALIZED (
        SELECT n.task_id, (row_number() OVER (ORDER BY n.task_id) - 1)::int AS i FROM names n
    ), cells AS (
        SELECT r.run_id,
               string_agg(CASE tis.state WHEN 'scheduled' THEN 'c' WHEN 'queued' THEN 'q'
                              WHEN 'running' THEN 'r' WHEN 'success' THEN 's' WHEN 'failed' THEN 'f'
                              WHEN 'up_for_retry' THEN 'y' WHEN 'upstream_failed' THEN 'u'
                              WHEN 'skipped' THEN 'k' ELSE '-' END, '' ORDER BY ix.i) AS s
          FROM unnest(v_runs) AS r(run_id) CROSS JOIN ix
          LEFT JOIN tis ON tis.run_id = r.run_id AND tis.task_id = ix.task_id
         GROUP BY r.run_id
    )
    SELECT jsonb_build_object(
        'dag_id', p_dag,
        'tasks', COALESCE((SELECT jsonb_agg(ix.task_id ORDER BY ix.i) FROM ix), '[]'),
        'edges', COALESCE((SELECT jsonb_agg(jsonb_build_array(a.i, b.i))
                             FROM dagq.task_dependency e
                             JOIN ix a ON a.task_id = e.upstream_task_id
                             JOIN ix b ON b.task_id = e.task_id
                            WHERE e.dag_id = p_dag), '[]'),
        'runs', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                     'run_id', r.run_id, 'state', r.state, 'run_type', r.run_type,
                     'logical_date', r.logical_date, 'started_at', r.started_at, 'ended_at', r.ended_at)
                     ORDER BY r.run_id) FROM dagq.dag_run r WHERE r.run_id = ANY (v_runs)), '[]'),
        'cells', COALESCE((SELECT jsonb_agg(COALESCE(c.s, '') ORDER BY c.run_id) FROM cells c), '[]'))
      INTO res;
    RETURN res;
END;
$$;

CREATE FUNCTION dagq.web_run(p_run bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT dagq.web_run_json(r) || jsonb_build_object(
               'params', r.params,
               'task_states', COALESCE((SELECT jsonb_object_agg(s.state, s.n)
                                          FROM (SELECT ti.state, count(*) AS n FROM dagq.task_instance ti
                                                 WHERE ti.run_id = r.run_id GROUP BY ti.state) s), '{}'))
      FROM dagq.dag_run r WHERE r.run_id = p_run
$$;

CREATE FUNCTION dagq.web_ti_json(ti dagq.task_instance, p_tries jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'ti_id', ti.ti_id, 'run_id', ti.run_id, 'dag_id', ti.dag_id, 'task_id', ti.task_id,
        'state', ti.state, 'try_number', ti.try_number, 'max_tries', ti.max_tries,
        'worker_group', ti.worker_group, 'worker_id', ti.worker_id, 'hostname', ti.hostname,
        'pool', ti.pool, 'priority', ti.priority, 'queued_at', ti.queued_at,
        'started_at', ti.started_at, 'ended_at', ti.ended_at, 'next_retry_at', ti.next_retry_at,
        'exit_code', ti.exit_code, 'note', ti.note, 'tries', COALESCE(p_tries, '[]'))
$$;

-- A run's task instances, each with every try. Built as json, not jsonb:
-- for a run of 2,000 task instances that is three times faster.
CREATE FUNCTION dagq.web_run_tasks(p_run bigint) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    res json;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dagq.dag_run WHERE run_id = p_run) THEN
        RETURN NULL;
    END IF;
    WITH tis AS MATERIALIZED (
        SELECT * FROM dagq.task_instance ti WHERE ti.run_id = p_run
    ), tries AS (
        SELECT y.ti_id, json_agg(json_build_object(
                   'try_number', y.try_number, 'state', y.state, 'worker_id', y.worker_id,
                   'hostname', y.hostname, 'started_at', y.started_at, 'ended_at', y.ended_at,
                   'exit_code', y.exit_code, 'note', y.note) ORDER BY y.try_number) AS tries
          FROM dagq.task_try y
         WHERE y.ti_id IN (SELECT tis.ti_id FROM tis)
         GROUP BY y.ti_id
    )
    SELECT json_build_object('run_id', p_run, 'tasks', COALESCE(json_agg(json_build_object(
        'ti_id', ti.ti_id, 'run_id', ti.run_id, 'dag_id', ti.dag_id, 'task_id', ti.task_id,
        'state', ti.state, 'try_number', ti.try_number, 'max_tries', ti.max_tries,
        'worker_group', ti.worker_group, 'worker_id', ti.worker_id, 'hostname', ti.hostname,
        'pool', ti.pool, 'priority', ti.priority, 'queued_at', ti.queued_at,
        'started_at', ti.started_at, 'ended_at', ti.ended_at, 'next_retry_at', ti.next_retry_at,
        'exit_code', ti.exit_code, 'note', ti.note, 'tries', COALESCE(tries.tries, '[]'))
        ORDER BY ti.task_id), '[]'))
      INTO res
      FROM tis ti LEFT JOIN tries ON tries.ti_id = ti.ti_id;
    RETURN res;
END;
$$;

CREATE FUNCTION dagq.web_task(p_run bigint, p_task text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT dagq.web_ti_json(ti, (
               SELECT jsonb_agg(jsonb_build_object(
                          'try_number', y.try_number, 'state', y.state, 'worker_id', y.worker_id,
                          'hostname', y.hostname, 'started_at', y.started_at, 'ended_at', y.ended_at,
                          'exit_code', y.exit_code, 'note', y.note,
                          'log', EXISTS (SELECT 1 FROM dagq.task_log g
                                          WHERE g.ti_id = y.ti_id AND g.try_number = y.try_number))
                          ORDER BY y.try_number)
                 FROM dagq.task_try y WHERE y.ti_id = ti.ti_id))
           || jsonb_build_object('command', ti.command, 'trigger_rule', ti.trigger_rule,
                                 'upstream', COALESCE((SELECT jsonb_agg(u.task_id ORDER BY u.task_id)
                                                         FROM dagq.task_instance_dependency e
                                                         JOIN dagq.task_instance u ON u.ti_id = e.upstream_ti_id
                                                        WHERE e.ti_id = ti.ti_id), '[]'))
      FROM dagq.task_instance ti WHERE ti.run_id = p_run AND ti.task_id = p_task
$$;

-- A slice of a try's log, in bytes of its UTF-8 text, from byte p_offset
-- (negative: that many bytes before the end). p_try NULL: the latest try
-- with a log. No row: no such task instance. log_try NULL: no log (yet: the
-- output of a try is stored when it ends).
CREATE FUNCTION dagq.web_log(p_run bigint, p_task text, p_try int, p_offset bigint, p_length bigint)
RETURNS TABLE (state text, try_number int, log_try int, size bigint, truncated_bytes bigint,
               start bigint, chunk bytea)
LANGUAGE sql STABLE AS $$
    SELECT ti.state, ti.try_number, l.try_number, l.size, l.truncated_bytes, l.start,
           substring(l.bytes FROM (l.start + 1)::int FOR LEAST(GREATEST(p_length, 0), 2147483647)::int)
      FROM dagq.task_instance ti
      LEFT JOIN LATERAL (SELECT g.try_number, g.truncated_bytes, b.bytes,
                                octet_length(b.bytes)::bigint AS size,
                                CASE WHEN p_offset < 0 THEN GREATEST(octet_length(b.bytes) + p_offset, 0)
                                     ELSE p_offset END AS start
                           FROM dagq.task_log g
                          CROSS JOIN LATERAL (SELECT convert_to(g.output, 'UTF8') AS bytes) b
                          WHERE g.ti_id = ti.ti_id AND (p_try IS NULL OR g.try_number = p_try)
                          ORDER BY g.try_number DESC LIMIT 1) l ON true
     WHERE ti.run_id = p_run AND ti.task_id = p_task
$$;

-- What `dagq workers`, `dagq queues` (the metastore's side) and `dagq pools` show.
CREATE FUNCTION dagq.web_workers() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('workers', COALESCE(jsonb_agg(jsonb_build_object(
               'worker_id', w.worker_id, 'incarnation', w.incarnation, 'hostname', w.hostname,
               'pid', w.pid, 'groups', to_jsonb(w.groups), 'slots', w.slots, 'running', w.running,
               'state', CASE WHEN w.state <> 'gone'
                              AND w.heartbeat_at < clock_timestamp() - interval '60 seconds'
                             THEN 'lost' ELSE w.state END,
               'started_at', w.started_at, 'heartbeat_at', w.heartbeat_at,
               'heartbeat_age_s', extract(epoch FROM clock_timestamp() - w.heartbeat_at)::float8)
               ORDER BY w.worker_id, w.started_at), '[]'))
      FROM dagq.worker w
$$;

CREATE FUNCTION dagq.web_queues() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('queues', COALESCE(jsonb_agg(jsonb_build_object(
               'worker_group', b.worker_group, 'queued', b.queued, 'ready', b.ready,
               'running', b.running, 'live_workers', b.live_workers, 'free_slots', b.free_slots,
               'oldest_queued_age_s', b.oldest_queued_age_s) ORDER BY b.worker_group), '[]'))
      FROM dagq.worker_group_backlog b
$$;

CREATE FUNCTION dagq.web_pools() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('pools', COALESCE(jsonb_agg(to_jsonb(x) ORDER BY x.pool), '[]'))
      FROM (SELECT p.pool, p.slots, p.description, p.owner,
                   COALESCE(sum(i.pool_slots), 0)::bigint AS used,
                   count(i.ti_id) FILTER (WHERE i.state = 'queued') AS queued,
                   count(i.ti_id) FILTER (WHERE i.state = 'running') AS running,
                   greatest(p.slots - COALESCE(sum(i.pool_slots), 0), 0)::bigint AS free
              FROM dagq.pool p
              LEFT JOIN dagq.task_instance i ON i.pool = p.pool AND i.state IN ('queued', 'running')
             GROUP BY p.pool) x
$$;

CREATE FUNCTION dagq.web_audit(p_limit int, p_offset int) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    res jsonb;
BEGIN
    PERFORM dagq.web_page(p_limit, p_offset);
    SELECT jsonb_build_object('limit', p_limit, 'offset', p_offset,
               'entries', COALESCE(jsonb_agg(to_jsonb(a) ORDER BY a.audit_id DESC), '[]'))
      INTO res
      FROM (SELECT * FROM dagq.audit_log ORDER BY audit_id DESC LIMIT p_limit OFFSET p_offset) a;
    RETURN res;
END;
$$;

------------------------------------------------------------------------------
-- Writes: the body checked, then the operator function the CLI calls.
------------------------------------------------------------------------------

CREATE FUNCTION dagq.api_pause(p_dag text, p_body text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    b jsonb := dagq.api_body(p_body, ARRAY['is_paused']);
    v jsonb := dagq.api_field(b, 'is_paused', 'boolean');
BEGIN
    IF v IS NULL THEN
        RAISE EXCEPTION 'field "is_paused" (true or false) is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v::boolean THEN
        PERFORM dagq.pause(p_dag);
    ELSE
        PERFORM dagq.unpause(p_dag);
    END IF;
    RETURN jsonb_build_object('dag_id', p_dag, 'is_paused', v::boolean);
END;
$$;

CREATE FUNCTION dagq.api_trigger(p_dag text, p_body text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    b jsonb := dagq.api_body(p_body, ARRAY['conf', 'logical_date']);
    conf jsonb := dagq.api_field(b, 'conf', 'object', '{}');
    ld timestamptz := dagq.api_time(b, 'logical_date', now());
BEGIN
    RETURN jsonb_build_object('run_id', dagq.trigger_dag(p_dag, conf, ld));
END;
$$;

CREATE FUNCTION dagq.api_clear(p_run bigint, p_body text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    b jsonb := dagq.api_body(p_body, ARRAY['task_ids', 'downstream', 'only_failed', 'dry_run']);
    dry boolean := dagq.api_field(b, 'dry_run', 'boolean', 'false')::boolean;
    res jsonb;
BEGIN
    SELECT jsonb_build_object('run_id', p_run, 'dry_run', dry, 'count', count(*),
               'task_instances', COALESCE(jsonb_agg(jsonb_build_object('task_id', c.task_id,
                                                                       'state', c.state)
                                                    ORDER BY c.task_id), '[]'))
      INTO res
      FROM dagq.clear_tasks(p_run, dagq.api_task_ids(b),
                            dagq.api_field(b, 'downstream', 'boolean', 'false')::boolean,
                            dagq.api_field(b, 'only_failed', 'boolean', 'false')::boolean, dry) c;
    RETURN res;
END;
$$;

-- The actions of migration 011 (dagq.mark, dagq.stop, dagq.backfill), with
-- their bodies as the CLI's options.
CREATE FUNCTION dagq.api_mark(p_run bigint, p_task text, p_body text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    b jsonb := dagq.api_body(p_body, ARRAY['state', 'downstream']);
    st jsonb := dagq.api_field(b, 'state', 'string');
    down boolean := COALESCE((dagq.api_field(b, 'downstream', 'boolean', 'false'))::text::boolean, false);
    n int;
BEGIN
    IF st IS NULL OR st #>> '{}' NOT IN ('success', 'failed') THEN
        RAISE EXCEPTION 'field "state" must be "success" or "failed"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    n := dagq.mark(p_run, p_task, st #>> '{}', down);
    RETURN jsonb_build_object('run_id', p_run, 'task_id', p_task, 'state', st, 'downstream', down,
                              'marked', n);
END;
$$;

-- {"task_ids": [...]} stops those task instances; no task_ids stops the run
CREATE FUNCTION dagq.api_stop(p_run bigint, p_body text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    b jsonb := dagq.api_body(p_body, ARRAY['task_ids']);
    ids text[] := dagq.api_task_ids(b);
    n int := 0;
    t text;
BEGIN
    IF ids IS NULL OR cardinality(ids) = 0 THEN
        n := dagq.stop(p_run);
    ELSE
        FOREACH t IN ARRAY ids LOOP
            n := n + dagq.stop(p_run, t);
        END LOOP;
    END IF;
    RETURN jsonb_build_object('run_id', p_run, 'stopped', n);
END;
$$;

-- {"from", "to": wall-clock times in the DAG's time zone (as `dagq
-- backfill`), "reprocess", "reverse", "max_active_runs", "conf", "dry_run"}
-- The body of a backfill request, as the arguments of dagq.backfill.
CREATE FUNCTION dagq.api_backfill_args(p_body text, OUT lo timestamp, OUT hi timestamp,
                                       OUT reprocess text, OUT reverse boolean,
                                       OUT max_active_runs int, OUT conf jsonb)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    b jsonb := dagq.api_body(p_body, ARRAY['from', 'to', 'reprocess', 'reverse', 'max_active_runs',
                                         'conf']);
    f jsonb := dagq.api_field(b, 'from', 'string');
    t jsonb := dagq.api_field(b, 'to', 'string');
BEGIN
    IF f IS NULL OR t IS NULL THEN
        RAISE EXCEPTION 'fields "from" and "to" are required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        lo := (f #>> '{}')::timestamp;
        hi := (t #>> '{}')::timestamp;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
        RAISE EXCEPTION 'fields "from" and "to" must be dates or wall-clock times (in the DAG''s time zone)'
            USING ERRCODE = 'invalid_datetime_format';
    END;
    reprocess := COALESCE(dagq.api_field(b, 'reprocess', 'string', '"none"') #>> '{}', 'none');
    reverse := (dagq.api_field(b, 'reverse', 'boolean', 'false'))::text::boolean;
    max_active_runs := (dagq.api_field(b, 'max_active_runs', 'number') #>> '{}')::int;
    conf := dagq.api_field(b, 'conf', 'object', '{}');
END;
$$;

CREATE FUNCTION dagq.api_backfill(p_dag text, p_body text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('dag_id', p_dag, 'backfill_id',
                              dagq.backfill(p_dag, a.lo, a.hi, a.reprocess, a.reverse,
                                            a.max_active_runs, a.conf))
      FROM dagq.api_backfill_args(p_body) a;
$$;

-- What a backfill would run, creating nothing: a read, which a viewer may
-- make too (as with dagq backfill --dry-run).
CREATE FUNCTION dagq.api_backfill_plan(p_dag text, p_body text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('dag_id', p_dag, 'intervals',
               COALESCE((SELECT jsonb_agg(to_jsonb(x) ORDER BY x.seq)
                           FROM dagq.backfill_plan(p_dag, a.lo, a.hi, a.reprocess, a.reverse) x),
                        '[]'))
      FROM dagq.api_backfill_args(p_body) a;
$$;

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'dagq.web_page(int, int, int)', 'dagq.web_whoami(text)', 'dagq.web_run_json(dagq.dag_run)',
        'dagq.web_dags(int, int, boolean, text)', 'dagq.web_dag(text)',
        'dagq.web_runs(text, int, int, text)', 'dagq.web_grid(text, int)', 'dagq.web_run(bigint)',
        'dagq.web_ti_json(dagq.task_instance, jsonb)', 'dagq.web_run_tasks(bigint)',
        'dagq.web_task(bigint, text)', 'dagq.web_log(bigint, text, int, bigint, bigint)',
        'dagq.web_workers()', 'dagq.web_queues()', 'dagq.web_pools()', 'dagq.web_audit(int, int)',
        'dagq.api_body(text, text[])', 'dagq.api_field(jsonb, text, text, jsonb)',
        'dagq.api_task_ids(jsonb, text)', 'dagq.api_time(jsonb, text, timestamptz)',
        'dagq.api_pause(text, text)',
        'dagq.api_trigger(text, text)', 'dagq.api_clear(bigint, text)',
        'dagq.api_mark(bigint, text, text)', 'dagq.api_stop(bigint, text)',
        'dagq.api_backfill_args(text)', 'dagq.api_backfill(text, text)',
        'dagq.api_backfill_plan(text, text)'] LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO dagq_viewer', f);
    END LOOP;
END;
$$;

-- The write wrappers only pass a request on to the operator functions, which
-- check the caller themselves (dagq.caller() is the token's role either
-- way); like every state-changing function a role may call, they run as
-- their owner with a fixed search_path.
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'dagq.api_pause(text, text)', 'dagq.api_trigger(text, text)', 'dagq.api_clear(bigint, text)',
        'dagq.api_mark(bigint, text, text)', 'dagq.api_stop(bigint, text)',
        'dagq.api_backfill(text, text)'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp', f);
    END LOOP;
END;
$$;
