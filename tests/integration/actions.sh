# Acting on a run (issue 11): mark a task instance success or failed (a
# running try is stopped, downstreams follow at once), stop a run (its
# running tries killed within a second, children too, no retry, nothing
# else starts), and a run that outlives its dagrun_timeout.

. "$T_REPO/tests/etl_lib.sh"

# the role the CLI acts as (it connects with $DAGQ_DATABASE_URL), which notes name
ME=$(psql -X -At "$DAGQ_DATABASE_URL" -c "SELECT session_user")

# A scheduler and a worker whose heartbeat is the default 5 s: a stop must
# reach the try well before the next heartbeat would.
actions_stack() {
    start_scheduler sched
    start_worker w1 --slots 4 --heartbeat-interval 5
}

# gone PID...: true when none of the processes is alive
gone() {
    local p
    for p in "$@"; do alive "$p" && return 1; done
    return 0
}

# killed_within SECONDS PIDFILE...: waits for the processes to be gone; fails
# the case when they outlive SECONDS after $T0 (an EPOCHREALTIME)
killed_within() {
    local limit=$1 pids=() f el
    shift
    for f in "$@"; do pids+=("$(cat "$f" 2>/dev/null)"); done
    while ! gone "${pids[@]}"; do
        el=$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')
        if awk -v e="$el" -v l="$limit" 'BEGIN { exit !(e > l + 5) }'; then break; fi
        sleep 0.05
    done
    el=$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    echo "killed ${el}s after the stop"
    gone "${pids[@]}" || fail "processes ${pids[*]} still alive ${el}s after the stop"
    awk -v e="$el" -v l="$limit" 'BEGIN { exit !(e <= l) }' || fail "killed ${el}s after the stop, more than ${limit}s"
}

# DAG long: task long runs (pid, and a child's pid, in files) until stopped,
# then next; both with retries, which a stop or a mark must not use.
long_dag() { # DAG_EXTRA_COLUMNS DAG_EXTRA_VALUES
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id${1:-}) VALUES ('long'${2:-});
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('long', 'long', 'echo started; (sleep 300; echo survived >> ' || :'T' || '/survived) & echo \$! > ' || :'T' || '/child; echo \$\$ > ' || :'T' || '/pid; sleep 300', 2, '0'),
  ('long', 'next', 'echo next >> ' || :'T' || '/ran', 2, '0');
INSERT INTO dagq.task_dependency VALUES ('long', 'next', 'long');
SQL
}

case_mark_success_releases_the_downstream() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('m');
INSERT INTO dagq.task (dag_id, task_id, command, trigger_rule) VALUES
  ('m', 'a', 'exit 1', 'all_success'), ('m', 'b', 'echo b >> ' || :'T' || '/ran', 'all_success'),
  ('m', 'c', 'echo c >> ' || :'T' || '/ran', 'all_success'),
  ('m', 'on_failure', 'echo on_failure >> ' || :'T' || '/ran', 'one_failed');
INSERT INTO dagq.task_dependency VALUES ('m', 'b', 'a'), ('m', 'c', 'b'), ('m', 'on_failure', 'a');
SQL
    start_stack 1
    local run out
    run=$(sql "SELECT dagq.trigger_dag('m')")
    assert_eq failed "$(wait_run "$run" 30)" "a fails the run"
    assert_eq "failed upstream_failed upstream_failed success" "$(sql "SELECT string_agg(state, ' ' ORDER BY task_id) FROM dagq.task_instance WHERE run_id = $run")" \
        "b and c were not run; on_failure ran"
    out=$("$T_BIN/dagq" mark "$run" a success) || fail "dagq mark: $out"
    assert_eq "marked 1 task instance success" "$out" "dagq mark says what it did"
    assert_eq success "$(wait_run "$run" 30)" "the run runs again and succeeds"
    assert_eq "success|marked success by $ME|1" "$(sql "SELECT state, note, try_number FROM dagq.task_instance WHERE run_id = $run AND task_id = 'a'")" \
        "a is success by a user's decision, recorded"
    assert_eq "success success success" "$(sql "SELECT string_agg(state, ' ' ORDER BY task_id) FROM dagq.task_instance WHERE run_id = $run AND task_id IN ('b', 'c', 'on_failure')")" \
        "b and c followed the new state and ran"
    assert_eq "on_failure b c" "$(tr '\n' ' ' <"$T_CASE/ran" | sed 's/ $//')" "each once"
    assert_eq "task_marked|success|marked success by $ME" "$(sql "SELECT event, state, note FROM dagq.event WHERE event = 'task_marked'")" \
        "a task_marked event says who"
    # marked failed: downstreams that ran stay as they are; none is rerun
    sql "SELECT dagq.mark($run, 'c', 'failed')" >/dev/null
    assert_eq failed "$(wait_run "$run" 30)" "a leaf marked failed fails the run"
    assert_eq 3 "$(wc -l <"$T_CASE/ran")" "nothing ran again"
}

case_mark_failed_stops_a_running_try() {
    long_dag
    actions_stack
    local run
    run=$(sql "SELECT dagq.trigger_dag('long')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $run AND task_id = 'long'" running
    T_WAIT=10 t_wait_for test -s "$T_CASE/pid"
    "$T_BIN/dagq" mark "$run" long failed >/dev/null || fail "dagq mark"
    T0=$EPOCHREALTIME # committed
    killed_within 1 "$T_CASE/pid" "$T_CASE/child"
    assert_eq failed "$(wait_run "$run" 30)" "the run fails"
    assert_eq "failed|1|marked failed by $ME" "$(sql "SELECT state, try_number, note FROM dagq.task_instance WHERE run_id = $run AND task_id = 'long'")" \
        "failed on its first try, by the user, without a retry"
    assert_eq "failed|stopped: marked failed by $ME" "$(sql "SELECT y.state, y.note FROM dagq.task_try y JOIN dagq.task_instance t USING (ti_id)
        WHERE t.run_id = $run AND t.task_id = 'long'")" "its try was stopped"
    assert_eq upstream_failed "$(ti_state "$run" next)" "its downstream follows"
    sleep 2
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.task_try")" "no try started since"
    assert_contains "$(sql "SELECT output FROM dagq.task_log")" "started" "the stopped try's output is kept"
}

case_stop_kills_a_long_task_within_a_second_and_starts_nothing_more() {
    long_dag
    sqlf <<'SQL'
INSERT INTO dagq.pool (pool, slots) VALUES ('closed', 0);
INSERT INTO dagq.task (dag_id, task_id, command, pool) VALUES ('long', 'held', 'echo held >> ' || :'T' || '/ran', 'closed');
SQL
    actions_stack
    local run out
    run=$(sql "SELECT dagq.trigger_dag('long')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $run AND task_id = 'long'" running
    T_WAIT=10 t_wait_for test -s "$T_CASE/child"
    out=$("$T_BIN/dagq" stop "$run") || fail "dagq stop: $out"
    T0=$EPOCHREALTIME # committed
    killed_within 1 "$T_CASE/pid" "$T_CASE/child"
    assert_eq "stopped run $run: 3 task instances ended failed" "$out" "dagq stop says what it did"
    assert_eq "failed|stopped by $ME" "$(sql "SELECT state, note FROM dagq.dag_run WHERE run_id = $run")" "the run ended failed, saying why"
    assert_eq "held:failed:0:stopped by $ME before it started long:failed:1:stopped by $ME next:failed:0:stopped by $ME before it started" \
        "$(sql "SELECT string_agg(task_id || ':' || state || ':' || try_number || ':' || note, ' ' ORDER BY task_id) FROM dagq.task_instance WHERE run_id = $run")" \
        "the running try failed without a retry, the others did not start"
    sql "UPDATE dagq.pool SET slots = 1 WHERE pool = 'closed'" >/dev/null
    sleep 3
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.task_try")" "no try started after the stop"
    assert_eq "" "$(cat "$T_CASE/ran" "$T_CASE/survived" 2>/dev/null)" "nothing else ran, no child survived"
    assert_eq "failed|stopped by $ME" "$(sql "SELECT state, note FROM dagq.task_try")" "the try's record says it was stopped"
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.event WHERE event = 'run_failed' AND run_id = $run")" "a run_failed event"
    # one task of another run
    local r2
    rm -f "$T_CASE/pid" "$T_CASE/child"
    r2=$(sql "SELECT dagq.trigger_dag('long')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $r2 AND task_id = 'long'" running
    T_WAIT=10 t_wait_for test -s "$T_CASE/child"
    "$T_BIN/dagq" stop "$r2" long >/dev/null || fail "dagq stop RUN TASK"
    T0=$EPOCHREALTIME # committed
    killed_within 1 "$T_CASE/pid" "$T_CASE/child"
    assert_eq failed "$(wait_run "$r2" 30)" "the run of a stopped task fails"
    assert_eq "held:success long:failed next:upstream_failed" "$(sql "SELECT string_agg(task_id || ':' || state, ' ' ORDER BY task_id) FROM dagq.task_instance WHERE run_id = $r2")" \
        "the other tasks follow their trigger rules"
}

case_run_timeout_stops_the_run_and_says_why() {
    long_dag ", dagrun_timeout" ", '3 seconds'"
    actions_stack
    local run
    run=$(sql "SELECT dagq.trigger_dag('long')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $run AND task_id = 'long'" running
    T_WAIT=10 t_wait_for test -s "$T_CASE/child"
    assert_eq failed "$(wait_run "$run" 30)" "the run fails"
    T0=$EPOCHREALTIME
    killed_within 1 "$T_CASE/pid" "$T_CASE/child"
    assert_eq "failed|run timed out after 3s (dagrun_timeout)|t" "$(sql "SELECT state, note, ended_at - started_at BETWEEN interval '3 seconds' AND interval '8 seconds'
        FROM dagq.dag_run WHERE run_id = $run")" "after its timeout, saying so"
    assert_eq "long:failed:run timed out after 3s (dagrun_timeout) next:failed:run timed out after 3s (dagrun_timeout) before it started" \
        "$(sql "SELECT string_agg(task_id || ':' || state || ':' || note, ' ' ORDER BY task_id) FROM dagq.task_instance WHERE run_id = $run")" \
        "its task instances end with a note saying why, not silently skipped"
    assert_eq "run_timed_out|run timed out after 3s (dagrun_timeout)" "$(sql "SELECT event, note FROM dagq.event WHERE event = 'run_timed_out'")" \
        "a run_timed_out event"
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.task_try")" "no retry, nothing else started"
    assert_contains "$(sql_err "UPDATE dagq.dag SET dagrun_timeout = '-1 hour'")" "dagrun_timeout must be above 0" "a bad timeout is refused"
}
