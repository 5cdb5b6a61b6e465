-- An example ETL DAG, defined the way ETL teams define DAGs in dagq: plain
-- SQL in one transaction. Load it with:  psql "$DAGQ_DATABASE_URL" -f examples/etl_daily.sql
-- The work directory comes from the DAG's params (override per run with
-- `dagq trigger etl_daily --conf '{"workdir": "/some/where"}'`).
BEGIN;

INSERT INTO dagq.dag (dag_id, description, schedule, timezone, start_date, catchup, params)
VALUES ('etl_daily', 'orders and customers into the sales mart, every night',
        '30 2 * * *', 'Europe/Berlin', '2024-01-01', false,
        '{"workdir": "/tmp/dagq-demo", "mart": "sales"}')
ON CONFLICT (dag_id) DO UPDATE SET description = EXCLUDED.description;

-- one load into the sales mart at a time, whichever DAG it comes from
INSERT INTO dagq.pool (pool, slots, description) VALUES ('sales_mart', 1, 'writers of the sales mart')
ON CONFLICT (pool) DO NOTHING;

DELETE FROM dagq.task WHERE dag_id = 'etl_daily';
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay, execution_timeout, priority) VALUES
  ('etl_daily', 'extract_orders',
   'mkdir -p {{ params.workdir }}/{{ ds }} && seq 1 1000 | awk ''{print $1 "," $1 % 97 "," $1 * 3}'' > {{ params.workdir }}/{{ ds }}/orders.csv && echo "extracted $(wc -l < {{ params.workdir }}/{{ ds }}/orders.csv) orders for {{ ds }}"',
   2, '10 seconds', '5 minutes', 10),
  ('etl_daily', 'extract_customers',
   'mkdir -p {{ params.workdir }}/{{ ds }} && seq 0 96 | awk ''{print $1 ",customer-" $1}'' > {{ params.workdir }}/{{ ds }}/customers.csv && echo "extracted 97 customers"',
   2, '10 seconds', '5 minutes', 10),
  ('etl_daily', 'transform',
   'cd {{ params.workdir }}/{{ ds }} && awk -F, ''NR==FNR {name[$1]=$2; next} {rev[name[$2]] += $3} END {for (c in rev) print c "," rev[c]}'' customers.csv orders.csv | sort > revenue.csv && echo "revenue for $(wc -l < revenue.csv) customers"',
   1, '10 seconds', '5 minutes', 0),
  ('etl_daily', 'load',
   'cd {{ params.workdir }}/{{ ds }} && cp revenue.csv {{ params.mart }}_mart_{{ ds_nodash }}.csv && echo "loaded into {{ params.mart }}_mart_{{ ds_nodash }}.csv (run {{ run_id }}, try $DAGQ_TRY_NUMBER)"',
   3, '5 seconds', '5 minutes', 0),
  ('etl_daily', 'report',
   'cd {{ params.workdir }}/{{ ds }} && echo "top customers on {{ ds }}:" && sort -t, -k2 -n -r revenue.csv | head -3',
   0, '5 minutes', '1 minute', 0);
UPDATE dagq.task SET trigger_rule = 'all_done' WHERE dag_id = 'etl_daily' AND task_id = 'report';
UPDATE dagq.task SET pool = 'sales_mart' WHERE dag_id = 'etl_daily' AND task_id = 'load';

INSERT INTO dagq.task_dependency (dag_id, task_id, upstream_task_id) VALUES
  ('etl_daily', 'transform', 'extract_orders'),
  ('etl_daily', 'transform', 'extract_customers'),
  ('etl_daily', 'load', 'transform'),
  ('etl_daily', 'report', 'load');

COMMIT;
