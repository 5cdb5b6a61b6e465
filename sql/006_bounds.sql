-- dagq metastore, migration 006: bounds on what a definition may hold, and
-- parking for what still cannot be scheduled.
--
-- No value a row can hold may stop scheduling for other DAGs. The database
-- rejects at write time, naming the column and the bound, every value dagq
-- cannot schedule (dates it cannot convert, retries and delays that
-- overflow, ...). A DAG that still fails at run time (a row written before
-- these checks existed, a schedule the scheduler's own parser disagrees
-- with) is parked: dag.parked_reason says why, the scheduler creates and
-- starts no runs for it until its definition is edited (any edit unparks),
-- and every other DAG goes on.
--
-- The bounds, in one place (README "Limits and guarantees" states them):
--   dates (start_date, end_date, a run's logical_date): finite, from
--     1970-01-01 up to but excluding 9000-01-01 UTC
--   retries 0..1000; retry_delay, max_retry_delay 0..365 days;
--   execution_timeout above 0, at most 365 days
--   priority -1000000..1000000; pool_slots 1..1000000; pool slots 0..1000000
--   max_active_runs 1..10000; max_active_tasks 1..100000
--   params, env, a run's conf: JSON objects of at most 65536 bytes
--   command: at most 1 MiB

ALTER TABLE dagq.dag ADD COLUMN parked_reason text, ADD COLUMN parked_at timestamptz;
ALTER TABLE dagq.dag_run ADD COLUMN note text;

CREATE FUNCTION dagq.date_problem(p_what text, p_value timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_value IS NULL THEN NULL
                WHEN NOT isfinite(p_value) OR p_value < '1970-01-01 00:00:00+00'
                     OR p_value >= '9000-01-01 00:00:00+00'
                THEN format('%s %s is out of range: dates must lie from 1970-01-01 up to 9000-01-01 UTC',
                            p_what, p_value)
           END
$$;

CREATE FUNCTION dagq.json_problem(p_what text, p_value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) IS DISTINCT FROM 'object'
                THEN format('%s must be a JSON object, got %s', p_what, COALESCE(p_value::text, 'NULL'))
                WHEN octet_length(p_value::text) > 65536
                THEN format('%s is %s bytes, more than the 65536 allowed', p_what, octet_length(p_value::text))
           END
$$;

-- The first problem of a DAG row, or NULL. Used by the trigger below (which
-- raises it) and by the migration (which parks DAGs written before it).
CREATE FUNCTION dagq.dag_problem(d dagq.dag, p_check_timezone boolean DEFAULT true) RETURNS text
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
    RETURN dagq.json_problem('params', d.params);
END;
$$;

CREATE OR REPLACE FUNCTION dagq.dag_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    err text;
BEGIN
    err := dagq.dag_problem(NEW, TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone);
    IF err IS NOT NULL THEN
        IF NEW.dag_id IS NOT NULL AND dagq.name_ok(NEW.dag_id) THEN
            err := format('dagq.dag "%s": %s', NEW.dag_id, err);
        ELSE
            err := 'dagq.dag: ' || err;
        END IF;
        RAISE EXCEPTION '%', err USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        IF NEW.schedule IS DISTINCT FROM OLD.schedule OR NEW.timezone IS DISTINCT FROM OLD.timezone
           OR NEW.start_date IS DISTINCT FROM OLD.start_date OR NEW.end_date IS DISTINCT FROM OLD.end_date
           OR NEW.catchup IS DISTINCT FROM OLD.catchup THEN
            NEW.next_dagrun_start := NULL;
            NEW.next_dagrun_end := NULL;
        END IF;
        -- an edit is the author's answer to whatever parked the DAG
        NEW.parked_reason := NULL;
        NEW.parked_at := NULL;
        -- a raised max_active_runs/tasks or an unparked DAG can make work
        PERFORM pg_notify('dagq', 'dag');
    ELSE
        NEW.next_dagrun_start := NULL;
        NEW.next_dagrun_end := NULL;
        PERFORM pg_notify('dagq', 'dag'); -- a new schedule to look at
    END IF;
    RETURN NEW;
END;
$$;

-- The first problem of a task row, or NULL.
CREATE FUNCTION dagq.task_problem(t dagq.task) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    bad text;
BEGIN
    IF NOT dagq.name_ok(t.task_id) THEN
        RETURN format('task_id "%s" of DAG "%s" is not valid: use 1-250 letters, digits, "_", "." or "-", starting with a letter or digit', t.task_id, t.dag_id);
    END IF;
    IF t.kind IS DISTINCT FROM 'shell' THEN
        RETURN format('unknown kind "%s" (known kinds: shell)', t.kind);
    END IF;
    IF t.command IS NULL OR btrim(t.command) = '' THEN
        RETURN 'a shell task needs a command';
    END IF;
    IF octet_length(t.command) > 1048576 THEN
        RETURN format('command is %s bytes, more than the 1048576 allowed', octet_length(t.command));
    END IF;
    IF t.worker_group IS NOT NULL AND NOT dagq.group_name_ok(t.worker_group) THEN
        RETURN format('worker_group "%s" is not a valid worker group name (1-100 letters, digits, "_", "." or "-")', t.worker_group);
    END IF;
    IF t.retries < 0 THEN
        RETURN format('retries must not be negative, got %s', t.retries);
    END IF;
    IF t.retries > 1000 THEN
        RETURN format('retries must be at most 1000, got %s', t.retries);
    END IF;
    IF t.retry_delay < interval '0' THEN
        RETURN format('retry_delay must not be negative, got %s', t.retry_delay);
    END IF;
    IF t.retry_delay > interval '365 days' THEN
        RETURN format('retry_delay must be at most 365 days, got %s', t.retry_delay);
    END IF;
    IF t.max_retry_delay < interval '0' THEN
        RETURN format('max_retry_delay must not be negative, got %s', t.max_retry_delay);
    END IF;
    IF t.max_retry_delay > interval '365 days' THEN
        RETURN format('max_retry_delay must be at most 365 days, got %s', t.max_retry_delay);
    END IF;
    IF t.execution_timeout IS NOT NULL AND t.execution_timeout <= interval '0' THEN
        RETURN format('execution_timeout must be positive, got %s', t.execution_timeout);
    END IF;
    IF t.execution_timeout > interval '365 days' THEN
        RETURN format('execution_timeout must be at most 365 days, got %s', t.execution_timeout);
    END IF;
    IF t.priority < -1000000 OR t.priority > 1000000 THEN
        RETURN format('priority must be from -1000000 to 1000000, got %s', t.priority);
    END IF;
    IF t.trigger_rule IS NULL OR t.trigger_rule NOT IN ('all_success', 'all_failed', 'all_done', 'one_success',
                                                        'one_failed', 'none_failed', 'always') THEN
        RETURN format('unknown trigger_rule "%s" (known: all_success, all_failed, all_done, one_success, one_failed, none_failed, always)', t.trigger_rule);
    END IF;
    IF t.pool IS NOT NULL AND NOT dagq.name_ok(t.pool) THEN
        RETURN format('pool "%s" is not a valid pool name (1-250 letters, digits, "_", "." or "-")', t.pool);
    END IF;
    IF t.pool_slots < 1 OR t.pool_slots > 1000000 THEN
        RETURN format('pool_slots must be from 1 to 1000000, got %s', t.pool_slots);
    END IF;
    IF jsonb_typeof(t.env) IS DISTINCT FROM 'object' THEN
        RETURN format('env must be a JSON object of names to values, got %s', t.env);
    END IF;
    IF octet_length(t.env::text) > 65536 THEN
        RETURN format('env is %s bytes, more than the 65536 allowed', octet_length(t.env::text));
    END IF;
    SELECT key INTO bad FROM jsonb_each(t.env)
        WHERE key !~ '^[A-Za-z_][A-Za-z0-9_]*$' OR jsonb_typeof(value) IN ('object', 'array', 'null')
        LIMIT 1;
    IF bad IS NOT NULL THEN
        RETURN format('env entry "%s" is not valid: names are shell variable names and values are strings, numbers or booleans', bad);
    END IF;
    RETURN NULL;
END;
$$;

-- Editing any part of a parked DAG's definition (its tasks, its edges)
-- unparks it: the scheduler tries it again.
CREATE FUNCTION dagq.unpark(p_dag_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE dagq.dag SET parked_reason = NULL, parked_at = NULL
     WHERE dag_id = p_dag_id AND parked_reason IS NOT NULL;
    IF FOUND THEN
        PERFORM pg_notify('dagq', 'dag');
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION dagq.task_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    err text;
BEGIN
    err := dagq.task_problem(NEW);
    IF err IS NOT NULL THEN
        IF err LIKE 'task_id %' THEN
            RAISE EXCEPTION 'dagq.task: %', err USING ERRCODE = 'check_violation';
        END IF;
        RAISE EXCEPTION 'dagq.task "%.%": %', NEW.dag_id, NEW.task_id, err USING ERRCODE = 'check_violation';
    END IF;
    PERFORM dagq.unpark(NEW.dag_id);
    RETURN NEW;
END;
$$;

CREATE FUNCTION dagq.definition_unpark() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM dagq.unpark(OLD.dag_id);
        RETURN OLD;
    END IF;
    PERFORM dagq.unpark(NEW.dag_id);
    RETURN NEW;
END;
$$;

CREATE TRIGGER task_delete_unpark AFTER DELETE ON dagq.task
    FOR EACH ROW EXECUTE FUNCTION dagq.definition_unpark();
CREATE TRIGGER dependency_unpark AFTER INSERT OR UPDATE OR DELETE ON dagq.task_dependency
    FOR EACH ROW EXECUTE FUNCTION dagq.definition_unpark();

CREATE OR REPLACE FUNCTION dagq.pool_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND (TG_OP = 'DELETE' OR NEW.pool <> OLD.pool) THEN
        SELECT dag_id, task_id, count(*) OVER () AS n INTO t FROM dagq.task WHERE pool = OLD.pool LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'dagq.pool "%": cannot % it: % task(s) use it, such as "%.%"', OLD.pool,
                CASE TG_OP WHEN 'DELETE' THEN 'delete' ELSE 'rename' END, t.n, t.dag_id, t.task_id
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'move those tasks to another pool (UPDATE dagq.task SET pool = ...) first';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF NOT dagq.name_ok(NEW.pool) THEN
        RAISE EXCEPTION 'dagq.pool: pool "%" is not valid: use 1-250 letters, digits, "_", "." or "-", starting with a letter or digit', NEW.pool
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.slots IS NULL OR NEW.slots < 0 OR NEW.slots > 1000000 THEN
        RAISE EXCEPTION 'dagq.pool "%": slots must be from 0 to 1000000, got %', NEW.pool, NEW.slots
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.slots > 0 THEN
        SELECT dag_id, task_id, pool_slots INTO t FROM dagq.task
         WHERE pool = NEW.pool AND pool_slots > NEW.slots ORDER BY pool_slots DESC LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'dagq.pool "%": % slots are fewer than task "%.%" needs (%)', NEW.pool, NEW.slots, t.dag_id, t.task_id, t.pool_slots
                USING ERRCODE = 'check_violation',
                      HINT = 'use at least that many slots, or 0 to hold the pool back';
        END IF;
    END IF;
    -- a pool raised or created can let held task instances run at once
    PERFORM pg_notify('dagq', 'pool');
    RETURN NEW;
END;
$$;

-- DAGs written before these checks that break one now are parked, with the
-- problem named, instead of failing every scheduling pass.
UPDATE dagq.dag d SET parked_reason = p.problem, parked_at = now()
  FROM (SELECT x.dag_id, COALESCE(dagq.dag_problem(x),
               (SELECT format('task "%s": %s', t.task_id, dagq.task_problem(t))
                  FROM dagq.task t WHERE t.dag_id = x.dag_id AND dagq.task_problem(t) IS NOT NULL
                 ORDER BY t.task_id LIMIT 1)) AS problem
          FROM dagq.dag x) p
 WHERE d.dag_id = p.dag_id AND p.problem IS NOT NULL;
