-- dagq metastore, migration 010: least privilege.
--
-- Group roles (NOLOGIN; an operator grants them to login roles, see the
-- README's "Security" section). Roles belong to the PostgreSQL cluster, not
-- the database: they are created when missing, so several dagq databases in
-- one cluster share them.
--
--   dagq_viewer     reads every dagq table and view; nothing else
--   dagq_operator   viewer, plus the operator functions (trigger, clear,
--                   pause, unpause, and those later migrations add) on the
--                   DAGs it may act on (below)
--   dagq_author     operator, plus INSERT/UPDATE/DELETE of the DAGs, tasks,
--                   edges and pools it owns
--   dagq_admin      author on every DAG, whoever owns it
--   dagq_scheduler  viewer, plus the scheduler's functions
--   dagq_worker     only the worker's functions; no table at all
--
-- Ownership. dagq.dag.owner and dagq.pool.owner name the role that owns a DAG
-- or a pool (default: the role that inserts it). Row-level security lets an
-- author change only what is owned by a role it is a member of (an author of
-- team A cannot touch team B's DAGs); operators act only on those DAGs too.
-- An owner left NULL (rows older than this migration) means shared: any
-- author or operator may act on it. Members of dagq_admin may act on all.
--
-- Functions that change state are SECURITY DEFINER with a fixed search_path,
-- so they are the only way in: the roles above have no write privilege on
-- the tables those functions write. They ask dagq.caller() who called them:
-- the role set with SET ROLE (dagq-web sets the token's role for each
-- request), else the login role. A migration that replaces one of them with
-- CREATE OR REPLACE must say SECURITY DEFINER and SET search_path again (a
-- replaced function keeps its grants but not those attributes); the roles
-- test fails if it does not.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['dagq_viewer', 'dagq_operator', 'dagq_author', 'dagq_admin',
                             'dagq_scheduler', 'dagq_worker'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN NULL; -- another database's migrate
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'dagq db migrate needs CREATEROLE to create the role %', r
                        USING HINT = 'run it as a role with CREATEROLE once, or create the roles first: '
                                     'CREATE ROLE dagq_viewer NOLOGIN; (and dagq_operator, dagq_author, '
                                     'dagq_admin, dagq_scheduler, dagq_worker)';
            END;
        END IF;
    END LOOP;
END;
$$;

-- membership: operator includes viewer, author includes operator, admin
-- includes author; the scheduler reads what a viewer reads
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT * FROM (VALUES ('dagq_viewer', 'dagq_operator'), ('dagq_operator', 'dagq_author'),
                                   ('dagq_author', 'dagq_admin'), ('dagq_viewer', 'dagq_scheduler'))
                          AS m(grp, member) LOOP
        IF NOT pg_has_role(g.member, g.grp, 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT %I TO %I', g.grp, g.member);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
END;
$$;

-- Nothing in the schema is anybody's by default: functions are executable by
-- PUBLIC unless revoked, now and for those later migrations create.
REVOKE ALL ON SCHEMA dagq FROM PUBLIC;
GRANT USAGE ON SCHEMA dagq TO dagq_viewer, dagq_worker;
-- (dagq db migrate also revokes PUBLIC's EXECUTE on every dagq function
-- after each migration, so later ones need not remember to)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA dagq FROM PUBLIC;

-- Viewers read every table and view (later migrations grant theirs);
-- dagq.schema_migrations is the migrator's own.
GRANT SELECT ON ALL TABLES IN SCHEMA dagq TO dagq_viewer;

------------------------------------------------------------------------------
-- Who is calling, and what may it do.
------------------------------------------------------------------------------

CREATE FUNCTION dagq.caller() RETURNS name
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN current_setting('role') = 'none' THEN session_user
                ELSE current_setting('role')::name END
$$;

-- May role r act on something owned by p_owner (NULL: shared)? An owner
-- role dropped since owns nothing anyone but an admin may act on.
CREATE FUNCTION dagq.owned_by(p_owner name, r name) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT pg_has_role(r, 'dagq_admin', 'MEMBER')
        OR p_owner IS NULL
        OR (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_owner)
            AND pg_has_role(r, p_owner, 'MEMBER'))
$$;

-- The check every operator function makes first: the caller is an operator
-- (or more), and the DAG is one it may act on. Raises 42501 naming both.
CREATE FUNCTION dagq.require_operate(p_dag_id text, p_what text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    me name := dagq.caller();
    v_owner name;
BEGIN
    IF NOT pg_has_role(me, 'dagq_operator', 'MEMBER') THEN
        RAISE EXCEPTION '%: role % may not act on DAGs (it is not a member of dagq_operator)', p_what, me
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT owner INTO v_owner FROM dagq.dag WHERE dag_id = p_dag_id;
    IF FOUND AND NOT dagq.owned_by(v_owner, me) THEN
        RAISE EXCEPTION '%: role % may not act on DAG "%", owned by %', p_what, me, p_dag_id, v_owner
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END;
$$;

------------------------------------------------------------------------------
-- Ownership, enforced by row-level security.
------------------------------------------------------------------------------

ALTER TABLE dagq.dag ADD COLUMN owner name DEFAULT current_user;
ALTER TABLE dagq.pool ADD COLUMN owner name DEFAULT current_user;
UPDATE dagq.dag SET owner = NULL;
UPDATE dagq.pool SET owner = NULL;

-- may the current role write rows of this DAG?
CREATE FUNCTION dagq.may_author(p_dag_id text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
    SELECT COALESCE((SELECT dagq.owned_by(d.owner, dagq.caller()) FROM dagq.dag d
                      WHERE d.dag_id = p_dag_id), true)
$$;

-- the policies below run with the writer's rights
GRANT EXECUTE ON FUNCTION dagq.may_author(text) TO dagq_author;

ALTER TABLE dagq.dag ENABLE ROW LEVEL SECURITY;
ALTER TABLE dagq.task ENABLE ROW LEVEL SECURITY;
ALTER TABLE dagq.task_dependency ENABLE ROW LEVEL SECURITY;
ALTER TABLE dagq.pool ENABLE ROW LEVEL SECURITY;

CREATE POLICY read ON dagq.dag FOR SELECT USING (true);
CREATE POLICY own ON dagq.dag FOR ALL TO dagq_author
    USING (dagq.owned_by(owner, dagq.caller())) WITH CHECK (dagq.owned_by(owner, dagq.caller()));
CREATE POLICY read ON dagq.pool FOR SELECT USING (true);
CREATE POLICY own ON dagq.pool FOR ALL TO dagq_author
    USING (dagq.owned_by(owner, dagq.caller())) WITH CHECK (dagq.owned_by(owner, dagq.caller()));
CREATE POLICY read ON dagq.task FOR SELECT USING (true);
CREATE POLICY own ON dagq.task FOR ALL TO dagq_author
    USING (dagq.may_author(dag_id)) WITH CHECK (dagq.may_author(dag_id));
CREATE POLICY read ON dagq.task_dependency FOR SELECT USING (true);
CREATE POLICY own ON dagq.task_dependency FOR ALL TO dagq_author
    USING (dagq.may_author(dag_id)) WITH CHECK (dagq.may_author(dag_id));

-- A task or an edge may be written before its DAG in a transaction; at
-- commit, its DAG must be one the writer may author (so nobody slips a task
-- into another team's DAG created meanwhile).
CREATE FUNCTION dagq.definition_owner_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    v_owner name;
BEGIN
    SELECT owner INTO v_owner FROM dagq.dag WHERE dag_id = NEW.dag_id;
    IF FOUND AND NOT dagq.owned_by(v_owner, dagq.caller()) THEN
        RAISE EXCEPTION 'dagq.%: role % may not change DAG "%", owned by %', TG_TABLE_NAME,
            dagq.caller(), NEW.dag_id, v_owner USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER task_owner_check AFTER INSERT OR UPDATE ON dagq.task
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dagq.definition_owner_check();
CREATE CONSTRAINT TRIGGER dependency_owner_check AFTER INSERT OR UPDATE ON dagq.task_dependency
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dagq.definition_owner_check();

-- authors write definitions (their own, by the policies above); the
-- scheduler's bookkeeping columns are not theirs
GRANT INSERT, DELETE ON dagq.dag, dagq.task, dagq.task_dependency, dagq.pool TO dagq_author;
GRANT UPDATE (dag_id, description, schedule, timezone, start_date, end_date, catchup, is_paused,
              max_active_runs, max_active_tasks, default_worker_group, params, owner)
    ON dagq.dag TO dagq_author;
GRANT UPDATE ON dagq.task, dagq.task_dependency TO dagq_author;
GRANT UPDATE (pool, slots, description, owner) ON dagq.pool TO dagq_author;

-- The validation triggers read and write across DAGs (cycles, pools,
-- unparking): they run as their owner, whoever fires them.
ALTER FUNCTION dagq.dag_validate() SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;
ALTER FUNCTION dagq.task_validate() SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;
ALTER FUNCTION dagq.task_cascade() SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;
ALTER FUNCTION dagq.dependency_validate() SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;
ALTER FUNCTION dagq.task_pool_validate() SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;
ALTER FUNCTION dagq.pool_validate() SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;
ALTER FUNCTION dagq.definition_unpark() SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;
ALTER FUNCTION dagq.dag_delete_guard() SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;

------------------------------------------------------------------------------
-- Operators: through the functions only, on the DAGs they may act on.
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dagq.set_paused(p_dag_id text, p_paused boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
BEGIN
    PERFORM dagq.require_operate(p_dag_id, CASE WHEN p_paused THEN 'dagq.pause' ELSE 'dagq.unpause' END);
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

ALTER FUNCTION dagq.pause(text) SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;
ALTER FUNCTION dagq.unpause(text) SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp;

-- trigger_dag and clear check the caller first, then do what they did
ALTER FUNCTION dagq.trigger_dag(text, jsonb, timestamptz) RENAME TO trigger_dag_unchecked;
ALTER FUNCTION dagq.clear(bigint, text, boolean) RENAME TO clear_unchecked;

CREATE FUNCTION dagq.trigger_dag(p_dag_id text, p_conf jsonb DEFAULT '{}',
                                 p_logical_date timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
BEGIN
    PERFORM dagq.require_operate(p_dag_id, 'dagq.trigger_dag');
    RETURN dagq.trigger_dag_unchecked(p_dag_id, p_conf, p_logical_date);
END;
$$;

CREATE FUNCTION dagq.clear(p_run_id bigint, p_task_id text DEFAULT NULL,
                           p_downstream boolean DEFAULT false)
RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    v_dag text;
BEGIN
    SELECT dag_id INTO v_dag FROM dagq.dag_run WHERE run_id = p_run_id;
    IF FOUND THEN
        PERFORM dagq.require_operate(v_dag, 'dagq.clear');
    END IF;
    RETURN dagq.clear_unchecked(p_run_id, p_task_id, p_downstream);
END;
$$;

GRANT EXECUTE ON FUNCTION dagq.trigger_dag(text, jsonb, timestamptz), dagq.clear(bigint, text, boolean),
    dagq.pause(text), dagq.unpause(text) TO dagq_operator;

------------------------------------------------------------------------------
-- The scheduler: its functions, and the three statements it ran itself.
------------------------------------------------------------------------------

CREATE FUNCTION dagq.create_scheduled_run(p_dag_id text, p_start bigint, p_end bigint) RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO dagq.dag_run (dag_id, run_type, logical_date, data_interval_start, data_interval_end)
    VALUES (p_dag_id, 'scheduled', to_timestamp(p_start), to_timestamp(p_start), to_timestamp(p_end))
    ON CONFLICT (dag_id, logical_date) WHERE run_type = 'scheduled' DO NOTHING
    RETURNING run_id
$$;

-- p_end NULL: no more intervals (past end_date)
CREATE FUNCTION dagq.set_next_dagrun(p_dag_id text, p_start bigint, p_end bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE dagq.dag SET next_dagrun_start = to_timestamp(p_start),
                        next_dagrun_end = COALESCE(to_timestamp(p_end), 'infinity')
     WHERE dag_id = p_dag_id
$$;

CREATE FUNCTION dagq.set_command(p_ti_id bigint, p_command text) RETURNS void
LANGUAGE sql AS $$
    UPDATE dagq.task_instance SET command = p_command WHERE ti_id = p_ti_id AND state = 'scheduled'
$$;

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'dagq.start_run(bigint)', 'dagq.propagate_ends()', 'dagq.settle_trigger_rules()',
        'dagq.queue_ready(int)', 'dagq.requeue_stale(double precision, int)',
        'dagq.find_zombies(double precision, int)',
        'dagq.abandon_try(bigint, int, text, uuid, double precision, double precision, text)',
        'dagq.finish_runs()', 'dagq.fail_unrendered(bigint, text)', 'dagq.park_dag(text, text)',
        'dagq.groups_without_workers()', 'dagq.prune_workers(interval)',
        'dagq.create_scheduled_run(text, bigint, bigint)', 'dagq.set_next_dagrun(text, bigint, bigint)',
        'dagq.set_command(bigint, text)'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO dagq_scheduler', f);
    END LOOP;
END;
$$;

------------------------------------------------------------------------------
-- Workers: their functions, nothing else.
------------------------------------------------------------------------------

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'dagq.worker_heartbeat(text, uuid, text, int, text[], int, int, text)',
        'dagq.worker_gone(text, uuid)', 'dagq.claim_try(bigint, int, text, uuid, text)',
        'dagq.finish_try(bigint, int, text, uuid, boolean, int, double precision, text, text, bigint)',
        'dagq.release_try(bigint, int, text, uuid, text)'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO dagq_worker', f);
    END LOOP;
END;
$$;

-- What the views call runs with the viewer's rights: the pure helpers.
GRANT EXECUTE ON FUNCTION dagq.rule_verdict(text, int, int, int, int), dagq.caller(),
    dagq.owned_by(name, name), dagq.cron_check(text), dagq.name_ok(text), dagq.group_name_ok(text),
    dagq.date_problem(text, timestamptz), dagq.json_problem(text, jsonb)
    TO dagq_viewer, dagq_worker;
