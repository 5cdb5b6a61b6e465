-- bench/web_bench.sh's data: DAG big with :n tasks (a 4-ary tree of edges),
-- :runs finished runs, each with all its task instances and one try each.
INSERT INTO dagq.dag (dag_id, owner) VALUES ('big', NULL);
INSERT INTO dagq.task (dag_id, task_id, command)
SELECT 'big', format('task_%s', lpad(i::text, 4, '0')), 'true' FROM generate_series(0, :n - 1) i;
INSERT INTO dagq.task_dependency (dag_id, task_id, upstream_task_id)
SELECT 'big', format('task_%s', lpad(i::text, 4, '0')), format('task_%s', lpad(((i - 1) / 4)::text, 4, '0'))
  FROM generate_series(1, :n - 1) i;
SET session_replication_role = replica;
INSERT INTO dagq.dag_run (dag_id, run_type, logical_date, data_interval_start, data_interval_end, state,
                          started_at, ended_at)
SELECT 'big', 'manual', t, t, t, CASE WHEN r % 7 = 0 THEN 'failed' ELSE 'success' END, t, t + interval '50 minutes'
  FROM generate_series(1, :runs) r, LATERAL (SELECT timestamptz '2024-01-01' + r * interval '1 hour' AS t) x;
INSERT INTO dagq.task_instance (run_id, dag_id, task_id, state, try_number, max_tries, worker_group, worker_id,
                                command, trigger_rule, retries, retry_delay, retry_exponential_backoff,
                                max_retry_delay, queued_at, started_at, ended_at, exit_code)
SELECT r.run_id, 'big', t.task_id,
       CASE WHEN r.state = 'failed' AND t.task_id = 'task_0007' THEN 'failed' ELSE 'success' END, 1, 1, 'default',
       'w1', 'true', 'all_success', 0, '5 minutes', false, '1 day', r.started_at,
       r.started_at + (random() * 40) * interval '1 minute', r.started_at + interval '45 minutes', 0
  FROM dagq.dag_run r CROSS JOIN dagq.task t WHERE t.dag_id = 'big';
INSERT INTO dagq.task_try (ti_id, try_number, worker_id, hostname, state, started_at, ended_at, exit_code)
SELECT ti_id, 1, 'w1', 'h', state, started_at, ended_at, 0 FROM dagq.task_instance;
SET session_replication_role = origin;
VACUUM ANALYZE;
