# Dependencies between DAGs (issue 11): a task waits for another DAG's task
# or run for the same data, holding no slot, and fails or is skipped when
# the upstream fails, or fails when its execution_timeout passes; 200 DAGs
# waiting on one upstream cost a pass nothing; DAG triggers fire once per
# interval, even when two upstreams succeed at the same moment.

. "$T_REPO/tests/etl_lib.sh"

# DAG src (extract -> load -> tail, 3 s) and DAG dst whose task use waits for src.load
# (or src's whole run with UPSTREAM_TASK NULL); use -> report.
deps_dags() { # UPSTREAM_TASK IF_UPSTREAM_FAILED [EXECUTION_TIMEOUT]
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id) VALUES ('src'), ('dst');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('src', 'extract', 'true'),
  ('src', 'load', '[ -e ' || :'T' || '/fail ] && exit 1; sleep 1; echo load >> ' || :'T' || '/order'),
  ('src', 'tail', 'sleep 3'),
  ('dst', 'report', 'echo report >> ' || :'T' || '/order');
INSERT INTO dagq.task (dag_id, task_id, command, execution_timeout) VALUES
  ('dst', 'use', 'echo use >> ' || :'T' || '/order', ${3:-NULL});
INSERT INTO dagq.task_dependency VALUES ('src', 'load', 'extract'), ('src', 'tail', 'load'), ('dst', 'report', 'use');
INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id, upstream_task_id, if_upstream_failed)
VALUES ('dst', 'use', 'src', $1, '$2');
SQL
}

case_external_dependency_satisfied_without_holding_a_slot() {
    deps_dags "'load'" fail
    start_stack 1
    local d s
    d=$(sql "SELECT dagq.trigger_dag('dst', '{}', '2024-05-01')")
    wait_until 20 "SELECT state FROM dagq.dag_run WHERE run_id = $d" running
    sleep 2
    assert_eq "scheduled|0|1|0" "$(sql "SELECT state, try_number, up_total, up_success FROM dagq.task_instance
        WHERE run_id = $d AND task_id = 'use'")" "use waits, scheduled, without a try"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_instance WHERE state IN ('queued', 'running')")" "no slot is held"
    assert_eq "src|load|waiting" "$(sql "SELECT upstream_dag_id, upstream_task_id, state FROM dagq.external_waits WHERE run_id = $d")" \
        "dagq.external_waits shows what it waits for"
    assert_contains "$("$T_BIN/dagq" dags)" "src.load" "dagq dags shows what dst waits on"
    # a run of src for another date does not count
    s=$(sql "SELECT dagq.trigger_dag('src', '{}', '2024-04-30')")
    assert_eq success "$(wait_run "$s" 30)" "src for another date"
    sleep 1
    assert_eq scheduled "$(ti_state "$d" use)" "use still waits"
    s=$(sql "SELECT dagq.trigger_dag('src', '{}', '2024-05-01')")
    assert_eq success "$(wait_run "$d" 30)" "dst runs once src.load succeeded for its date"
    assert_eq "load load use report" "$(tr '\n' ' ' <"$T_CASE/order" | sed 's/ $//')" \
        "in that order (after load for April 30 and for May 1)"
    assert_eq t "$(sql "SELECT u.started_at >= l.ended_at FROM dagq.task_instance u, dagq.task_instance l
        WHERE u.run_id = $d AND u.task_id = 'use' AND l.run_id = $s AND l.task_id = 'load'")" \
        "use started after load ended (the database's timestamps)"
    assert_eq success "$(wait_run "$s" 30)" "src's run"
    assert_eq t "$(sql "SELECT u.started_at < r.ended_at FROM dagq.task_instance u, dagq.dag_run r
        WHERE u.run_id = $d AND u.task_id = 'use' AND r.run_id = $s")" \
        "and before src's run ended: it waited for the task, not the run"
    assert_eq "success|$s" "$(sql "SELECT state, upstream_run_id FROM dagq.external_waits WHERE run_id = $d")" \
        "the wait says which run decided it"
}

case_external_dependency_on_a_run_matches_by_interval_and_offset() {
    # src runs daily at 01:00, dst daily at 02:00 (its logical date lies in
    # src's interval, no exact offset needed); dst2 waits for yesterday's
    # src run at 02:00 (offset -1 day)
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, start_date, end_date, catchup) VALUES
  ('src', '0 1 * * *', '2024-05-01', '2024-12-31', false),
  ('dst', '0 2 * * *', '2024-05-01', '2024-12-31', false),
  ('dst2', '0 2 * * *', '2024-05-01', '2024-12-31', false);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('src', 't', 'true'), ('dst', 'u', 'true'), ('dst2', 'u', 'true');
INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id, upstream_task_id, logical_date_offset) VALUES
  ('dst', 'u', 'src', NULL, '0'), ('dst2', 'u', 'src', NULL, '-1 day');
SQL
    start_stack 1
    local bd bd2 bs
    bd=$(sql "SELECT dagq.backfill('dst', '2024-05-03', '2024-05-03 23:59')")
    bd2=$(sql "SELECT dagq.backfill('dst2', '2024-05-03', '2024-05-03 23:59')")
    wait_until 20 "SELECT count(*) FROM dagq.task_instance WHERE state = 'scheduled'" 2
    bs=$(sql "SELECT dagq.backfill('src', '2024-05-02', '2024-05-02 23:59')")
    assert_eq done "$(wait_backfill "$bs" 30)" "src for May 2"
    assert_eq done "$(wait_backfill "$bd2" 30)" "dst2 of May 3 ran once src of May 2 (yesterday) succeeded"
    assert_eq scheduled "$(sql "SELECT t.state FROM dagq.task_instance t JOIN dagq.dag_run r USING (run_id) WHERE r.dag_id = 'dst'")" \
        "dst of May 3 still waits for src of May 3"
    bs=$(sql "SELECT dagq.backfill('src', '2024-05-03', '2024-05-03 23:59')")
    assert_eq done "$(wait_backfill "$bd" 30)" "dst of May 3, 02:00, ran once src of May 3, 01:00, succeeded"
    assert_eq "2024-05-03 01:00:00+00" "$(sql "SELECT r.logical_date FROM dagq.external_waits w JOIN dagq.dag_run r ON r.run_id = w.upstream_run_id
        WHERE w.dag_id = 'dst'")" "decided by the run whose interval holds 02:00"
}

case_external_dependency_failed_upstream_fails_or_skips() {
    deps_dags "'load'" fail
    sql "INSERT INTO dagq.dag (dag_id) VALUES ('dst_skip');
         INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('dst_skip', 'use', 'echo skip >> $T_CASE/order');
         INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id, upstream_task_id, if_upstream_failed)
         VALUES ('dst_skip', 'use', 'src', 'load', 'skip')" >/dev/null
    touch "$T_CASE/fail"
    start_stack 1
    local d k s
    d=$(sql "SELECT dagq.trigger_dag('dst', '{}', '2024-05-01')")
    k=$(sql "SELECT dagq.trigger_dag('dst_skip', '{}', '2024-05-01')")
    s=$(sql "SELECT dagq.trigger_dag('src', '{}', '2024-05-01')")
    assert_eq failed "$(wait_run "$s" 30)" "src failed"
    assert_eq failed "$(wait_run "$d" 30)" "dst fails with it"
    assert_eq "upstream_failed|0" "$(sql "SELECT state, try_number FROM dagq.task_instance WHERE run_id = $d AND task_id = 'use'")" \
        "use did not run: upstream_failed"
    assert_contains "$(sql "SELECT note FROM dagq.task_instance WHERE run_id = $d AND task_id = 'use'")" \
        "waited for DAG src task load for 2024-05-01T00:00:00Z: it failed in run $s" "its note names what it waited for"
    assert_eq upstream_failed "$(ti_state "$d" report)" "its downstream follows"
    assert_eq success "$(wait_run "$k" 30)" "dst_skip succeeds"
    assert_eq skipped "$(ti_state "$k" use)" "its task is skipped (if_upstream_failed: skip)"
    assert_eq "" "$(cat "$T_CASE/order" 2>/dev/null)" "nothing ran"
    # cleared once src is fixed, use waits again and runs
    rm "$T_CASE/fail"
    sql "SELECT dagq.clear($s)" >/dev/null
    assert_eq success "$(wait_run "$s" 30)" "src, rerun"
    sql "SELECT dagq.clear($d)" >/dev/null
    assert_eq success "$(wait_run "$d" 30)" "dst, cleared, runs from what src did since"
}

case_external_dependency_times_out_naming_what_it_waited_for() {
    deps_dags NULL fail "'2 seconds'"
    start_stack 1
    local d t0=$SECONDS
    d=$(sql "SELECT dagq.trigger_dag('dst', '{}', '2024-05-01')")
    assert_eq failed "$(wait_run "$d" 30)" "the run fails"
    assert_le $((SECONDS - t0)) 8 "seconds until the timeout failed it"
    assert_eq "failed|0" "$(sql "SELECT state, try_number FROM dagq.task_instance WHERE run_id = $d AND task_id = 'use'")" \
        "use failed without running"
    assert_eq "timed out after 2s (execution_timeout) waiting for DAG src (its run) for 2024-05-01T00:00:00Z" \
        "$(sql "SELECT note FROM dagq.task_instance WHERE run_id = $d AND task_id = 'use'")" "the note names what it waited for"
    assert_eq t "$(sql "SELECT t.ended_at - r.started_at >= interval '2 seconds' FROM dagq.task_instance t
        JOIN dagq.dag_run r USING (run_id) WHERE t.run_id = $d AND t.task_id = 'use'")" "not before its timeout"
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.event WHERE event = 'task_failed' AND run_id = $d")" "a task_failed event"
    assert_eq abandoned "$(sql "SELECT state FROM dagq.external_waits WHERE run_id = $d")" "the wait is let go"
}

case_200_dags_waiting_on_one_upstream_cost_a_pass_nothing() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('src'), ('other');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('src', 'load', 'true'), ('other', 't', 'true');
INSERT INTO dagq.dag (dag_id) SELECT 'w' || i FROM generate_series(1, 200) i;
INSERT INTO dagq.task (dag_id, task_id, command) SELECT 'w' || i, 'x', 'echo w' || i || ' >> ' || :'T' || '/ran'
  FROM generate_series(1, 200) i;
INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id, upstream_task_id)
  SELECT 'w' || i, 'x', 'src', 'load' FROM generate_series(1, 200) i;
SELECT count(*) FROM (SELECT dagq.trigger_dag('w' || i, '{}', '2024-06-01') FROM generate_series(1, 200) i) x;
SQL
    local sp
    sp=$(t_free_port)
    start_scheduler sched --http-port "$sp"
    start_worker w1 --slots 8
    wait_until 60 "SELECT count(*) FROM dagq.external_waits WHERE state = 'waiting'" 200
    wait_until 20 "SELECT count(*) FROM dagq.dag_run WHERE state = 'queued'" 0
    # passes go on (a 250 ms poll) and none reads a waiting row
    sleep 1.5
    local reads0 passes0 reads1 passes1 t0 o
    reads0=$(sql "SELECT seq_tup_read + COALESCE(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relid = 'dagq.ti_external_wait'::regclass")
    passes0=$(curl -s "http://127.0.0.1:$sp/metrics" | awk '$1 == "dagq_scheduler_loop_duration_seconds_count" { print $2 }')
    t0=$SECONDS
    o=$(sql "SELECT dagq.trigger_dag('other')")
    assert_eq success "$(wait_run "$o" 10)" "another DAG runs beside the 200 waiting"
    assert_le $((SECONDS - t0)) 4 "seconds for it"
    sleep 3
    reads1=$(sql "SELECT seq_tup_read + COALESCE(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relid = 'dagq.ti_external_wait'::regclass")
    passes1=$(curl -s "http://127.0.0.1:$sp/metrics" | awk '$1 == "dagq_scheduler_loop_duration_seconds_count" { print $2 }')
    assert_le 5 $((passes1 - passes0)) "passes while the 200 wait"
    assert_eq "$reads0" "$reads1" "rows of dagq.ti_external_wait read by those passes"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_instance WHERE state IN ('queued', 'running')")" "no slot held by a waiting task"
    # one end decides the 200 waits
    t0=$SECONDS
    sql "SELECT dagq.trigger_dag('src', '{}', '2024-06-01')" >/dev/null
    wait_until 90 "SELECT count(*) FROM dagq.dag_run WHERE dag_id LIKE 'w%' AND state = 'success'" 200
    assert_eq 200 "$(sort -u "$T_CASE/ran" | wc -l)" "each of the 200 ran"
    assert_eq 200 "$(wc -l <"$T_CASE/ran")" "once"
}

# Runs a and b (one task each) started for the same logical date, a's task
# ended; c runs when both succeeded for an interval.
trigger_setup() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('a'), ('b'), ('c');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('a', 't', 'true'), ('b', 't', 'true'),
  ('c', 't', 'echo "c $DAGQ_LOGICAL_DATE" >> ' || :'T' || '/ran');
INSERT INTO dagq.dag_trigger (dag_id, upstream_dag_id) VALUES ('c', 'a'), ('c', 'b');
SELECT dagq.trigger_dag('a', '{}', '2024-07-01'), dagq.trigger_dag('b', '{}', '2024-07-01');
SELECT dagq.start_run(1), dagq.start_run(2);
UPDATE dagq.task_instance SET state = 'success', try_number = 1, ended_at = now() WHERE run_id = 1;
SQL
}

case_dag_trigger_two_upstreams_ending_at_once_trigger_once() {
    trigger_setup
    # the end of a's run has not committed when b's run ends
    hold ender_a 3 "SELECT count(*) FROM dagq.finish_runs()"
    sql "UPDATE dagq.task_instance SET state = 'success', try_number = 1, ended_at = now() WHERE run_id = 2" >/dev/null
    assert_eq "running|running" "$(sql "SELECT string_agg(state, '|' ORDER BY run_id) FROM dagq.dag_run")" \
        "neither run's end is visible yet"
    sql "SELECT count(*) FROM dagq.finish_runs()" >"$T_CASE/ender_b.out" 2>&1 &
    local pb=$!
    wait "$HOLD_PID" || fail "ending a: $(cat "$T_CASE/ender_a.out")"
    wait "$pb" || fail "ending b: $(cat "$T_CASE/ender_b.out")"
    assert_eq "success|success" "$(sql "SELECT string_agg(state, '|' ORDER BY run_id) FROM dagq.dag_run WHERE dag_id IN ('a', 'b')")" \
        "both upstream runs ended"
    assert_eq "1|triggered|2024-07-01 00:00:00+00|triggered by a run 1, b run 2" "$(sql "SELECT count(*), min(run_type), min(logical_date), min(note)
        FROM dagq.dag_run WHERE dag_id = 'c'")" "c got one run for the interval, naming what triggered it"
    assert_eq 0 "$(sql "SELECT dagq.fire_dag_triggers(1) + dagq.fire_dag_triggers(2)")" "and never a second one"
    start_stack 1
    wait_until 30 "SELECT state FROM dagq.dag_run WHERE dag_id = 'c'" success
    assert_eq 1 "$(wc -l <"$T_CASE/ran")" "c ran once"
}

case_dag_trigger_under_two_schedulers_runs_once_per_interval() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('a'), ('b'), ('c');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('a', 't', 'sleep 1'), ('b', 't', 'sleep 1'),
  ('c', 't', 'echo "$DAGQ_LOGICAL_DATE" >> ' || :'T' || '/ran');
INSERT INTO dagq.dag_trigger (dag_id, upstream_dag_id) VALUES ('c', 'a'), ('c', 'b');
SQL
    start_scheduler s1
    start_scheduler s2
    start_worker w1 --slots 4
    start_worker w2 --slots 4
    local d
    for d in 2024-07-01 2024-07-02 2024-07-03; do
        sql "SELECT dagq.trigger_dag('a', '{}', '$d'), dagq.trigger_dag('b', '{}', '$d')" >/dev/null
    done
    # b alone for a fourth date: no run of c for it
    sql "SELECT dagq.trigger_dag('b', '{}', '2024-07-04')" >/dev/null
    wait_until 60 "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'c' AND state = 'success'" 3
    wait_until 30 "SELECT count(*) FROM dagq.dag_run WHERE state IN ('queued', 'running')" 0
    sleep 1
    assert_eq 3 "$(sql "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'c'")" "one run of c per interval both succeeded for"
    assert_eq 3 "$(sort -u "$T_CASE/ran" | wc -l)" "three intervals"
    assert_eq 3 "$(wc -l <"$T_CASE/ran")" "each once"
    assert_contains "$("$T_BIN/dagq" dags)" "a successful run of a" "dagq dags shows the trigger"
}
