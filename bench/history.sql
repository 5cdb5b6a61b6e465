-- bench/history.sql — :runs finished runs of :per task instances each (a
-- chain: t0 -> t1 -> ...), spread evenly over the two years before now, with
-- what the real ones would have: a try and a log per task instance, the
-- run's frozen edges and its run_succeeded event. Set-wise, in one
-- transaction, with the secondary indexes of the tables it fills dropped
-- and built again at the end (much faster than keeping them up row by row)
-- and the foreign-key and validation triggers skipped (the rows are
-- consistent by construction). Run as a superuser on a benchmark database.
\set ON_ERROR_STOP 1
SET synchronous_commit = off;
SET maintenance_work_mem = '1GB';
SET session_replication_role = replica;
BEGIN;
CREATE TEMP TABLE hist_idx AS
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
  FROM pg_index i
 WHERE i.indrelid IN ('dagq.dag_run'::regclass, 'dagq.task_instance'::regclass,
                      'dagq.task_try'::regclass, 'dagq.task_log'::regclass,
                      'dagq.task_instance_dependency'::regclass, 'dagq.event'::regclass)
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
SELECT format('DROP INDEX %s', name) FROM hist_idx \gexec

INSERT INTO dagq.dag (dag_id, owner) SELECT 'hist_' || d, NULL FROM generate_series(1, 100) d;
INSERT INTO dagq.dag_run (dag_id, run_type, logical_date, data_interval_start, data_interval_end,
                          state, conf, params, created_at, started_at, ended_at)
SELECT 'hist_' || (g % 100 + 1), 'scheduled', ts, ts, ts + interval '1 hour', 'success', '{}', '{}',
       ts, ts + interval '1 second', ts + interval '10 minutes'
  FROM generate_series(1, :runs) g,
       LATERAL (SELECT now() - interval '730 days' + (g - 1) * (interval '729 days' / :runs) AS ts) x;
INSERT INTO dagq.task_instance (run_id, dag_id, task_id, state, try_number, max_tries, worker_group,
                                worker_id, hostname, command, trigger_rule, retries, retry_delay,
                                retry_exponential_backoff, max_retry_delay, queued_at, pushed_at,
                                started_at, ended_at, exit_code, up_total, up_success, n_downstream)
SELECT r.run_id, r.dag_id, 't' || k, 'success', 1, 1, 'default', 'old', 'old', 'true', 'all_success',
       0, interval '5 minutes', false, interval '1 day', r.started_at + k * interval '1 second',
       r.started_at + k * interval '1 second', r.started_at + k * interval '1 second',
       r.started_at + (k + 1) * interval '1 second', 0, least(k, 1), least(k, 1),
       CASE WHEN k < :per - 1 THEN 1 ELSE 0 END
  FROM dagq.dag_run r CROSS JOIN generate_series(0, :per - 1) k
 WHERE r.dag_id LIKE 'hist\_%'
 ORDER BY r.run_id, k;
INSERT INTO dagq.task_try (ti_id, try_number, worker_id, hostname, state, started_at, ended_at, exit_code)
SELECT ti_id, 1, worker_id, hostname, 'success', started_at, ended_at, 0
  FROM dagq.task_instance WHERE worker_id = 'old';
INSERT INTO dagq.task_log (ti_id, try_number, output, created_at)
SELECT ti_id, 1, '', ended_at FROM dagq.task_instance WHERE worker_id = 'old';
-- the chain's edges: ti_ids are consecutive within a run
INSERT INTO dagq.task_instance_dependency (ti_id, upstream_ti_id)
SELECT ti_id, ti_id - 1 FROM dagq.task_instance WHERE worker_id = 'old' AND task_id <> 't0';
INSERT INTO dagq.event (event, created_at, dag_id, run_id, state)
SELECT 'run_succeeded', ended_at, dag_id, run_id, 'success' FROM dagq.dag_run WHERE dag_id LIKE 'hist\_%';

SELECT def FROM hist_idx \gexec
COMMIT;
