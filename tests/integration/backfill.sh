# Backfills (issue 11): every interval of a range once, in order, within
# their own cap and the DAG's, beside the DAG's own schedule, under two
# schedulers; reruns of failed intervals only; two overlapping backfills
# at once.

. "$T_REPO/tests/etl_lib.sh"

# A daily DAG (Berlin midnights) whose task takes 0.3 s, and 3 s on SLOW.
backfill_dag() { # DAG SLOW
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id, schedule, timezone, start_date, end_date, catchup)
VALUES ('$1', '@daily', 'Europe/Berlin', '2024-01-01', '2024-12-31', false);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('$1', 't', 'if [ {{ ds }} = $2 ]; then sleep 3; else sleep 0.3; fi; echo {{ ds }} >> ' || :'T' || '/$1');
SQL
}

case_backfill_30_daily_intervals_3_at_a_time_in_order() {
    backfill_dag fwd 2023-12-31 # {{ ds }} is the UTC date: Berlin midnight of Jan 1 is Dec 31, 23:00 UTC
    backfill_dag rev 2024-01-29
    local plan
    plan=$("$T_BIN/dagq" backfill fwd --from 2024-01-01 --to 2024-01-30 --max-active-runs 3 --dry-run)
    assert_contains "$plan" "30 intervals: 30 to create, 0 to rerun, 0 left alone (dry run" "the dry run counts them"
    assert_contains "$plan" "2023-12-31 23:00:00  2024-01-01 23:00:00  create" "the first is Berlin's midnight, in UTC"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.dag_run")" "a dry run creates nothing"
    start_scheduler sched
    for i in 1 2; do start_worker "w$i" --slots 4; done
    local f r
    f=$("$T_BIN/dagq" backfill fwd --from 2024-01-01 --to 2024-01-30 --max-active-runs 3) || fail "backfill fwd"
    r=$("$T_BIN/dagq" backfill rev --from 2024-01-01 --to 2024-01-30 --max-active-runs 3 --reverse) || fail "backfill rev"
    assert_eq running "$(sql "SELECT state FROM dagq.backfill WHERE backfill_id = $f")" "the backfill runs"
    assert_eq done "$(wait_backfill "$f" 120)" "the forward backfill ends"
    assert_eq done "$(wait_backfill "$r" 120)" "the reverse backfill ends"
    local b dag
    for b in "$f fwd" "$r rev"; do
        dag=${b#* }
        b=${b% *}
        assert_eq "30|30|30|success" "$(sql "SELECT count(*), count(DISTINCT logical_date), count(*) FILTER (WHERE run_type = 'backfill'),
            min(state) FROM dagq.dag_run WHERE backfill_id = $b")" "$dag: 30 runs, one per interval, all succeeded"
        assert_eq t "$(sql "SELECT bool_and(data_interval_end = ((logical_date AT TIME ZONE 'Europe/Berlin') + interval '1 day') AT TIME ZONE 'Europe/Berlin')
            FROM dagq.dag_run WHERE backfill_id = $b")" "$dag: daily intervals in the DAG's time zone"
        assert_eq 3 "$(max_overlap "WHERE r.backfill_id = $b")" "$dag: never more than 3 running at once (and 3 were)"
        assert_eq 30 "$(sort -u "$T_CASE/$dag" | wc -l)" "$dag: each interval ran"
        assert_eq 30 "$(wc -l <"$T_CASE/$dag")" "$dag: once"
    done
    assert_eq t "$(sql "SELECT bool_and(started_at >= prev) FROM (SELECT started_at, lag(started_at) OVER (ORDER BY logical_date) AS prev
        FROM dagq.dag_run WHERE backfill_id = $f) x WHERE prev IS NOT NULL")" "fwd: started oldest first"
    assert_eq t "$(sql "SELECT bool_and(started_at >= prev) FROM (SELECT started_at, lag(started_at) OVER (ORDER BY logical_date DESC) AS prev
        FROM dagq.dag_run WHERE backfill_id = $r) x WHERE prev IS NOT NULL")" "rev: started newest first"
    # the slow first run holds one slot; the others go on in the other two
    assert_eq t "$(sql "SELECT s.started_at < f.ended_at FROM
        (SELECT started_at FROM dagq.dag_run WHERE backfill_id = $f ORDER BY logical_date OFFSET 5 LIMIT 1) s,
        (SELECT ended_at FROM dagq.dag_run WHERE backfill_id = $f ORDER BY logical_date LIMIT 1) f")" \
        "the sixth run started before the slow first one ended (no batch waits for its slowest run)"
    local out
    out=$("$T_BIN/dagq" backfills fwd)
    assert_contains "$(head -1 <<<"$out" | tr -s ' ')" "BACKFILL DAG FROM TO REPROCESS ORDER MAX ACTIVE STATE RUNS WAITING RUNNING SUCCEEDED FAILED LEFT ALONE BY CREATED" "dagq backfills: header"
    assert_contains "$(sed -n 2p <<<"$out" | tr -s ' ')" "$f fwd 2023-12-31 23:00:00 2024-01-29 23:00:00 none oldest first 3 done 30 0 0 30 0 0" "dagq backfills: progress"
}

case_backfill_reruns_failed_intervals_only() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, start_date, end_date, catchup) VALUES ('rr', '@daily', '2024-02-01', '2024-12-31', false);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('rr', 'extract', 'echo {{ ds }} >> ' || :'T' || '/extract'),
  ('rr', 'load', '[ -e ' || :'T' || '/fail_{{ ds }} ] && exit 1; echo {{ ds }} >> ' || :'T' || '/load');
INSERT INTO dagq.task_dependency VALUES ('rr', 'load', 'extract');
SQL
    touch "$T_CASE/fail_2024-02-02" "$T_CASE/fail_2024-02-04"
    start_stack 2
    local b1 b2
    b1=$("$T_BIN/dagq" backfill rr --from 2024-02-01 --to 2024-02-06) || fail "first backfill"
    assert_eq done "$(wait_backfill "$b1" 60)" "the first backfill"
    assert_eq "failed:2|success:4" "$(sql "SELECT string_agg(state || ':' || n, '|' ORDER BY state) FROM
        (SELECT state, count(*) AS n FROM dagq.dag_run GROUP BY state) x")" "two intervals failed"
    rm "$T_CASE"/fail_*
    assert_contains "$("$T_BIN/dagq" backfill rr --from 2024-02-01 --to 2024-02-08 --dry-run)" \
        "8 intervals: 2 to create, 0 to rerun, 6 left alone" "reprocess none leaves the failed ones alone"
    b2=$("$T_BIN/dagq" backfill rr --from 2024-02-01 --to 2024-02-08 --reprocess failed) || fail "second backfill"
    assert_eq done "$(wait_backfill "$b2" 60)" "the second backfill"
    assert_eq "8|8|success" "$(sql "SELECT count(*), count(DISTINCT logical_date), min(state) FROM dagq.dag_run")" \
        "8 runs, one per interval, all succeeded"
    assert_eq "2024-02-02 2024-02-04" "$(sql "SELECT string_agg(to_char(r.logical_date, 'YYYY-MM-DD'), ' ' ORDER BY r.logical_date)
        FROM dagq.dag_run r JOIN dagq.task_instance t USING (run_id) WHERE t.task_id = 'load' AND t.try_number = 2")" \
        "only the failed intervals' failed task ran again"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_instance WHERE task_id = 'extract' AND try_number > 1")" \
        "their successful tasks did not"
    assert_eq 8 "$(wc -l <"$T_CASE/extract")" "extract ran once per interval"
    assert_eq 8 "$(sort -u "$T_CASE/load" | wc -l)" "load succeeded for every interval"
    assert_eq "4|4|0" "$(sql "SELECT runs, left_alone, failed FROM dagq.backfill_progress WHERE backfill_id = $b2")" \
        "the rerun backfill: 2 reruns and 2 new runs, 4 left alone"
}

case_two_overlapping_backfills_at_once_create_each_run_once() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, start_date, end_date, catchup) VALUES ('ov', '@daily', '2024-03-01', '2024-12-31', false);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('ov', 't', 'echo {{ ds }} >> ' || :'T' || '/ran');
SQL
    # the first has created its runs and not committed when the second decides
    hold bf1 3 "SELECT dagq.backfill('ov', '2024-03-01', '2024-03-20')"
    local b2
    b2=$(sql "SELECT dagq.backfill('ov', '2024-03-10', '2024-03-31')") || fail "the second backfill"
    wait "$HOLD_PID" || fail "the first backfill: $(cat "$T_CASE/bf1.out")"
    assert_eq "31|31" "$(sql "SELECT count(*), count(DISTINCT logical_date) FROM dagq.dag_run")" "each interval has one run"
    assert_eq "20|11" "$(sql "SELECT count(*) FILTER (WHERE backfill_id = 1), count(*) FILTER (WHERE backfill_id = $b2) FROM dagq.dag_run")" \
        "the first backfill's 20 and the second's 11"
    assert_eq 11 "$(sql "SELECT count(*) FROM dagq.backfill_run WHERE backfill_id = $b2 AND action = 'skip' AND note LIKE 'run % is queued'")" \
        "the second left the first's runs to it"
    start_stack 1
    assert_eq done "$(wait_backfill 1 60)" "the first backfill ends"
    assert_eq done "$(wait_backfill "$b2" 60)" "the second backfill ends"
    assert_eq 31 "$(sort -u "$T_CASE/ran" | wc -l)" "every interval ran"
    assert_eq 31 "$(wc -l <"$T_CASE/ran")" "once"
}

case_backfill_beside_the_schedule_under_two_schedulers() {
    # the DAG runs every 3 s; the backfill fills 12 intervals before its
    # start; max_active_runs 2 holds for both together
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, start_date, catchup, max_active_runs)
VALUES ('both', '@every 3s', date_trunc('second', now()) - interval '30 seconds', false, 2);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('both', 't', 'sleep 1; echo "$DAGQ_RUN_ID" >> ' || :'T' || '/ran');
SQL
    start_scheduler s1
    start_scheduler s2
    start_worker w1 --slots 4
    start_worker w2 --slots 4
    local from to b
    from=$(sql "SELECT to_char(start_date - interval '36 seconds', 'YYYY-MM-DD HH24:MI:SS') FROM dagq.dag")
    to=$(sql "SELECT to_char(start_date - interval '3 seconds', 'YYYY-MM-DD HH24:MI:SS') FROM dagq.dag")
    b=$("$T_BIN/dagq" backfill both --from "$from" --to "$to") || fail "backfill"
    assert_eq 12 "$(sql "SELECT count(*) FROM dagq.dag_run WHERE backfill_id = $b")" "12 intervals before the start"
    assert_eq done "$(wait_backfill "$b" 90)" "the backfill ends"
    stop s1
    stop s2
    stop w1
    stop w2
    assert_eq "12|success" "$(sql "SELECT count(*), min(state) FROM dagq.dag_run WHERE backfill_id = $b")" "each interval once, all succeeded"
    assert_eq t "$(sql "SELECT count(*) >= 3 FROM dagq.dag_run WHERE run_type = 'scheduled'
        AND started_at < (SELECT max(ended_at) FROM dagq.dag_run WHERE backfill_id = $b)")" \
        "scheduled runs went on while the backfill ran"
    assert_eq 2 "$(max_overlap "WHERE r.dag_id = 'both'")" "never more than max_active_runs=2 running, backfill and schedule together"
    assert_eq 0 "$(sql "SELECT count(*) FROM (SELECT logical_date FROM dagq.dag_run GROUP BY 1 HAVING count(*) > 1) x")" \
        "no interval has two runs"
    assert_eq t "$(sql "SELECT bool_and(data_interval_end = logical_date + interval '3 seconds')
        AND bool_and(extract(epoch FROM logical_date - (SELECT start_date FROM dagq.dag))::int % 3 = 0) FROM dagq.dag_run")" \
        "backfill and scheduler agree on the @every 3s intervals"
    local tries
    tries=$(sql "SELECT count(*) FROM dagq.task_try")
    assert_eq "$(sql "SELECT count(*) FROM dagq.task_instance")" "$tries" "one try per task instance"
    assert_eq "$tries" "$(sort -u "$T_CASE/ran" | wc -l)" "every run's task ran"
    assert_eq "$tries" "$(wc -l <"$T_CASE/ran")" "once"
}

case_backfill_survives_a_killed_scheduler_postgres_and_broker() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, start_date, end_date, catchup) VALUES ('f', '@hourly', '2024-04-01', '2024-12-31', false);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('f', 't', 'sleep 0.5; echo {{ ts }} >> ' || :'T' || '/ran');
SQL
    start_scheduler s1
    start_worker w1 --slots 4
    local b
    b=$("$T_BIN/dagq" backfill f --from '2024-04-01 00:00' --to '2024-04-01 11:00' --max-active-runs 2) || fail "backfill"
    wait_until 30 "SELECT count(*) >= 3 FROM dagq.dag_run WHERE backfill_id = $b AND state = 'success'" t
    kill9 s1
    start_scheduler s2
    wait_until 30 "SELECT count(*) >= 5 FROM dagq.dag_run WHERE backfill_id = $b AND state = 'success'" t
    pg_kill
    sleep 1
    pg_restart || fail "PostgreSQL did not come back"
    wait_until 30 "SELECT count(*) >= 7 FROM dagq.dag_run WHERE backfill_id = $b AND state = 'success'" t
    if [ "$T_BROKER" = redis ]; then redis_restart; else kafka_restart; fi
    assert_eq done "$(wait_backfill "$b" 120)" "the backfill ends"
    assert_eq "12|12|success" "$(sql "SELECT count(*), count(DISTINCT logical_date), min(state) FROM dagq.dag_run WHERE backfill_id = $b")" \
        "each of the 12 intervals once, all succeeded"
    assert_le "$(max_overlap "WHERE r.backfill_id = $b")" 2 "runs at once"
    assert_eq 12 "$(sort -u "$T_CASE/ran" | wc -l)" "every interval ran"
    assert_eq "$(sql "SELECT count(*) FROM dagq.task_try")" "$(wc -l <"$T_CASE/ran")" "once per try"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_instance WHERE try_number > 1")" "no try lost to a fault"
}
