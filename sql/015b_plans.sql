-- dagq metastore, migration 015b: two costs that did not follow the work.
--
-- 1. finish_runs' plan must not depend on fresh statistics. Measured
--    (make bench, "many": 200 runs of 10 tasks triggered at once on a
--    metastore autovacuum had not analyzed yet): the planner, believing
--    task_instance nearly empty, read all of it once per running run
--    (a nested-loop anti join over a sequential scan), 75-140 ms a pass,
--    where probing the partial index ti_unfinished per run costs well
--    under a millisecond. A scheduler pass runs finish_runs every time, so
--    this was most of what a task waited for between its upstream's end
--    and its queueing. No plan of it is better with a sequential scan.
--
-- 2. A DAG's time zone was checked against pg_timezone_names, which reads
--    the whole time zone database from disk at each call: 50-200 ms per
--    DAG inserted (1,000 DAGs took close to a minute). The names are now
--    kept in dagq.timezone_name, filled here from pg_timezone_names; a name
--    not there (a time zone database updated since the migration) is still
--    looked up in pg_timezone_names, so nothing valid is refused.

ALTER FUNCTION dagq.finish_runs() SET enable_seqscan = off;

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
