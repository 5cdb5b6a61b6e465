-- dagq metastore, migration 005: figures for operators and autoscalers.
--
-- dagq.worker_group_backlog has one row per worker group that has work in
-- flight or a live worker: what `dagq queues` prints (without the broker's
-- side) and what the daemons export on /metrics. An autoscaler (KEDA's
-- postgresql scaler, say) reads it with a plain SELECT.

CREATE VIEW dagq.worker_group_backlog AS
WITH live AS (
    -- the same threshold as `dagq workers`: no heartbeat for 60 s is lost
    SELECT w.worker_id, unnest(w.groups) AS worker_group, w.slots, w.running
      FROM dagq.worker w
     WHERE w.state = 'up' AND w.heartbeat_at >= clock_timestamp() - interval '60 seconds'
), ti AS (
    SELECT t.worker_group,
           count(*) FILTER (WHERE t.state = 'queued') AS queued,
           count(*) FILTER (WHERE t.state = 'running') AS running,
           min(t.queued_at) FILTER (WHERE t.state = 'queued') AS oldest_queued_at
      FROM dagq.task_instance t
     WHERE t.state IN ('queued', 'running')
     GROUP BY t.worker_group
), ready AS (
    SELECT t.worker_group, count(*) AS n
      FROM (SELECT v.ti_id FROM dagq.ti_verdict v WHERE v.verdict = 'run'
            UNION ALL
            SELECT r.ti_id
              FROM dagq.task_instance r
              JOIN dagq.dag_run dr ON dr.run_id = r.run_id AND dr.state = 'running'
              JOIN dagq.dag d ON d.dag_id = r.dag_id AND NOT d.is_paused
             WHERE r.state = 'up_for_retry' AND r.next_retry_at <= clock_timestamp()) x
      JOIN dagq.task_instance t ON t.ti_id = x.ti_id
     GROUP BY t.worker_group
), wg AS (
    SELECT l.worker_group, count(*) AS live_workers,
           sum(greatest(l.slots - l.running, 0)) AS free_slots
      FROM live l
     GROUP BY l.worker_group
), groups AS (
    SELECT worker_group FROM ti
    UNION SELECT worker_group FROM ready
    UNION SELECT worker_group FROM wg
)
SELECT g.worker_group,
       COALESCE(ti.queued, 0)::bigint AS queued,
       COALESCE(ready.n, 0)::bigint AS ready,
       COALESCE(ti.running, 0)::bigint AS running,
       COALESCE(wg.live_workers, 0)::bigint AS live_workers,
       COALESCE(wg.free_slots, 0)::bigint AS free_slots,
       COALESCE(extract(epoch FROM clock_timestamp() - ti.oldest_queued_at), 0)::float8
           AS oldest_queued_age_s
  FROM groups g
  LEFT JOIN ti USING (worker_group)
  LEFT JOIN ready USING (worker_group)
  LEFT JOIN wg USING (worker_group);

COMMENT ON VIEW dagq.worker_group_backlog IS
    'Per worker group: tries queued in the metastore, tries ready to be queued, running tries, '
    'live workers (heartbeat in the last 60 s, not draining), their free slots, and the age in '
    'seconds of the oldest queued try. The broker''s own backlog is not here: see dagq queues.';
