-- dagq metastore, migration 003: the database rejects a DAG that cannot run,
-- with an error that names the problem (SQLSTATE 23514 check_violation, or
-- 22023 for bad values), whether it comes from psql, an ETL tool or the CLI.

-- Names of DAGs, tasks and worker groups: safe as Redis keys, Kafka topic
-- names and file names.
CREATE FUNCTION dagq.name_ok(name text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,249}$'
$$;

CREATE FUNCTION dagq.group_name_ok(name text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'
$$;

CREATE FUNCTION dagq.dag_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    err text;
BEGIN
    IF NOT dagq.name_ok(NEW.dag_id) THEN
        RAISE EXCEPTION 'dagq.dag: dag_id "%" is not valid: use 1-250 letters, digits, "_", "." or "-", starting with a letter or digit', NEW.dag_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.schedule IS NOT NULL THEN
        err := dagq.cron_check(NEW.schedule);
        IF err IS NOT NULL THEN
            RAISE EXCEPTION 'dagq.dag "%": schedule "%" is not valid: %', NEW.dag_id, NEW.schedule, err
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF (TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone)
       AND (NEW.timezone IS NULL OR NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = NEW.timezone)) THEN
        RAISE EXCEPTION 'dagq.dag "%": timezone "%" is not a known IANA time zone name', NEW.dag_id, NEW.timezone
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.end_date IS NOT NULL AND NEW.start_date IS NOT NULL AND NEW.end_date <= NEW.start_date THEN
        RAISE EXCEPTION 'dagq.dag "%": end_date % is not after start_date %', NEW.dag_id, NEW.end_date, NEW.start_date
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.max_active_runs < 1 THEN
        RAISE EXCEPTION 'dagq.dag "%": max_active_runs must be at least 1, got %', NEW.dag_id, NEW.max_active_runs
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.max_active_tasks < 1 THEN
        RAISE EXCEPTION 'dagq.dag "%": max_active_tasks must be at least 1, got %', NEW.dag_id, NEW.max_active_tasks
            USING ERRCODE = 'check_violation';
    END IF;
    IF NOT dagq.group_name_ok(NEW.default_worker_group) THEN
        RAISE EXCEPTION 'dagq.dag "%": default_worker_group "%" is not a valid worker group name (1-100 letters, digits, "_", "." or "-")', NEW.dag_id, NEW.default_worker_group
            USING ERRCODE = 'check_violation';
    END IF;
    IF jsonb_typeof(NEW.params) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'dagq.dag "%": params must be a JSON object, got %', NEW.dag_id, NEW.params
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        IF NEW.schedule IS DISTINCT FROM OLD.schedule OR NEW.timezone IS DISTINCT FROM OLD.timezone
           OR NEW.start_date IS DISTINCT FROM OLD.start_date OR NEW.end_date IS DISTINCT FROM OLD.end_date
           OR NEW.catchup IS DISTINCT FROM OLD.catchup THEN
            NEW.next_dagrun_start := NULL;
            NEW.next_dagrun_end := NULL;
        END IF;
    ELSE
        NEW.next_dagrun_start := NULL;
        NEW.next_dagrun_end := NULL;
    END IF;
    RETURN NEW;
END;
$$;

-- Only on the columns a user defines: the scheduler's bookkeeping updates
-- (next_dagrun_*) and pause/unpause skip validation.
CREATE TRIGGER dag_validate
    BEFORE INSERT OR UPDATE OF dag_id, description, schedule, timezone, start_date, end_date,
                              catchup, max_active_runs, max_active_tasks, default_worker_group,
                              params
    ON dagq.dag
    FOR EACH ROW EXECUTE FUNCTION dagq.dag_validate();

CREATE FUNCTION dagq.task_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad text;
BEGIN
    IF NOT dagq.name_ok(NEW.task_id) THEN
        RAISE EXCEPTION 'dagq.task: task_id "%" of DAG "%" is not valid: use 1-250 letters, digits, "_", "." or "-", starting with a letter or digit', NEW.task_id, NEW.dag_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.kind IS DISTINCT FROM 'shell' THEN
        RAISE EXCEPTION 'dagq.task "%.%": unknown kind "%" (known kinds: shell)', NEW.dag_id, NEW.task_id, NEW.kind
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.command IS NULL OR btrim(NEW.command) = '' THEN
        RAISE EXCEPTION 'dagq.task "%.%": a shell task needs a command', NEW.dag_id, NEW.task_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.worker_group IS NOT NULL AND NOT dagq.group_name_ok(NEW.worker_group) THEN
        RAISE EXCEPTION 'dagq.task "%.%": worker_group "%" is not a valid worker group name (1-100 letters, digits, "_", "." or "-")', NEW.dag_id, NEW.task_id, NEW.worker_group
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.retries < 0 THEN
        RAISE EXCEPTION 'dagq.task "%.%": retries must not be negative, got %', NEW.dag_id, NEW.task_id, NEW.retries
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.retry_delay < interval '0' THEN
        RAISE EXCEPTION 'dagq.task "%.%": retry_delay must not be negative, got %', NEW.dag_id, NEW.task_id, NEW.retry_delay
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.max_retry_delay < interval '0' THEN
        RAISE EXCEPTION 'dagq.task "%.%": max_retry_delay must not be negative, got %', NEW.dag_id, NEW.task_id, NEW.max_retry_delay
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.execution_timeout IS NOT NULL AND NEW.execution_timeout <= interval '0' THEN
        RAISE EXCEPTION 'dagq.task "%.%": execution_timeout must be positive, got %', NEW.dag_id, NEW.task_id, NEW.execution_timeout
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.trigger_rule NOT IN ('all_success', 'all_failed', 'all_done', 'one_success',
                                'one_failed', 'none_failed', 'always') THEN
        RAISE EXCEPTION 'dagq.task "%.%": unknown trigger_rule "%" (known: all_success, all_failed, all_done, one_success, one_failed, none_failed, always)', NEW.dag_id, NEW.task_id, NEW.trigger_rule
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.pool IS NOT NULL AND NOT dagq.name_ok(NEW.pool) THEN
        RAISE EXCEPTION 'dagq.task "%.%": pool "%" is not a valid pool name (1-250 letters, digits, "_", "." or "-")', NEW.dag_id, NEW.task_id, NEW.pool
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.pool_slots < 1 THEN
        RAISE EXCEPTION 'dagq.task "%.%": pool_slots must be at least 1, got %', NEW.dag_id, NEW.task_id, NEW.pool_slots
            USING ERRCODE = 'check_violation';
    END IF;
    IF jsonb_typeof(NEW.env) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'dagq.task "%.%": env must be a JSON object of names to values, got %', NEW.dag_id, NEW.task_id, NEW.env
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT key INTO bad FROM jsonb_each(NEW.env)
        WHERE key !~ '^[A-Za-z_][A-Za-z0-9_]*$' OR jsonb_typeof(value) IN ('object', 'array', 'null')
        LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'dagq.task "%.%": env entry "%" is not valid: names are shell variable names and values are strings, numbers or booleans', NEW.dag_id, NEW.task_id, bad
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER task_validate BEFORE INSERT OR UPDATE ON dagq.task
    FOR EACH ROW EXECUTE FUNCTION dagq.task_validate();

-- Removing or renaming a task takes its edges along (as a foreign key with
-- ON DELETE/UPDATE CASCADE would).
CREATE FUNCTION dagq.task_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM dagq.task_dependency
         WHERE dag_id = OLD.dag_id AND (task_id = OLD.task_id OR upstream_task_id = OLD.task_id);
        RETURN OLD;
    END IF;
    IF NEW.task_id <> OLD.task_id OR NEW.dag_id <> OLD.dag_id THEN
        UPDATE dagq.task_dependency SET dag_id = NEW.dag_id, task_id = NEW.task_id
         WHERE dag_id = OLD.dag_id AND task_id = OLD.task_id;
        UPDATE dagq.task_dependency SET dag_id = NEW.dag_id, upstream_task_id = NEW.task_id
         WHERE dag_id = OLD.dag_id AND upstream_task_id = OLD.task_id;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER task_cascade AFTER DELETE OR UPDATE ON dagq.task
    FOR EACH ROW EXECUTE FUNCTION dagq.task_cascade();

-- A cycle through the edge upstream -> task, as the list of task ids
-- [task, ..., upstream] (then back to task), or NULL when there is none.
-- Breadth-first from task along downstream edges, remembering each node's
-- parent, so it is linear in the size of the DAG.
CREATE FUNCTION dagq.find_cycle(p_dag text, p_task text, p_upstream text) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    parent jsonb := jsonb_build_object(p_task, NULL);
    frontier text[] := ARRAY[p_task];
    nxt text[];
    path text[];
    cur text;
    e record;
BEGIN
    IF p_task = p_upstream THEN
        RETURN ARRAY[p_task];
    END IF;
    WHILE array_length(frontier, 1) > 0 LOOP
        nxt := '{}';
        FOR e IN SELECT d.upstream_task_id AS u, d.task_id AS t
                   FROM dagq.task_dependency d
                  WHERE d.dag_id = p_dag AND d.upstream_task_id = ANY (frontier) LOOP
            CONTINUE WHEN parent ? e.t;
            parent := parent || jsonb_build_object(e.t, e.u);
            IF e.t = p_upstream THEN
                cur := e.t;
                path := '{}';
                WHILE cur IS NOT NULL LOOP
                    path := cur || path;
                    cur := parent ->> cur;
                END LOOP;
                RETURN path;
            END IF;
            nxt := nxt || e.t;
        END LOOP;
        frontier := nxt;
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE FUNCTION dagq.dependency_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    cyc text[];
BEGIN
    -- the row may have been deleted again later in the transaction
    IF NOT EXISTS (SELECT 1 FROM dagq.task_dependency
                    WHERE dag_id = NEW.dag_id AND task_id = NEW.task_id
                      AND upstream_task_id = NEW.upstream_task_id) THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dagq.dag WHERE dag_id = NEW.dag_id) THEN
        RAISE EXCEPTION 'dagq.task_dependency: unknown DAG "%"', NEW.dag_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dagq.task WHERE dag_id = NEW.dag_id AND task_id = NEW.task_id) THEN
        RAISE EXCEPTION 'dagq.task_dependency: DAG "%": edge % -> % names unknown task "%"', NEW.dag_id, NEW.upstream_task_id, NEW.task_id, NEW.task_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dagq.task WHERE dag_id = NEW.dag_id AND task_id = NEW.upstream_task_id) THEN
        RAISE EXCEPTION 'dagq.task_dependency: DAG "%": edge % -> % names unknown task "%"', NEW.dag_id, NEW.upstream_task_id, NEW.task_id, NEW.upstream_task_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    cyc := dagq.find_cycle(NEW.dag_id, NEW.task_id, NEW.upstream_task_id);
    IF cyc IS NOT NULL THEN
        RAISE EXCEPTION 'dagq.task_dependency: DAG "%" has a cycle: %', NEW.dag_id,
            array_to_string(cyc || cyc[1], ' -> ')
            USING ERRCODE = 'check_violation',
                  HINT = 'a DAG must be acyclic: remove one of the edges in the cycle';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER dependency_validate
    AFTER INSERT OR UPDATE ON dagq.task_dependency
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION dagq.dependency_validate();

-- A task's pool must exist and have room for the task's pool_slots (a pool
-- of 0 slots is held back on purpose and fits anything). Checked at commit,
-- so a transaction may create the tasks before their pool.
CREATE FUNCTION dagq.task_pool_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    n int;
BEGIN
    SELECT pool, pool_slots INTO t FROM dagq.task WHERE dag_id = NEW.dag_id AND task_id = NEW.task_id;
    IF NOT FOUND OR t.pool IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT slots INTO n FROM dagq.pool WHERE pool = t.pool;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.task "%.%": unknown pool "%"', NEW.dag_id, NEW.task_id, t.pool
            USING ERRCODE = 'foreign_key_violation',
                  HINT = format('create it first: INSERT INTO dagq.pool (pool, slots) VALUES (%L, <slots>)', t.pool);
    END IF;
    IF n > 0 AND t.pool_slots > n THEN
        RAISE EXCEPTION 'dagq.task "%.%": needs % slots of pool "%", which has only %', NEW.dag_id, NEW.task_id, t.pool_slots, t.pool, n
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER task_pool_validate
    AFTER INSERT OR UPDATE OF pool, pool_slots ON dagq.task
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION dagq.task_pool_validate();

-- A pool's name and size; a pool that tasks use cannot be renamed, deleted,
-- or shrunk below what one of its tasks needs (0 is allowed: it holds the
-- pool's tasks back).
CREATE FUNCTION dagq.pool_validate() RETURNS trigger
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
    IF NEW.slots IS NULL OR NEW.slots < 0 THEN
        RAISE EXCEPTION 'dagq.pool "%": slots must be 0 or more, got %', NEW.pool, NEW.slots
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
    RETURN NEW;
END;
$$;

CREATE TRIGGER pool_validate BEFORE INSERT OR UPDATE OR DELETE ON dagq.pool
    FOR EACH ROW EXECUTE FUNCTION dagq.pool_validate();
