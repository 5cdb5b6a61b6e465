-- dagq metastore, migration 011 (ETL features, 3 of 7): dependencies between
-- DAGs.
--
-- 1. A task waits for another DAG's work for the same data:
--    dagq.task_external_dependency (dag_id, task_id, upstream_dag_id,
--    upstream_task_id NULL = the upstream's whole run, logical_date_offset,
--    if_upstream_failed 'fail' | 'skip'). When a run starts, each of its
--    task instances gets one dagq.ti_external_wait row per such dependency
--    (frozen, as its edges are), for the upstream logical date "this run's
--    logical date + offset" (the offset applied on the DAG's wall clock). The
--    upstream run "for" that date is the upstream run whose data interval
--    holds it ([start, end), or exactly its logical date), so two DAGs on
--    different clocks (01:00 and 02:00 daily) need no exact offset.
--
--    A wait is an upstream like the task's edges, in the same counters of
--    008: up_total counts it; when it is decided, up_success (the upstream
--    succeeded), up_failed (it failed or was upstream_failed, with 'fail') or
--    up_skipped (it was skipped, or failed with 'skip') counts it, and
--    ext_done. So the task's trigger rule decides as before (all_success:
--    upstream_failed or skipped), the verdict is read from the row it
--    writes, and a waiting task instance is an ordinary 'scheduled' row:
--    no worker slot, no process, and no cost to a pass, which reads only
--    decided rows (ti_decided). The invariant of 008 becomes: a task
--    instance's counters count exactly its in-run upstreams that are
--    finished and not end_pending, plus its waits that are decided.
--
--    Waits are decided by ends, not by scans. A task instance or run that
--    ends while someone waits for it is flagged ext_pending by a row trigger
--    (an index probe on the open waits; the flag wakes the schedulers), and
--    the next pass decides the waits it may decide (dagq.propagate_external,
--    SKIP LOCKED like propagate_ends). A run that starts decides its waits
--    at once from what has ended already, holding the upstream rows it reads
--    (FOR SHARE) so that an end committing meanwhile is either seen or sees
--    the new wait. A decided wait stays decided, whatever the upstream does
--    later; clearing the waiting task instance decides its waits again.
--
--    A task that waits and has its in-run upstreams done (or none) has
--    execution_timeout to get its waits decided: then it fails with a note
--    naming what it waited for (dagq.expire_external_waits).
--
-- 2. A DAG runs when its upstream DAGs finish: dagq.dag_trigger (dag_id,
--    upstream_dag_id). When a run succeeds, every DAG it triggers whose
--    every trigger upstream has a successful run for the same data interval
--    gets a 'triggered' run for that interval, exactly once: the check is
--    serialized per triggered DAG (an advisory lock taken after the run's
--    end, held to commit, so of two upstreams ending at once the later one
--    sees the other) and the run is unique per (dag_id, logical_date). A
--    cycle among DAG triggers is rejected at commit, naming it.
--
-- 011d fires the DAG triggers (from finish_runs) and gives 008's functions
-- the waits in their counters.

------------------------------------------------------------------------------
-- Definitions
------------------------------------------------------------------------------

CREATE TABLE dagq.task_external_dependency (
    dep_id              bigserial PRIMARY KEY,
    dag_id              text NOT NULL,
    task_id             text NOT NULL,
    upstream_dag_id     text NOT NULL,
    upstream_task_id    text,
    logical_date_offset interval NOT NULL DEFAULT '0',
    if_upstream_failed  text NOT NULL DEFAULT 'fail',
    FOREIGN KEY (dag_id, task_id) REFERENCES dagq.task (dag_id, task_id)
        ON UPDATE CASCADE ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    -- an upstream that others wait for cannot be deleted (checked at commit)
    FOREIGN KEY (upstream_dag_id) REFERENCES dagq.dag (dag_id)
        ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (upstream_dag_id, upstream_task_id) REFERENCES dagq.task (dag_id, task_id)
        ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED,
    UNIQUE NULLS NOT DISTINCT (dag_id, task_id, upstream_dag_id, upstream_task_id, logical_date_offset)
);
CREATE INDEX task_external_dependency_upstream
    ON dagq.task_external_dependency (upstream_dag_id, upstream_task_id);

COMMENT ON TABLE dagq.task_external_dependency IS
    'task_id of dag_id waits for upstream_task_id of upstream_dag_id (NULL: its whole run) for '
    'the logical date this run''s + logical_date_offset; if the upstream fails: fail or skip.';

CREATE FUNCTION dagq.external_dependency_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.if_upstream_failed IS NULL OR NEW.if_upstream_failed NOT IN ('fail', 'skip') THEN
        RAISE EXCEPTION 'dagq.task_external_dependency "%.%": if_upstream_failed must be fail or skip, got %',
            NEW.dag_id, NEW.task_id, COALESCE(NEW.if_upstream_failed, 'NULL')
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.logical_date_offset < interval '-366 days' OR NEW.logical_date_offset > interval '366 days' THEN
        RAISE EXCEPTION 'dagq.task_external_dependency "%.%": logical_date_offset must be within 366 days, got %',
            NEW.dag_id, NEW.task_id, NEW.logical_date_offset USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.upstream_dag_id = NEW.dag_id AND NEW.logical_date_offset = interval '0' THEN
        RAISE EXCEPTION 'dagq.task_external_dependency "%.%": waits for its own DAG at the same logical date',
            NEW.dag_id, NEW.task_id USING ERRCODE = 'check_violation',
            HINT = 'tasks of one run depend on each other through dagq.task_dependency; an offset (''-1 day'') waits for an earlier run';
    END IF;
    PERFORM dagq.unpark(NEW.dag_id);
    RETURN NEW;
END;
$$;

CREATE TRIGGER external_dependency_validate BEFORE INSERT OR UPDATE ON dagq.task_external_dependency
    FOR EACH ROW EXECUTE FUNCTION dagq.external_dependency_validate();

CREATE TABLE dagq.dag_trigger (
    dag_id          text NOT NULL REFERENCES dagq.dag (dag_id)
                        ON UPDATE CASCADE ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    upstream_dag_id text NOT NULL REFERENCES dagq.dag (dag_id)
                        ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (dag_id, upstream_dag_id)
);
CREATE INDEX dag_trigger_upstream ON dagq.dag_trigger (upstream_dag_id);

COMMENT ON TABLE dagq.dag_trigger IS
    'dag_id gets a run for a data interval once every one of its upstream_dag_ids has a successful run for it.';

-- A cycle through the trigger upstream -> dag, as [dag, ..., upstream] (and
-- back to dag), or NULL: breadth-first along triggers, as find_cycle does
-- along edges.
CREATE FUNCTION dagq.find_trigger_cycle(p_dag text, p_upstream text) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    parent jsonb := jsonb_build_object(p_dag, NULL);
    frontier text[] := ARRAY[p_dag];
    nxt text[];
    path text[];
    cur text;
    e record;
BEGIN
    IF p_dag = p_upstream THEN
        RETURN ARRAY[p_dag];
    END IF;
    WHILE array_length(frontier, 1) > 0 LOOP
        nxt := '{}';
        FOR e IN SELECT t.upstream_dag_id AS u, t.dag_id AS d FROM dagq.dag_trigger t
                  WHERE t.upstream_dag_id = ANY (frontier) LOOP
            CONTINUE WHEN parent ? e.d;
            parent := parent || jsonb_build_object(e.d, e.u);
            IF e.d = p_upstream THEN
                cur := e.d;
                path := '{}';
                WHILE cur IS NOT NULL LOOP
                    path := cur || path;
                    cur := parent ->> cur;
                END LOOP;
                RETURN path;
            END IF;
            nxt := nxt || e.d;
        END LOOP;
        frontier := nxt;
    END LOOP;
    RETURN NULL;
END;
$$;

-- At commit; serialized, so that two transactions cannot each add half of
-- a cycle: the second sees the first's row.
CREATE FUNCTION dagq.dag_trigger_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    cyc text[];
BEGIN
    PERFORM pg_advisory_xact_lock(1684107633, 1);
    IF NOT EXISTS (SELECT 1 FROM dagq.dag_trigger
                    WHERE dag_id = NEW.dag_id AND upstream_dag_id = NEW.upstream_dag_id) THEN
        RETURN NULL;
    END IF;
    cyc := dagq.find_trigger_cycle(NEW.dag_id, NEW.upstream_dag_id);
    IF cyc IS NOT NULL THEN
        RAISE EXCEPTION 'dagq.dag_trigger: DAG triggers would form a cycle: %',
            array_to_string(cyc || cyc[1], ' -> ')
            USING ERRCODE = 'check_violation',
                  HINT = 'a DAG cannot wait, through triggers, for its own runs: remove one of the triggers in the cycle';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER dag_trigger_validate AFTER INSERT OR UPDATE ON dagq.dag_trigger
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dagq.dag_trigger_validate();

------------------------------------------------------------------------------
-- Waits of task instances
------------------------------------------------------------------------------

ALTER TABLE dagq.task_instance
    ADD COLUMN up_external  int NOT NULL DEFAULT 0,  -- how many of up_total are waits
    ADD COLUMN ext_done     int NOT NULL DEFAULT 0,  -- how many of those are decided
    ADD COLUMN ext_deadline timestamptz,             -- when waiting for them times out
    ADD COLUMN ext_pending  boolean NOT NULL DEFAULT false; -- ended; waits may follow
CREATE INDEX ti_ext_pending ON dagq.task_instance (ti_id) WHERE ext_pending;
CREATE INDEX ti_ext_deadline ON dagq.task_instance (ext_deadline)
    WHERE state = 'scheduled' AND ext_deadline IS NOT NULL;

CREATE TABLE dagq.ti_external_wait (
    wait_id            bigserial PRIMARY KEY,
    ti_id              bigint NOT NULL REFERENCES dagq.task_instance (ti_id) ON DELETE CASCADE,
    upstream_dag_id    text REFERENCES dagq.dag (dag_id) ON UPDATE CASCADE ON DELETE SET NULL,
    upstream_task_id   text,        -- NULL: the whole run
    target             timestamptz NOT NULL, -- the upstream logical date waited for
    if_upstream_failed text NOT NULL,
    state              text NOT NULL DEFAULT 'waiting'
                           CHECK (state IN ('waiting', 'success', 'failed', 'skipped', 'abandoned')),
    upstream_run_id    bigint,      -- the run that decided it
    decided_at         timestamptz
);
CREATE INDEX ti_external_wait_ti ON dagq.ti_external_wait (ti_id);
-- the open waits, as an end looks for those it decides
CREATE INDEX ti_external_wait_open ON dagq.ti_external_wait (upstream_dag_id, upstream_task_id, target)
    WHERE state = 'waiting';
CREATE INDEX ti_external_wait_upstream ON dagq.ti_external_wait (upstream_dag_id);

COMMENT ON TABLE dagq.ti_external_wait IS
    'What a task instance waits for in another DAG (frozen when its run started): waiting, success, '
    'failed, skipped (decided), or abandoned (the task instance ended without it).';

-- Flags an ending task instance that waits may follow, and lets go of the
-- waits of one that ends without them.
CREATE FUNCTION dagq.ti_end_watch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM dagq.ti_external_wait w
                WHERE w.state = 'waiting' AND w.upstream_dag_id = NEW.dag_id
                  AND w.upstream_task_id = NEW.task_id) THEN
        NEW.ext_pending := true;
        PERFORM pg_notify('dagq', 'ext');
    END IF;
    IF NEW.up_external > NEW.ext_done THEN
        UPDATE dagq.ti_external_wait SET state = 'abandoned', decided_at = clock_timestamp()
         WHERE ti_id = NEW.ti_id AND state = 'waiting';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER ti_end_watch BEFORE UPDATE OF state ON dagq.task_instance
    FOR EACH ROW
    WHEN (NEW.state IN ('success', 'failed', 'upstream_failed', 'skipped')
          AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION dagq.ti_end_watch();

CREATE FUNCTION dagq.run_end_watch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM dagq.ti_external_wait w
                WHERE w.state = 'waiting' AND w.upstream_dag_id = NEW.dag_id) THEN
        NEW.ext_pending := true;
        PERFORM pg_notify('dagq', 'ext');
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER run_end_watch BEFORE UPDATE OF state ON dagq.dag_run
    FOR EACH ROW
    WHEN (NEW.state IN ('success', 'failed') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION dagq.run_end_watch();

-- How wait w stands now: 'success', 'failed', 'skipped' (with its policy
-- applied), or NULL (undecided), and the upstream run that says so. The
-- upstream rows read are held FOR SHARE until commit. Among several runs
-- for the date (an interval's run and manual runs at that date), a success
-- wins over a failure.
CREATE FUNCTION dagq.wait_outcome(w dagq.ti_external_wait, OUT outcome text, OUT run_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    st text;
    best int := 0; -- 3 success, 2 failed, 1 skipped
    rank int;
BEGIN
    FOR r IN
        SELECT x.run_id, x.state FROM dagq.dag_run x
         WHERE x.dag_id = w.upstream_dag_id AND x.logical_date = w.target
        UNION
        SELECT y.run_id, y.state
          FROM (SELECT x.run_id, x.state, x.data_interval_end FROM dagq.dag_run x
                 WHERE x.dag_id = w.upstream_dag_id AND x.logical_date <= w.target
                   AND x.run_type IN ('scheduled', 'backfill', 'triggered')
                 ORDER BY x.logical_date DESC LIMIT 1) y
         WHERE y.data_interval_end > w.target
    LOOP
        PERFORM 1 FROM dagq.dag_run x WHERE x.run_id = r.run_id FOR SHARE;
        SELECT x.state INTO st FROM dagq.dag_run x WHERE x.run_id = r.run_id;
        IF w.upstream_task_id IS NULL THEN
            st := CASE st WHEN 'success' THEN 'success' WHEN 'failed' THEN 'failed' END;
        ELSE
            SELECT CASE t.state WHEN 'success' THEN 'success' WHEN 'skipped' THEN 'skipped'
                                WHEN 'failed' THEN 'failed' WHEN 'upstream_failed' THEN 'failed' END
                   INTO st
              FROM dagq.task_instance t
             WHERE t.run_id = r.run_id AND t.task_id = w.upstream_task_id
               FOR SHARE;
            IF NOT FOUND THEN
                -- an ended run without the task (it started without it, or never started)
                SELECT CASE WHEN x.state IN ('success', 'failed') THEN 'failed' END INTO st
                  FROM dagq.dag_run x WHERE x.run_id = r.run_id;
            END IF;
        END IF;
        rank := (CASE st WHEN 'success' THEN 3 WHEN 'failed' THEN 2 ELSE 1 END);
        IF st IS NOT NULL AND rank > best THEN
            best := rank;
            outcome := st;
            run_id := r.run_id;
        END IF;
    END LOOP;
    IF outcome = 'failed' AND w.if_upstream_failed = 'skip' THEN
        outcome := 'skipped';
    END IF;
END;
$$;

-- Decides what it can of the open waits of task instances ids (whose rows
-- the caller holds): each decided wait is counted in its task instance's
-- counters. A wait that fails or skips leaves the waiting task instance a
-- note naming it (the trigger rule's verdict keeps it). Returns how many
-- were decided.
CREATE FUNCTION dagq.resolve_waits(ids bigint[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    w dagq.ti_external_wait;
    o record;
    n int := 0;
BEGIN
    FOR w IN SELECT * FROM dagq.ti_external_wait x
              WHERE x.ti_id = ANY (ids) AND x.state = 'waiting' ORDER BY x.wait_id LOOP
        o := dagq.wait_outcome(w);
        CONTINUE WHEN o.outcome IS NULL;
        UPDATE dagq.ti_external_wait SET state = o.outcome, upstream_run_id = o.run_id,
                                         decided_at = clock_timestamp()
         WHERE wait_id = w.wait_id AND state = 'waiting';
        CONTINUE WHEN NOT FOUND;
        UPDATE dagq.task_instance t
           SET up_success = t.up_success + (o.outcome = 'success')::int,
               up_failed = t.up_failed + (o.outcome = 'failed')::int,
               up_skipped = t.up_skipped + (o.outcome = 'skipped')::int,
               ext_done = t.ext_done + 1,
               note = CASE WHEN o.outcome <> 'success' AND t.state = 'scheduled' AND t.note IS NULL
                           THEN format('waited for %s for %s: %s in run %s',
                                       dagq.wait_text(w.upstream_dag_id, w.upstream_task_id),
                                       dagq.utc_text(w.target),
                                       CASE o.outcome WHEN 'failed' THEN 'it failed'
                                            ELSE CASE w.if_upstream_failed WHEN 'skip'
                                                 THEN 'it failed or was skipped (if_upstream_failed: skip)'
                                                 ELSE 'it was skipped' END END,
                                       o.run_id)
                           ELSE t.note END
         WHERE t.ti_id = w.ti_id;
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;

-- An instant as notes write it, whatever the session's TimeZone.
CREATE FUNCTION dagq.utc_text(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- "DAG etl task load", "DAG etl (its run)", for notes.
CREATE FUNCTION dagq.wait_text(p_dag text, p_task text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_task IS NULL THEN format('DAG %s (its run)', COALESCE(p_dag, '(deleted)'))
                ELSE format('DAG %s task %s', COALESCE(p_dag, '(deleted)'), p_task) END
$$;

-- At start_run: the waits of the run's task instances (new rows, nobody
-- else's yet), counted in up_total, decided at once where they can be. A
-- task instance with no in-run upstream starts its wait now: its deadline
-- is execution_timeout from now.
CREATE FUNCTION dagq.freeze_external_waits(p_run_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    WITH ins AS (
        INSERT INTO dagq.ti_external_wait (ti_id, upstream_dag_id, upstream_task_id, target,
                                           if_upstream_failed)
        SELECT ti.ti_id, e.upstream_dag_id, e.upstream_task_id,
               CASE WHEN e.logical_date_offset = interval '0' THEN r.logical_date
                    ELSE dagq.wall_instant((r.logical_date AT TIME ZONE d.timezone) + e.logical_date_offset,
                                           d.timezone) END,
               e.if_upstream_failed
          FROM dagq.task_instance ti
          JOIN dagq.dag_run r ON r.run_id = ti.run_id
          JOIN dagq.dag d ON d.dag_id = r.dag_id
          JOIN dagq.task_external_dependency e ON e.dag_id = ti.dag_id AND e.task_id = ti.task_id
         WHERE ti.run_id = p_run_id
         ORDER BY ti.ti_id, e.dep_id
        RETURNING ti_id
    )
    SELECT array_agg(DISTINCT ins.ti_id) INTO ids FROM ins;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    UPDATE dagq.task_instance t
       SET up_external = x.n, up_total = t.up_total + x.n,
           ext_deadline = CASE WHEN t.up_total = 0 THEN clock_timestamp() + t.execution_timeout END
      FROM (SELECT w.ti_id, count(*)::int AS n FROM dagq.ti_external_wait w
             WHERE w.ti_id = ANY (ids) GROUP BY w.ti_id) x
     WHERE t.ti_id = x.ti_id;
    PERFORM dagq.resolve_waits(ids);
END;
$$;

-- For the scheduler's pass: decides the waits that ends flagged ext_pending
-- may decide. Ends and waiting task instances someone else holds are left
-- for a later pass (their flags stay). Returns how many waits were decided.
CREATE FUNCTION dagq.propagate_external() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    ups bigint[];
    runs bigint[];
    held bigint[];
    c_src_ti bigint[];
    c_src_run bigint[];
    c_ti bigint[];
    n int;
BEGIN
    SELECT array_agg(s.ti_id) INTO ups
      FROM (SELECT ti_id FROM dagq.task_instance WHERE ext_pending
             ORDER BY ti_id LIMIT 1000 FOR UPDATE SKIP LOCKED) s;
    SELECT array_agg(s.run_id) INTO runs
      FROM (SELECT run_id FROM dagq.dag_run WHERE ext_pending
             ORDER BY run_id LIMIT 1000 FOR UPDATE SKIP LOCKED) s;
    IF ups IS NULL AND runs IS NULL THEN
        RETURN 0;
    END IF;
    -- the waits those ends may decide: by the ended task (or the run's DAG)
    -- and a logical date the run's interval holds; c_src_* say which end
    SELECT array_agg(c.src_ti), array_agg(c.src_run), array_agg(c.ti_id)
      INTO c_src_ti, c_src_run, c_ti
      FROM (SELECT x.ti_id AS src_ti, NULL::bigint AS src_run, w.ti_id
              FROM unnest(COALESCE(ups, '{}')) AS u(id)
              JOIN dagq.task_instance x ON x.ti_id = u.id
              JOIN dagq.dag_run r ON r.run_id = x.run_id
              JOIN dagq.ti_external_wait w
                ON w.state = 'waiting' AND w.upstream_dag_id = x.dag_id AND w.upstream_task_id = x.task_id
               AND w.target >= r.logical_date AND (w.target < r.data_interval_end OR w.target = r.logical_date)
            UNION ALL
            SELECT NULL, r.run_id, w.ti_id
              FROM unnest(COALESCE(runs, '{}')) AS u(id)
              JOIN dagq.dag_run r ON r.run_id = u.id
              JOIN dagq.ti_external_wait w
                ON w.state = 'waiting' AND w.upstream_dag_id = r.dag_id
               AND w.target >= r.logical_date AND (w.target < r.data_interval_end OR w.target = r.logical_date)) c;
    SELECT array_agg(s.ti_id) INTO held
      FROM (SELECT t.ti_id FROM dagq.task_instance t
             WHERE t.ti_id = ANY (COALESCE(c_ti, '{}'))
             ORDER BY t.ti_id FOR UPDATE SKIP LOCKED) s;
    held := COALESCE(held, '{}');
    n := dagq.resolve_waits(held);
    -- only ends whose every waiting task instance was ours are done with
    UPDATE dagq.task_instance SET ext_pending = false
     WHERE ti_id = ANY (COALESCE(ups, '{}'))
       AND ti_id NOT IN (SELECT c.src FROM unnest(c_src_ti, c_ti) AS c(src, ti)
                          WHERE c.src IS NOT NULL AND NOT (c.ti = ANY (held)));
    UPDATE dagq.dag_run SET ext_pending = false
     WHERE run_id = ANY (COALESCE(runs, '{}'))
       AND run_id NOT IN (SELECT c.src FROM unnest(c_src_run, c_ti) AS c(src, ti)
                           WHERE c.src IS NOT NULL AND NOT (c.ti = ANY (held)));
    RETURN n;
END;
$$;

-- For the scheduler's pass: task instances whose execution_timeout passed
-- while they waited for other DAGs fail, with a note naming what they
-- waited for. Returns them, for the log.
CREATE FUNCTION dagq.expire_external_waits()
RETURNS TABLE (ti_id bigint, run_id bigint, dag_id text, task_id text, worker_group text, note text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    t record;
    why text;
BEGIN
    FOR t IN SELECT x.ti_id, x.run_id, x.dag_id, x.task_id, x.try_number, x.execution_timeout,
                    x.worker_group
               FROM dagq.task_instance x
              WHERE x.state = 'scheduled' AND x.ext_deadline <= clock_timestamp()
                AND x.ext_done < x.up_external
              ORDER BY x.ti_id
                FOR UPDATE SKIP LOCKED LOOP
        SELECT format('timed out after %s (execution_timeout) waiting for %s',
                      dagq.duration_text(t.execution_timeout),
                      string_agg(format('%s for %s', dagq.wait_text(w.upstream_dag_id, w.upstream_task_id),
                                        dagq.utc_text(w.target)), ', ' ORDER BY w.wait_id))
          INTO why
          FROM dagq.ti_external_wait w WHERE w.ti_id = t.ti_id AND w.state = 'waiting';
        UPDATE dagq.task_instance x
           SET state = 'failed', ended_at = clock_timestamp(), note = why,
               end_pending = x.n_downstream > 0
         WHERE x.ti_id = t.ti_id AND x.state = 'scheduled';
        CONTINUE WHEN NOT FOUND;
        PERFORM dagq.emit('task_failed', t.dag_id, t.run_id, t.task_id, t.ti_id, t.try_number,
                          'failed', why);
        ti_id := t.ti_id;
        run_id := t.run_id;
        dag_id := t.dag_id;
        task_id := t.task_id;
        worker_group := t.worker_group;
        note := why;
        RETURN NEXT;
    END LOOP;
END;
$$;

