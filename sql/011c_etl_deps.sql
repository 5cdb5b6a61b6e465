-- dagq metastore, migration 011 (ETL features, 3 of 6): dependencies between
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

------------------------------------------------------------------------------
-- DAG triggers
------------------------------------------------------------------------------

-- After run p_run_id succeeded (in the same transaction): the DAGs it
-- triggers whose every trigger upstream now has a successful run for its
-- data interval get their run for that interval. Returns how many runs
-- were created.
CREATE FUNCTION dagq.fire_dag_triggers(p_run_id bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    r dagq.dag_run;
    d record;
    why text;
    rid bigint;
    n int := 0;
BEGIN
    SELECT * INTO r FROM dagq.dag_run WHERE run_id = p_run_id AND state = 'success';
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    FOR d IN SELECT t.dag_id FROM dagq.dag_trigger t WHERE t.upstream_dag_id = r.dag_id
              ORDER BY t.dag_id LOOP
        -- one decision at a time per triggered DAG, each seeing the ends
        -- committed before it
        PERFORM pg_advisory_xact_lock(1684107633, hashtext(d.dag_id));
        SELECT string_agg(format('%s run %s', t.upstream_dag_id, x.run_id), ', ' ORDER BY t.upstream_dag_id)
          INTO why
          FROM dagq.dag_trigger t
          LEFT JOIN LATERAL (SELECT y.run_id FROM dagq.dag_run y
                              WHERE y.dag_id = t.upstream_dag_id AND y.state = 'success'
                                AND y.data_interval_start = r.data_interval_start
                                AND y.data_interval_end = r.data_interval_end
                              ORDER BY y.run_id LIMIT 1) x ON true
         WHERE t.dag_id = d.dag_id
        HAVING count(*) = count(x.run_id);
        CONTINUE WHEN why IS NULL;
        INSERT INTO dagq.dag_run (dag_id, run_type, logical_date, data_interval_start,
                                  data_interval_end, note)
        VALUES (d.dag_id, 'triggered', r.data_interval_start, r.data_interval_start,
                r.data_interval_end, 'triggered by ' || why)
        ON CONFLICT (dag_id, logical_date) WHERE run_type IN ('scheduled', 'backfill', 'triggered')
        DO NOTHING
        RETURNING run_id INTO rid;
        IF rid IS NOT NULL THEN
            n := n + 1;
            PERFORM pg_notify('dagq', 'run');
        END IF;
    END LOOP;
    RETURN n;
END;
$$;

------------------------------------------------------------------------------
-- 008's functions, with the waits in their counters
------------------------------------------------------------------------------

-- As in 008; a task instance whose in-run upstreams are now all done and
-- that still waits for other DAGs starts its execution_timeout.
CREATE OR REPLACE FUNCTION dagq.propagate_ends() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    ids bigint[];
    held bigint[];
BEGIN
    SELECT array_agg(s.ti_id) INTO ids
      FROM (SELECT ti_id FROM dagq.task_instance WHERE end_pending
             ORDER BY ti_id LIMIT 10000 FOR UPDATE SKIP LOCKED) s;
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    SELECT array_agg(s.ti_id) INTO held
      FROM (SELECT x.ti_id FROM dagq.task_instance x
             WHERE x.ti_id IN (SELECT e.ti_id FROM dagq.task_instance_dependency e
                                WHERE e.upstream_ti_id = ANY (ids))
             ORDER BY x.ti_id FOR UPDATE SKIP LOCKED) s;
    -- only ends whose every downstream row is ours now
    ids := ARRAY(SELECT u.id FROM unnest(ids) AS u(id)
                  WHERE NOT EXISTS (SELECT 1 FROM dagq.task_instance_dependency e
                                     WHERE e.upstream_ti_id = u.id
                                       AND NOT (e.ti_id = ANY (COALESCE(held, '{}')))));
    UPDATE dagq.task_instance d
       SET up_success = d.up_success + x.ok, up_failed = d.up_failed + x.bad,
           up_skipped = d.up_skipped + x.skip,
           ext_deadline = CASE
               WHEN d.state = 'scheduled' AND d.up_external > d.ext_done AND d.ext_deadline IS NULL
                    AND d.up_success + x.ok + d.up_failed + x.bad + d.up_skipped + x.skip - d.ext_done
                        = d.up_total - d.up_external
               THEN clock_timestamp() + d.execution_timeout
               ELSE d.ext_deadline END
      FROM (SELECT e.ti_id,
                   count(*) FILTER (WHERE u.state = 'success') AS ok,
                   count(*) FILTER (WHERE u.state IN ('failed', 'upstream_failed')) AS bad,
                   count(*) FILTER (WHERE u.state = 'skipped') AS skip
              FROM dagq.task_instance u
              JOIN dagq.task_instance_dependency e ON e.upstream_ti_id = u.ti_id
             WHERE u.ti_id = ANY (ids)
             GROUP BY e.ti_id) x
     WHERE d.ti_id = x.ti_id;
    UPDATE dagq.task_instance SET end_pending = false WHERE ti_id = ANY (ids);
    RETURN cardinality(ids);
END;
$$;

-- As in 008; a task instance a wait has already given a note (what it
-- waited for, and what became of it) keeps it.
CREATE OR REPLACE FUNCTION dagq.settle_trigger_rules()
RETURNS TABLE (worker_group text, state text, n bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
#variable_conflict use_column
DECLARE
    moved int;
BEGIN
    LOOP
        PERFORM dagq.propagate_ends();
        RETURN QUERY
        WITH cand AS (
            SELECT ti.ti_id FROM dagq.task_instance ti
              JOIN dagq.dag_run r ON r.run_id = ti.run_id AND r.state = 'running'
              JOIN dagq.dag d ON d.dag_id = ti.dag_id AND NOT d.is_paused
             WHERE ti.state = 'scheduled'
               AND dagq.rule_verdict(ti.trigger_rule, ti.up_total, ti.up_success, ti.up_failed,
                                     ti.up_skipped) IS NOT NULL
               AND dagq.rule_verdict(ti.trigger_rule, ti.up_total, ti.up_success, ti.up_failed,
                                     ti.up_skipped) IN ('upstream_failed', 'skipped')
        ), locked AS (
            SELECT x.ti_id FROM dagq.task_instance x
             WHERE x.ti_id IN (SELECT cand.ti_id FROM cand)
             ORDER BY x.ti_id FOR UPDATE OF x SKIP LOCKED
        ), u AS (
            UPDATE dagq.task_instance t
               SET state = dagq.rule_verdict(t.trigger_rule, t.up_total, t.up_success,
                                             t.up_failed, t.up_skipped),
                   ended_at = clock_timestamp(),
                   note = COALESCE(t.note, 'by trigger rule ' || t.trigger_rule),
                   end_pending = t.n_downstream > 0
              FROM locked
             WHERE t.ti_id = locked.ti_id AND t.state = 'scheduled'
               AND dagq.rule_verdict(t.trigger_rule, t.up_total, t.up_success, t.up_failed,
                                     t.up_skipped) IN ('upstream_failed', 'skipped')
            RETURNING t.worker_group, t.state
        )
        SELECT u.worker_group, u.state, count(*) FROM u GROUP BY 1, 2;
        GET DIAGNOSTICS moved = ROW_COUNT;
        EXIT WHEN moved = 0;
    END LOOP;
END;
$$;

-- As in 008 (clear_unchecked since 010): the cleared task instances' waits
-- for other DAGs start over and are decided again from what those DAGs have
-- done by now, and a run that runs again gets its whole dagrun_timeout.
CREATE OR REPLACE FUNCTION dagq.clear_unchecked(p_run_id bigint, p_task_id text DEFAULT NULL,
                                                p_downstream boolean DEFAULT false)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
    targets bigint[];
    cleared bigint[];
    waiting bigint[];
BEGIN
    PERFORM 1 FROM dagq.dag_run WHERE run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.clear: unknown run %', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    IF p_task_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM dagq.task_instance WHERE run_id = p_run_id AND task_id = p_task_id) THEN
        RAISE EXCEPTION 'dagq.clear: run % has no task "%"', p_run_id, p_task_id
            USING ERRCODE = 'no_data_found';
    END IF;
    WITH RECURSIVE t(ti_id) AS (
        SELECT ti.ti_id FROM dagq.task_instance ti
         WHERE ti.run_id = p_run_id AND (p_task_id IS NULL OR ti.task_id = p_task_id)
        UNION
        SELECT e.ti_id FROM dagq.task_instance_dependency e JOIN t ON e.upstream_ti_id = t.ti_id
         WHERE p_downstream
    )
    SELECT array_agg(t.ti_id) INTO targets FROM t;
    PERFORM 1 FROM dagq.task_instance x
     WHERE x.ti_id = ANY (targets)
        OR x.ti_id IN (SELECT e.ti_id FROM dagq.task_instance_dependency e
                        WHERE e.upstream_ti_id = ANY (targets))
     ORDER BY x.ti_id
       FOR UPDATE;
    -- read with the locks held: a new statement, a new snapshot
    SELECT array_agg(x.ti_id) INTO cleared FROM dagq.task_instance x
     WHERE x.ti_id = ANY (targets)
       AND x.state IN ('success', 'failed', 'upstream_failed', 'skipped', 'up_for_retry');
    n := COALESCE(cardinality(cleared), 0);
    IF n = 0 THEN
        RETURN 0;
    END IF;
    -- downstreams were told of these ends (unless still pending): take them back
    UPDATE dagq.task_instance d
       SET up_success = d.up_success - x.ok, up_failed = d.up_failed - x.bad,
           up_skipped = d.up_skipped - x.skip
      FROM (SELECT e.ti_id,
                   count(*) FILTER (WHERE u.state = 'success') AS ok,
                   count(*) FILTER (WHERE u.state IN ('failed', 'upstream_failed')) AS bad,
                   count(*) FILTER (WHERE u.state = 'skipped') AS skip
              FROM dagq.task_instance u
              JOIN dagq.task_instance_dependency e ON e.upstream_ti_id = u.ti_id
             WHERE u.ti_id = ANY (cleared) AND NOT u.end_pending
             GROUP BY e.ti_id) x
     WHERE d.ti_id = x.ti_id;
    UPDATE dagq.task_instance ti
       SET state = 'scheduled', max_tries = ti.try_number + ti.retries + 1,
           worker_id = NULL, incarnation = NULL, hostname = NULL, queued_at = NULL,
           pushed_at = NULL, started_at = NULL, ended_at = NULL, next_retry_at = NULL, exit_code = NULL, note = NULL,
           end_pending = false
     WHERE ti.ti_id = ANY (cleared);
    -- what the cleared ones wait for now: their upstreams as they stand
    UPDATE dagq.task_instance d
       SET up_success = x.ok, up_failed = x.bad, up_skipped = x.skip, ext_done = 0,
           ext_deadline = CASE WHEN d.up_external > 0 AND x.ok + x.bad + x.skip = d.up_total - d.up_external
                               THEN clock_timestamp() + d.execution_timeout END
      FROM (SELECT c.ti_id,
                   count(u.ti_id) FILTER (WHERE u.state = 'success' AND NOT u.end_pending) AS ok,
                   count(u.ti_id) FILTER (WHERE u.state IN ('failed', 'upstream_failed')
                                            AND NOT u.end_pending) AS bad,
                   count(u.ti_id) FILTER (WHERE u.state = 'skipped' AND NOT u.end_pending) AS skip
              FROM unnest(cleared) AS c(ti_id)
              LEFT JOIN dagq.task_instance_dependency e ON e.ti_id = c.ti_id
              LEFT JOIN dagq.task_instance u ON u.ti_id = e.upstream_ti_id
             GROUP BY c.ti_id) x
     WHERE d.ti_id = x.ti_id;
    -- and their waits for other DAGs, decided again
    SELECT array_agg(x.ti_id) INTO waiting FROM dagq.task_instance x
     WHERE x.ti_id = ANY (cleared) AND x.up_external > 0;
    IF waiting IS NOT NULL THEN
        UPDATE dagq.ti_external_wait SET state = 'waiting', upstream_run_id = NULL, decided_at = NULL
         WHERE ti_id = ANY (waiting);
        PERFORM dagq.resolve_waits(waiting);
    END IF;
    PERFORM dagq.revive_run(p_run_id);
    PERFORM pg_notify('dagq', p_run_id::text);
    RETURN n;
END;
$$;

-- As in 008; a run that succeeds fires the DAG triggers it completes.
CREATE OR REPLACE FUNCTION dagq.finish_runs()
RETURNS TABLE (run_id bigint, dag_id text, state text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
#variable_conflict use_column
DECLARE
    rec record;
    v text;
    prev text;
BEGIN
    FOR rec IN SELECT r.run_id, r.dag_id FROM dagq.dag_run r
                WHERE r.state = 'running'
                  AND NOT EXISTS (SELECT 1 FROM dagq.task_instance ti
                                   WHERE ti.run_id = r.run_id
                                     AND ti.state IN ('scheduled', 'queued', 'running', 'up_for_retry'))
                ORDER BY r.run_id
                  FOR UPDATE OF r SKIP LOCKED LOOP
        -- the run is ours: look again, with what committed until we got it
        CONTINUE WHEN EXISTS (SELECT 1 FROM dagq.task_instance ti
                               WHERE ti.run_id = rec.run_id
                                 AND ti.state IN ('scheduled', 'queued', 'running', 'up_for_retry'));
        v := CASE WHEN EXISTS (SELECT 1 FROM dagq.task_instance ti
                                WHERE ti.run_id = rec.run_id AND ti.n_downstream = 0
                                  AND ti.state IN ('failed', 'upstream_failed'))
                  THEN 'failed' ELSE 'success' END;
        UPDATE dagq.dag_run x SET state = v, ended_at = clock_timestamp()
         WHERE x.run_id = rec.run_id AND x.state = 'running';
        CONTINUE WHEN NOT FOUND;
        PERFORM dagq.emit(CASE v WHEN 'failed' THEN 'run_failed' ELSE 'run_succeeded' END,
                          rec.dag_id, rec.run_id, p_state => v);
        IF v = 'success' THEN
            SELECT p.state INTO prev FROM dagq.dag_run p
             WHERE p.dag_id = rec.dag_id AND p.run_id <> rec.run_id
               AND p.state IN ('success', 'failed')
             ORDER BY p.ended_at DESC LIMIT 1;
            IF prev = 'failed' THEN
                PERFORM dagq.emit('run_recovered', rec.dag_id, rec.run_id, p_state => v);
            END IF;
            PERFORM dagq.fire_dag_triggers(rec.run_id);
        END IF;
        run_id := rec.run_id;
        dag_id := rec.dag_id;
        state := v;
        RETURN NEXT;
    END LOOP;
END;
$$;

------------------------------------------------------------------------------
-- What DAGs wait on
------------------------------------------------------------------------------

CREATE VIEW dagq.dag_waits_on AS
SELECT e.dag_id, e.task_id, 'task'::text AS kind, e.upstream_dag_id, e.upstream_task_id,
       e.logical_date_offset, e.if_upstream_failed
  FROM dagq.task_external_dependency e
UNION ALL
SELECT t.dag_id, NULL, 'trigger', t.upstream_dag_id, NULL, NULL, NULL
  FROM dagq.dag_trigger t;

COMMENT ON VIEW dagq.dag_waits_on IS
    'What each DAG waits on: kind task (a task waits for another DAG''s task or run, '
    'dagq.task_external_dependency) or trigger (the DAG runs when its upstream DAGs succeeded, dagq.dag_trigger).';

CREATE VIEW dagq.external_waits AS
SELECT w.wait_id, ti.run_id, ti.dag_id, ti.task_id, ti.ti_id, ti.state AS task_state,
       w.upstream_dag_id, w.upstream_task_id, w.target AS upstream_logical_date,
       w.if_upstream_failed, w.state, w.upstream_run_id, w.decided_at,
       ti.ext_deadline AS deadline
  FROM dagq.ti_external_wait w
  JOIN dagq.task_instance ti ON ti.ti_id = w.ti_id;

COMMENT ON VIEW dagq.external_waits IS
    'Each task instance''s waits for other DAGs: the upstream and the logical date waited for, '
    'and whether it is waiting or decided (and by which run).';
