-- dagq metastore, migration 014: retention of the finished history.
--
-- dagq.prune_history deletes finished runs (success or failed) that ended
-- longer ago than a given age, with everything hanging off them: their task
-- instances, tries, logs, frozen edges and events (with the events' alert
-- deliveries), in bounded batches, each of which is one short transaction
-- when called on its own (`dagq db prune`) or one step of a scheduler's
-- housekeeping pass (`dagq-scheduler --retention`). Never a run that is
-- queued or running, nor one with a task instance that is not finished
-- (scheduled, queued, running, up_for_retry): a run is locked, skipping
-- runs someone else holds (a clear in progress), and looked at again with
-- the lock held before anything of it is deleted, so a clear that committed
-- meanwhile keeps its run. Events whose alert delivery is still pending are
-- kept until it is not. Events of no run (dag_parked, workers_missing, test)
-- older than the age go too.
--
-- Why batched deletes and not partitions (measured on 10M task instances in
-- 1M runs: see BENCHMARKS.md, "Retention"): partitioning task_instance by
-- month would make a month's prune a DROP, but it puts the partition key into
-- the primary key of task_instance and into every foreign key that points at
-- it (task_try, task_log, task_instance_dependency), a DROP or DETACH takes an
-- ACCESS EXCLUSIVE lock on the parent that queues behind every open read of
-- it (a dagq-web page) and stalls every claim and finish behind itself, and
-- the hot path already reads through partial indexes of unfinished work whose
-- size does not follow the history. A batch of deletes takes only the row
-- locks of what it deletes.

-- the oldest finished runs first, whatever their DAG
CREATE INDEX dag_run_ended ON dagq.dag_run (ended_at) WHERE state IN ('success', 'failed');
-- events of no run, by age
CREATE INDEX event_runless ON dagq.event (created_at) WHERE run_id IS NULL;

-- Finished runs that may be pruned at p_cutoff: ended before it, no task
-- instance of theirs unfinished, and no running backfill still to rerun
-- them (reprocess 'failed' or 'all' over old dates: the user asked for that
-- run again, not for its interval to be skipped as deleted).
CREATE FUNCTION dagq.prunable_run(p_run_id bigint, p_state text, p_ended_at timestamptz,
                                  p_cutoff timestamptz)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p_state IN ('success', 'failed') AND p_ended_at < p_cutoff
       AND NOT EXISTS (SELECT 1 FROM dagq.task_instance t
                        WHERE t.run_id = p_run_id
                          AND t.state IN ('scheduled', 'queued', 'running', 'up_for_retry'))
       AND NOT EXISTS (SELECT 1 FROM dagq.backfill_run e JOIN dagq.backfill b USING (backfill_id)
                        WHERE e.run_id = p_run_id AND e.started_at IS NULL AND e.action <> 'skip'
                          AND b.state = 'running')
$$;

CREATE FUNCTION dagq.prune_cutoff(p_older_than interval, p_what text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_older_than IS NULL OR p_older_than <= interval '0' THEN
        RAISE EXCEPTION '%: the age must be more than 0, got %', p_what, COALESCE(p_older_than::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN clock_timestamp() - p_older_than;
END;
$$;

-- One batch: at most p_batch runs (the oldest first) and at most 10 x p_batch
-- events of no run. Returns what it deleted; runs = 0 and events = 0 when
-- nothing is left to prune.
CREATE FUNCTION dagq.prune_history(p_older_than interval, p_batch int DEFAULT 500)
RETURNS TABLE (runs int, task_instances int, tries int, logs int, events int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp
SET lock_timeout = '2s' AS $$
#variable_conflict use_column
DECLARE
    cutoff timestamptz := dagq.prune_cutoff(p_older_than, 'dagq.prune_history');
    rids bigint[];
    tids bigint[];
    n_ti int := 0;
    n_try int := 0;
    n_log int := 0;
    n_ev int := 0;
    k int;
BEGIN
    IF p_batch IS NULL OR p_batch < 1 OR p_batch > 100000 THEN
        RAISE EXCEPTION 'dagq.prune_history: the batch must be 1 to 100000 runs, got %', p_batch
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- lock the candidates, skipping runs someone holds (a clear locks its
    -- run before it changes anything)
    SELECT array_agg(x.run_id) INTO rids
      FROM (SELECT r.run_id FROM dagq.dag_run r
             WHERE r.state IN ('success', 'failed') AND r.ended_at < cutoff
               AND dagq.prunable_run(r.run_id, r.state, r.ended_at, cutoff)
             ORDER BY r.ended_at
             LIMIT p_batch
               FOR UPDATE OF r SKIP LOCKED) x;
    IF rids IS NOT NULL THEN
        -- the runs are ours: look again, with what committed until we got them
        rids := ARRAY(SELECT r.run_id FROM dagq.dag_run r
                       WHERE r.run_id = ANY (rids)
                         AND dagq.prunable_run(r.run_id, r.state, r.ended_at, cutoff));
        -- their task instances, in ti_id order (the order every function
        -- that locks several takes them in), skipping rows someone holds:
        -- a run with one of those waits for a later batch, so nothing here
        -- ever waits for a lock
        tids := ARRAY(SELECT t.ti_id FROM dagq.task_instance t WHERE t.run_id = ANY (rids)
                       ORDER BY t.ti_id FOR UPDATE SKIP LOCKED);
        rids := ARRAY(SELECT u.id FROM unnest(rids) AS u(id)
                       WHERE NOT EXISTS (SELECT 1 FROM dagq.task_instance t
                                          WHERE t.run_id = u.id AND NOT (t.ti_id = ANY (tids))));
        tids := ARRAY(SELECT t.ti_id FROM dagq.task_instance t WHERE t.run_id = ANY (rids));
        -- what hangs off the task instances, set-wise (the foreign keys'
        -- cascades would do it one row at a time)
        DELETE FROM dagq.task_log l WHERE l.ti_id = ANY (tids);
        GET DIAGNOSTICS n_log = ROW_COUNT;
        DELETE FROM dagq.task_try y WHERE y.ti_id = ANY (tids);
        GET DIAGNOSTICS n_try = ROW_COUNT;
        DELETE FROM dagq.task_instance_dependency e WHERE e.ti_id = ANY (tids);
        DELETE FROM dagq.task_instance t WHERE t.ti_id = ANY (tids);
        GET DIAGNOSTICS n_ti = ROW_COUNT;
        DELETE FROM dagq.event e
         WHERE e.run_id = ANY (rids)
           AND NOT EXISTS (SELECT 1 FROM dagq.alert_delivery a
                            WHERE a.event_id = e.event_id AND a.state = 'pending');
        GET DIAGNOSTICS n_ev = ROW_COUNT;
        DELETE FROM dagq.dag_run r WHERE r.run_id = ANY (rids);
    END IF;
    DELETE FROM dagq.event e
     WHERE e.event_id IN (SELECT x.event_id FROM dagq.event x
                           WHERE x.run_id IS NULL AND x.created_at < cutoff
                             AND NOT EXISTS (SELECT 1 FROM dagq.alert_delivery a
                                              WHERE a.event_id = x.event_id AND a.state = 'pending')
                           ORDER BY x.created_at
                           LIMIT p_batch * 10
                             FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS k = ROW_COUNT;
    runs := COALESCE(cardinality(rids), 0);
    task_instances := n_ti;
    tries := n_try;
    logs := n_log;
    events := n_ev + k;
    RETURN NEXT;
END;
$$;

-- What dagq.prune_history would delete now, per DAG (a dry run: changes
-- nothing): runs, their task instances, the events that would go (of those
-- runs, and of no run), and when the oldest and newest of those runs ended.
CREATE FUNCTION dagq.prune_preview(p_older_than interval)
RETURNS TABLE (dag_id text, runs bigint, task_instances bigint, events bigint,
               oldest_ended timestamptz, newest_ended timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
#variable_conflict use_column
DECLARE
    cutoff timestamptz := dagq.prune_cutoff(p_older_than, 'dagq.prune_preview');
BEGIN
    RETURN QUERY
    WITH r AS (
        SELECT r.run_id, r.dag_id, r.ended_at FROM dagq.dag_run r
         WHERE r.state IN ('success', 'failed') AND r.ended_at < cutoff
           AND dagq.prunable_run(r.run_id, r.state, r.ended_at, cutoff)
    ), per_run AS (
        SELECT r.dag_id, count(*) AS runs, min(r.ended_at) AS oldest, max(r.ended_at) AS newest,
               sum((SELECT count(*) FROM dagq.task_instance t WHERE t.run_id = r.run_id)) AS tis
          FROM r GROUP BY r.dag_id
    ), ev AS (
        SELECT e.dag_id, count(*) AS n FROM dagq.event e
         WHERE (e.run_id IN (SELECT r.run_id FROM r)
                OR (e.run_id IS NULL AND e.created_at < cutoff))
           AND NOT EXISTS (SELECT 1 FROM dagq.alert_delivery a
                            WHERE a.event_id = e.event_id AND a.state = 'pending')
         GROUP BY e.dag_id
    )
    SELECT COALESCE(p.dag_id, ev.dag_id), COALESCE(p.runs, 0), COALESCE(p.tis, 0)::bigint,
           COALESCE(ev.n, 0), p.oldest, p.newest
      FROM per_run p FULL JOIN ev ON ev.dag_id = p.dag_id
     ORDER BY 1;
END;
$$;

GRANT EXECUTE ON FUNCTION dagq.prune_history(interval, int), dagq.prune_preview(interval)
    TO dagq_admin, dagq_scheduler;
-- `dagq db prune` prunes the rows of long-gone workers too
GRANT EXECUTE ON FUNCTION dagq.prune_workers(interval) TO dagq_admin;
