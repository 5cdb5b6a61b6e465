-- dagq metastore, migration 011 (ETL features, 7 of 7): who may do what
-- (the roles of 010).
--
--   operators (on the DAGs they may act on): dagq.backfill,
--     dagq.backfill_cancel, dagq.mark, dagq.stop
--   viewers: the new tables and views, dagq.backfill_plan (a dry run) and
--     the schedule functions it uses
--   authors: dagq.task_external_dependency and dagq.dag_trigger rows of
--     their own DAGs (row-level security on the DAG's owner, as for edges),
--     and dag.dagrun_timeout
--   the scheduler: runs_to_start, propagate_external,
--     expire_external_waits, time_out_runs, finish_backfills
--   workers: worker_lost_tries
-- Everything that changes state runs as its owner (SECURITY DEFINER with a
-- fixed search_path); the helpers they call are nobody else's.
--
-- "Nothing is PUBLIC's": 010's ALTER DEFAULT PRIVILEGES IN SCHEMA dagq
-- REVOKE EXECUTE ... FROM PUBLIC cannot work (per-schema default privileges
-- only add to the global ones, PostgreSQL's documentation says), so every
-- function created after 010's REVOKE ... ON ALL FUNCTIONS, 010's own later
-- ones included, was executable by PUBLIC (anyone with USAGE on the schema:
-- a worker could call the scheduler's functions). This revokes that again
-- at the end; what authors' row-level security calls is granted to them.

GRANT SELECT ON dagq.backfill, dagq.backfill_run, dagq.task_external_dependency, dagq.dag_trigger,
    dagq.ti_external_wait, dagq.dag_waits_on, dagq.external_waits, dagq.backfill_progress
    TO dagq_viewer;

-- pure helpers, and the dry run of a backfill
GRANT EXECUTE ON FUNCTION dagq.cron_check(text), dagq.every_problem(text),
    dagq.every_seconds_of(text), dagq.schedule_kind(text), dagq.every_seconds(text),
    dagq.cron_sets(text), dagq.tz_offset(timestamptz, text), dagq.wall_instant(timestamp, text),
    dagq.cron_fires(text, text, timestamptz, timestamptz),
    dagq.schedule_anchor(timestamptz, timestamptz),
    dagq.schedule_fires(text, text, timestamptz, timestamptz, timestamptz),
    dagq.schedule_next(text, text, timestamptz, timestamptz),
    dagq.schedule_intervals(text, text, timestamptz, timestamptz, timestamptz),
    dagq.duration_text(interval), dagq.utc_text(timestamptz), dagq.wait_text(text, text),
    dagq.date_problem(text, timestamptz), dagq.json_problem(text, jsonb),
    dagq.backfill_plan(text, timestamp, timestamp, text, boolean)
    TO dagq_viewer;
GRANT EXECUTE ON FUNCTION dagq.cron_check(text), dagq.every_problem(text),
    dagq.every_seconds_of(text) TO dagq_worker;

GRANT EXECUTE ON FUNCTION dagq.backfill(text, timestamp, timestamp, text, boolean, int, jsonb),
    dagq.backfill_cancel(bigint), dagq.mark(bigint, text, text, boolean), dagq.stop(bigint, text)
    TO dagq_operator;

-- definitions, owned like edges
ALTER TABLE dagq.task_external_dependency ENABLE ROW LEVEL SECURITY;
ALTER TABLE dagq.dag_trigger ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON dagq.task_external_dependency FOR SELECT USING (true);
CREATE POLICY own ON dagq.task_external_dependency FOR ALL TO dagq_author
    USING (dagq.may_author(dag_id)) WITH CHECK (dagq.may_author(dag_id));
CREATE POLICY read ON dagq.dag_trigger FOR SELECT USING (true);
CREATE POLICY own ON dagq.dag_trigger FOR ALL TO dagq_author
    USING (dagq.may_author(dag_id)) WITH CHECK (dagq.may_author(dag_id));
CREATE CONSTRAINT TRIGGER external_dependency_owner_check AFTER INSERT OR UPDATE ON dagq.task_external_dependency
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dagq.definition_owner_check();
CREATE CONSTRAINT TRIGGER dag_trigger_owner_check AFTER INSERT OR UPDATE ON dagq.dag_trigger
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dagq.definition_owner_check();
GRANT INSERT, UPDATE, DELETE ON dagq.task_external_dependency, dagq.dag_trigger TO dagq_author;
GRANT USAGE ON SEQUENCE dagq.task_external_dependency_dep_id_seq TO dagq_author;
GRANT UPDATE (dagrun_timeout) ON dagq.dag TO dagq_author;

-- the validation and watch triggers read and write across DAGs
ALTER FUNCTION dagq.external_dependency_validate() SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;
ALTER FUNCTION dagq.dag_trigger_validate() SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'dagq.runs_to_start(int)', 'dagq.propagate_external()', 'dagq.expire_external_waits()',
        'dagq.time_out_runs()', 'dagq.finish_backfills()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO dagq_scheduler', f);
    END LOOP;
END;
$$;

ALTER FUNCTION dagq.worker_lost_tries(text, uuid, bigint[], int[])
    SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp SET lock_timeout = '2s';
GRANT EXECUTE ON FUNCTION dagq.worker_lost_tries(text, uuid, bigint[], int[]) TO dagq_worker;

-- what this and earlier migrations left to PUBLIC (see above)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA dagq FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dagq.may_author(text) TO dagq_author;
