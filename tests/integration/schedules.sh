# Schedules (issue 11): `@every <duration>` measured from start_date, and
# `@once`, run by the scheduler as the database evaluates them.

. "$T_REPO/tests/etl_lib.sh"

case_every_intervals_are_measured_from_start_date() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, start_date, catchup)
VALUES ('every', '@every 2s', date_trunc('second', now()) - interval '9 seconds' + interval '0.4 seconds', true);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('every', 't', 'echo "$DAGQ_LOGICAL_DATE" >> ' || :'T' || '/ran');
SQL
    start_stack 1
    # the four intervals since start_date at once (catchup), then one every 2 s
    wait_until 20 "SELECT count(*) >= 7 FROM dagq.dag_run WHERE state = 'success'" t
    assert_eq t "$(sql "SELECT bool_and(data_interval_end - data_interval_start = interval '2 seconds')
        AND bool_and(logical_date = data_interval_start) FROM dagq.dag_run")" "2 s intervals, logical date at the start"
    assert_eq t "$(sql "SELECT bool_and(extract(epoch FROM logical_date - to_timestamp(floor(extract(epoch FROM d.start_date))))::numeric % 2 = 0)
        AND min(logical_date) = to_timestamp(floor(extract(epoch FROM min(d.start_date))))
        FROM dagq.dag_run, dagq.dag d")" "measured from start_date (to the second), the first at start_date"
    assert_eq t "$(sql "SELECT bool_and(r.created_at >= r.data_interval_end) FROM dagq.dag_run r")" "each created once its interval ended"
    assert_eq 0 "$(sql "SELECT count(*) FROM (SELECT logical_date FROM dagq.dag_run GROUP BY 1 HAVING count(*) > 1) x")" "each interval once"
    assert_eq t "$(sql "SELECT (SELECT array_agg(logical_date ORDER BY logical_date) FROM dagq.dag_run)
        = (SELECT array_agg(data_interval_start ORDER BY data_interval_start) FROM dagq.dag d,
               dagq.schedule_intervals(d.schedule, d.timezone, dagq.schedule_anchor(d.start_date, d.created_at),
                                       d.start_date - interval '1 second',
                                       (SELECT max(logical_date) FROM dagq.dag_run)))")" \
        "the scheduler's intervals are the database's (what a backfill would plan)"
}

case_once_runs_once_at_start_date() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, start_date) VALUES
  ('once_past', '@once', '2024-01-01 12:00:00+00'),
  ('once_soon', '@once', date_trunc('second', now()) + interval '8 seconds'),
  ('once_none', '@ONCE', NULL);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('once_past', 't', 'echo past >> ' || :'T' || '/ran'), ('once_soon', 't', 'echo soon >> ' || :'T' || '/ran'),
  ('once_none', 't', 'echo none >> ' || :'T' || '/ran');
SQL
    start_stack 1
    wait_until 20 "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'once_past' AND state = 'success'" 1
    assert_eq "2024-01-01 12:00:00+00|2024-01-01 12:00:00+00|scheduled" "$(sql "SELECT logical_date, data_interval_end, run_type
        FROM dagq.dag_run WHERE dag_id = 'once_past'")" "@once: one run at start_date, a zero-length interval"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'once_soon'")" "not before its start_date"
    wait_until 20 "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'once_soon' AND state = 'success'" 1
    wait_until 20 "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'once_none' AND state = 'success'" 1
    assert_eq t "$(sql "SELECT r.logical_date = to_timestamp(floor(extract(epoch FROM d.created_at))) FROM dagq.dag_run r
        JOIN dagq.dag d USING (dag_id) WHERE dag_id = 'once_none'")" "without a start_date: at its creation"
    sleep 3
    assert_eq "1|1|1" "$(sql "SELECT count(*) FILTER (WHERE dag_id = 'once_past'), count(*) FILTER (WHERE dag_id = 'once_soon'),
        count(*) FILTER (WHERE dag_id = 'once_none') FROM dagq.dag_run")" "and never again"
    assert_eq 3 "$(wc -l <"$T_CASE/ran")" "each ran once"
    assert_eq "1|2024-01-01 12:00:00+00|skip" "$(sql "SELECT count(*), min(logical_date), min(action) FROM dagq.backfill_plan('once_past', '2023-01-01', '2025-01-01')")" \
        "a backfill of @once plans its one interval (left alone: it has its run)"
}
