-- An example ETL DAG for the compose stack (loaded by the example-dag
-- service after the migration; running it again changes nothing).
-- extract -> (clean, enrich) -> load, hourly, on the 'default' worker group.
-- The DAG is owned by the role psql's variable owner names (the stack loads
-- it as its ETL team's author with -v owner=etl_team, so the team's
-- operators may act on it), else by whoever runs this.
\if :{?owner}
\else
SELECT current_user AS owner \gset
\endif
BEGIN;
INSERT INTO dagq.dag (dag_id, description, schedule, max_active_runs, owner)
VALUES ('example_etl', 'dagq example: extract, clean and enrich, load', '0 * * * *', 1, :'owner')
ON CONFLICT (dag_id) DO NOTHING;
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('example_etl', 'extract', 'echo "extracting for $DAGQ_LOGICAL_DATE"; sleep 1', 2, '10 seconds'),
  ('example_etl', 'clean',   'echo "cleaning run $DAGQ_RUN_ID"; sleep 1',         2, '10 seconds'),
  ('example_etl', 'enrich',  'echo "enriching try $DAGQ_TRY_NUMBER"; sleep 1',    2, '10 seconds'),
  ('example_etl', 'load',    'echo "loaded by $DAGQ_WORKER"',                     2, '10 seconds')
ON CONFLICT (dag_id, task_id) DO NOTHING;
INSERT INTO dagq.task_dependency (dag_id, task_id, upstream_task_id) VALUES
  ('example_etl', 'clean', 'extract'), ('example_etl', 'enrich', 'extract'),
  ('example_etl', 'load', 'clean'), ('example_etl', 'load', 'enrich')
ON CONFLICT DO NOTHING;
COMMIT;
