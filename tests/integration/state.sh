# Right about state under ordinary operations (issue 8): a bad row beside
# healthy DAGs, a worker restarted under its own name, a DAG edited while it
# runs, a user's clear racing the scheduler, a stalled broker, a group with no
# workers, hundreds of blocked DAGs, a SIGHUP, a result that cannot be
# written, a row a user holds, passes that keep failing, an upgrade with runs
# in flight. The races are interleaved deterministically: one session holds
# its locks in a transaction paused with pg_sleep while the other runs.

sqlf() { psql -X -q -At -v ON_ERROR_STOP=1 -v T="$T_CASE" "$DAGQ_DATABASE_URL" -f -; }

# hold NAME SECONDS SQL: runs SQL in its own session inside BEGIN ... COMMIT,
# pausing SECONDS before the COMMIT; returns once the session sits in that
# pause (its locks held). Its pid is in HOLD_PID, its output in NAME.out.
hold() {
    local name=$1 secs=$2 q=$3
    PGAPPNAME=$name psql -X -q -At -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" \
        -c "BEGIN; $q; SELECT pg_sleep($secs); COMMIT;" >"$T_CASE/$name.out" 2>&1 &
    HOLD_PID=$!
    wait_until 10 "SELECT count(*) FROM pg_stat_activity
        WHERE application_name = '$name' AND wait_event = 'PgSleep'" 1
}

# metric PORT 'name{labels}': the sample's value, empty when absent
metric() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k { print $2 }'
}

# ---- bad rows ---------------------------------------------------------------------

case_poison_rows_park_their_dag_and_others_run() {
    # rejected when written, naming the column and the bound
    sql "INSERT INTO dagq.dag (dag_id) VALUES ('d')" >/dev/null
    assert_contains "$(sql_err "INSERT INTO dagq.dag (dag_id, end_date) VALUES ('p', 'infinity')")" \
        'end_date infinity is out of range' "an infinite end_date is refused"
    assert_contains "$(sql_err "INSERT INTO dagq.task (dag_id, task_id, command, retries) VALUES ('d', 'x', 'true', 2147483647)")" \
        'retries must be at most 1000, got 2147483647' "retries beyond the bound"
    assert_contains "$(sql_err "INSERT INTO dagq.task (dag_id, task_id, command, retry_delay) VALUES ('d', 'x', 'true', '300000 years')")" \
        'retry_delay must be at most 365 days' "a retry delay beyond the bound"
    assert_contains "$(sql_err "SELECT dagq.trigger_dag('d', '{}', 'infinity')")" \
        'logical_date infinity is out of range' "a run at an infinite date"
    # rows written before those checks existed: forced past the triggers
    psql -X -q -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" >/dev/null <<'SQL' || fail "forcing the old rows in"
SET session_replication_role = replica;
INSERT INTO dagq.dag (dag_id, schedule, start_date, end_date, catchup)
VALUES ('p_end', '@hourly', now() - interval '1 day', 'infinity', true),
       ('p_cron', 'every full moon', NULL, NULL, false);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('p_end', 't', 'true'), ('p_cron', 't', 'true');
INSERT INTO dagq.dag (dag_id) VALUES ('p_retries'), ('p_delay');
INSERT INTO dagq.task (dag_id, task_id, command, retries) VALUES ('p_retries', 't', 'true', 2147483647);
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES ('p_delay', 'fails', 'exit 1', 3, '300000 years');
SQL
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, start_date, catchup) VALUES ('healthy', '* * * * *', now() - interval '5 minutes', false);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('healthy', 'a', 'true'), ('healthy', 'b', 'true');
INSERT INTO dagq.task_dependency VALUES ('healthy', 'b', 'a');
SQL
    expect_log_errors 'DAG parked'
    local sp
    sp=$(t_free_port)
    start_scheduler sched --http-port "$sp"
    start_worker w1 --slots 4
    local rr rd rh
    rr=$(sql "SELECT dagq.trigger_dag('p_retries')")
    rd=$(sql "SELECT dagq.trigger_dag('p_delay')")
    rh=$(sql "SELECT dagq.trigger_dag('healthy')")
    assert_eq success "$(wait_run "$rh" 30)" "a healthy DAG runs beside the bad rows"
    # (a minute boundary during the case makes a second one: at least one)
    wait_until 30 "SELECT count(*) >= 1 FROM dagq.dag_run WHERE dag_id = 'healthy' AND run_type = 'scheduled' AND state = 'success'" t
    wait_until 30 "SELECT count(*) FROM dagq.dag WHERE parked_reason IS NOT NULL" 3
    assert_contains "$(sql "SELECT parked_reason FROM dagq.dag WHERE dag_id = 'p_end'")" \
        'end_date infinity is out of range' "the infinite end_date parks its DAG, named"
    assert_contains "$(sql "SELECT parked_reason FROM dagq.dag WHERE dag_id = 'p_cron'")" \
        'cannot be evaluated' "a schedule the scheduler cannot read parks its DAG"
    assert_contains "$(sql "SELECT parked_reason FROM dagq.dag WHERE dag_id = 'p_retries'")" \
        "starting run $rr" "retries that overflow park the DAG"
    assert_eq queued "$(sql "SELECT state FROM dagq.dag_run WHERE run_id = $rr")" "its run waits, not lost"
    # the huge retry delay is held to the bound, and the try goes on its way
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $rd" up_for_retry
    assert_eq t "$(sql "SELECT next_retry_at BETWEEN now() + interval '364 days' AND now() + interval '366 days'
        FROM dagq.task_instance WHERE run_id = $rd")" "the retry delay is clamped to 365 days"
    assert_eq 3 "$(metric "$sp" dagq_dags_parked_total)" "parked DAGs are counted"
    assert_eq 3 "$(sql "SELECT count(*) FROM dagq.event WHERE event = 'dag_parked'")" "one dag_parked event each"
    assert_contains "$("$T_BIN/dagq" dags)" "DAG p_cron is parked" "dagq dags says which DAGs are parked and why"
    # the scheduler's passes never failed
    assert_eq 0 "$(grep -c 'scheduling pass failed' "$T_CASE/sched.log")" "no failed pass"
    # fixing the definition unparks it, and its run starts
    sql "UPDATE dagq.task SET retries = 0 WHERE dag_id = 'p_retries'" >/dev/null
    assert_eq "" "$(sql "SELECT parked_reason FROM dagq.dag WHERE dag_id = 'p_retries'")" "editing a task unparks its DAG"
    assert_eq success "$(wait_run "$rr" 30)" "the parked DAG's run runs once it is fixed"
}

# ---- worker incarnations ------------------------------------------------------------

case_worker_restarted_under_its_own_name_gets_its_try_retried() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('restart');
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('restart', 'long', 'echo "$DAGQ_TRY_NUMBER" >> ' || :'T' || '/tries; sleep 4', 1, '0');
SQL
    start_scheduler sched --heartbeat-timeout 4
    start_worker w1 --slots 1
    local run
    run=$(sql "SELECT dagq.trigger_dag('restart')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $run" running
    T_WAIT=10 t_wait_for test -s "$T_CASE/tries"
    kill9 w1
    start_worker w1 --slots 1 # the same name, as a restarted container has
    assert_eq success "$(wait_run "$run" 60)" "the run finishes"
    assert_eq "1 2" "$(tr '\n' ' ' <"$T_CASE/tries" | sed 's/ $//')" "the try ran again, once"
    assert_contains "$(sql "SELECT y.note FROM dagq.task_try y JOIN dagq.task_instance i USING (ti_id)
        WHERE i.run_id = $run AND y.try_number = 1")" "zombie" "the dead process's try became a zombie"
    assert_eq "w1|t" "$(sql "SELECT b.worker_id, a.incarnation <> b.incarnation FROM dagq.task_try a, dagq.task_try b
        WHERE a.try_number = 1 AND b.try_number = 2")" "the new incarnation of w1 ran the retry"
    assert_eq 2 "$(sql "SELECT count(*) FROM dagq.worker WHERE worker_id = 'w1'")" "each incarnation has its own row"
}

# ---- runs are frozen ------------------------------------------------------------------

case_editing_a_dag_changes_nothing_in_a_run_in_flight() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('edit');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('edit', 'a', 'sleep 2; echo a >> ' || :'T' || '/order'),
  ('edit', 'b', 'echo b >> ' || :'T' || '/order'),
  ('edit', 'c', 'echo c >> ' || :'T' || '/order'),
  ('edit', 'd', 'echo d >> ' || :'T' || '/order');
INSERT INTO dagq.task_dependency VALUES ('edit', 'b', 'a'), ('edit', 'c', 'a'), ('edit', 'd', 'b');
SQL
    start_stack 1
    local run
    run=$(sql "SELECT dagq.trigger_dag('edit')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $run AND task_id = 'a'" running
    # while a runs: rename b, drop c's edge, delete d, rename the DAG
    sqlf <<'SQL' || fail "editing the DAG"
UPDATE dagq.task SET task_id = 'b_renamed' WHERE dag_id = 'edit' AND task_id = 'b';
DELETE FROM dagq.task_dependency WHERE dag_id = 'edit' AND task_id = 'c';
DELETE FROM dagq.task WHERE dag_id = 'edit' AND task_id = 'd';
UPDATE dagq.dag SET dag_id = 'edit_v2' WHERE dag_id = 'edit';
SQL
    assert_eq success "$(wait_run "$run" 60)" "the run finishes by its frozen definition"
    assert_eq a "$(head -1 "$T_CASE/order")" "a still ran first"
    assert_eq d "$(tail -1 "$T_CASE/order")" "d still ran last"
    assert_eq 4 "$(wc -l <"$T_CASE/order")" "each of the four ran once"
    assert_eq t "$(sql "SELECT bool_and(x.started_at >= a.ended_at) AND bool_and(d.started_at >= b.ended_at)
        FROM dagq.task_instance x, dagq.task_instance a, dagq.task_instance b, dagq.task_instance d
        WHERE x.run_id = $run AND x.task_id IN ('b', 'c') AND a.run_id = $run AND a.task_id = 'a'
          AND b.run_id = $run AND b.task_id = 'b' AND d.run_id = $run AND d.task_id = 'd'")" \
        "the edges held as they were when the run started"
    assert_eq "edit_v2|4" "$(sql "SELECT min(dag_id), count(*) FROM dagq.task_instance WHERE run_id = $run")" \
        "the run and its task instances follow the renamed DAG"
    # the next run follows the new definition
    local run2
    run2=$(sql "SELECT dagq.trigger_dag('edit_v2')")
    assert_eq success "$(wait_run "$run2" 60)" "the next run"
    assert_eq "a b_renamed c" "$(sql "SELECT string_agg(task_id, ' ' ORDER BY task_id) FROM dagq.task_instance WHERE run_id = $run2")" \
        "the next run has the new tasks"
    # deleting a DAG with a run in flight is refused, and allowed once it ended
    local run3
    run3=$(sql "SELECT dagq.trigger_dag('edit_v2')")
    wait_until 30 "SELECT state FROM dagq.dag_run WHERE run_id = $run3" running
    assert_contains "$(sql_err "DELETE FROM dagq.dag WHERE dag_id = 'edit_v2'")" \
        "cannot delete it while 1 run(s) are in flight" "deleting a DAG with a run in flight"
    assert_eq success "$(wait_run "$run3" 60)" "the run goes on"
    sql "DELETE FROM dagq.dag WHERE dag_id = 'edit_v2'" >/dev/null || fail "deleting a DAG whose runs ended"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_instance")" "its history goes with it"
}

# ---- races, interleaved -----------------------------------------------------------------

# A run whose tasks all ended, as workers would have written it: a (then b)
# succeeded and the end of a was told to b.
race_setup() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('race');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('race', 'a', 'true'), ('race', 'b', 'true');
INSERT INTO dagq.task_dependency VALUES ('race', 'b', 'a');
SELECT dagq.trigger_dag('race');
SELECT dagq.start_run(1);
UPDATE dagq.task_instance SET state = 'success', try_number = 1, ended_at = now(),
       end_pending = n_downstream > 0;
SELECT dagq.propagate_ends();
SQL
}

case_clear_racing_the_end_of_a_run_keeps_it_running() {
    race_setup
    # a user's clear of a has taken its locks and not committed while the
    # scheduler ends finished runs
    hold clearer 3 "SELECT dagq.clear(1, 'a')"
    sql "SELECT count(*) FROM dagq.finish_runs()" >/dev/null
    wait "$HOLD_PID" || fail "the clear failed: $(cat "$T_CASE/clearer.out")"
    assert_eq "running|scheduled" "$(sql "SELECT r.state, ti.state FROM dagq.dag_run r
        JOIN dagq.task_instance ti USING (run_id) WHERE ti.task_id = 'a'")" \
        "the run is still running, with the cleared task waiting"
    start_stack 1
    assert_eq success "$(wait_run 1 30)" "the run ends after the rerun"
    assert_eq "2|1" "$(sql "SELECT string_agg(try_number::text, '|' ORDER BY task_id) FROM dagq.task_instance")" \
        "a ran again, b did not"
}

case_clear_racing_a_trigger_rule_verdict_is_not_undone() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('race');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('race', 'u', 'true'), ('race', 'd', 'true');
INSERT INTO dagq.task_dependency VALUES ('race', 'd', 'u');
SELECT dagq.trigger_dag('race');
SELECT dagq.start_run(1);
-- u failed, and d was told
UPDATE dagq.task_instance SET state = 'failed', try_number = 1, ended_at = now(), end_pending = true
 WHERE task_id = 'u';
SELECT dagq.propagate_ends();
SQL
    # the user clears u and its downstream while the scheduler settles d
    hold clearer 3 "SELECT dagq.clear(1, 'u', true)"
    sql "SELECT count(*) FROM dagq.settle_trigger_rules()" >/dev/null
    wait "$HOLD_PID" || fail "the clear failed: $(cat "$T_CASE/clearer.out")"
    assert_eq "scheduled scheduled" "$(sql "SELECT string_agg(state, ' ' ORDER BY task_id) FROM dagq.task_instance")" \
        "d was not marked upstream_failed from the state the clear undid"
    start_stack 1
    assert_eq success "$(wait_run 1 30)" "the run succeeds once u reruns"
    assert_eq success "$(ti_state 1 d)" "d ran"
}

case_a_fresh_heartbeat_wins_over_a_zombie_verdict() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('z');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('z', 't', 'true');
SELECT dagq.trigger_dag('z');
SELECT dagq.start_run(1);
SELECT count(*) FROM dagq.worker_heartbeat('w', '11111111-2222-4333-8444-555555555555', 'h', 1, '{default}', 1, 1, 'up');
UPDATE dagq.task_instance SET state = 'running', try_number = 1, worker_id = 'w',
       incarnation = '11111111-2222-4333-8444-555555555555', started_at = now();
-- the worker was silent for a minute, then its heartbeat comes in
UPDATE dagq.worker SET heartbeat_at = now() - interval '1 minute';
SQL
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.find_zombies(5, 10)")" "the try looks like a zombie"
    hold beater 3 "SELECT count(*) FROM dagq.worker_heartbeat('w', '11111111-2222-4333-8444-555555555555', 'h', 1, '{default}', 1, 1, 'up')"
    local st
    st=$(sql "SELECT dagq.abandon_try(1, 1, 'w', '11111111-2222-4333-8444-555555555555', 5, 0, 'zombie: test')")
    wait "$HOLD_PID"
    assert_eq "" "$st" "the verdict waited for the heartbeat and took nothing away"
    assert_eq running "$(ti_state 1 t)" "the try still runs"
    sql "UPDATE dagq.worker SET heartbeat_at = now() - interval '1 minute'" >/dev/null
    assert_eq failed "$(sql "SELECT dagq.abandon_try(1, 1, 'w', '11111111-2222-4333-8444-555555555555', 5, 0, 'zombie: test')")" \
        "without a heartbeat the verdict stands (no retries left: failed)"
}

# A row a user holds in an open transaction (psql, an ETL tool) never stalls
# scheduling: the pass skips it and comes back to it.
case_a_row_a_user_holds_does_not_stall_other_dags() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('held'), ('other');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('held', 'x', 'true'),
  ('other', 'a', 'true'), ('other', 'b', 'true');
INSERT INTO dagq.task_dependency VALUES ('other', 'b', 'a');
SELECT dagq.trigger_dag('held');
SELECT dagq.start_run(1);
SQL
    hold locker 20 "SELECT 1 FROM dagq.task_instance WHERE run_id = 1 FOR UPDATE"
    start_stack 1
    local run
    run=$(sql "SELECT dagq.trigger_dag('other')")
    assert_eq success "$(wait_run "$run" 8)" "another DAG runs while a row is held"
    # read first, then check the hold was still there (on a loaded machine
    # the reads themselves take a while)
    assert_eq scheduled "$(ti_state 1 x)" "the held task waits"
    alive "$HOLD_PID" || fail "the holding transaction ended too early for the case to mean anything"
    wait "$HOLD_PID"
    assert_eq success "$(wait_run 1 30)" "and runs once the row is free"
}

# ---- the broker ---------------------------------------------------------------------

# The worker's loop does no broker I/O: a broker that stalls longer than the
# heartbeat timeout while a task runs makes no false zombie.
case_a_stalled_broker_does_not_starve_heartbeats() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('long'), ('short');
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('long', 't', 'sleep 9; echo long >> ' || :'T' || '/ran', 1, '0'),
  ('short', 't', 'sleep 2; echo short >> ' || :'T' || '/ran', 1, '0');
SQL
    start_scheduler sched --heartbeat-timeout 3
    local rl rs
    if [ "$T_BROKER" = redis ]; then
        # the worker reaches Redis through a proxy that stalls the connection
        # its next ack goes over
        local pp
        pp=$(t_free_port)
        python3 "$T_REPO/tests/stallproxy.py" "$pp" "$REDIS_PORT" "$T_CASE/stall.ctl" &
        T_PIDS+=($!)
        T_WAIT=10 REDIS_CLI_PORT=$pp t_wait_for redis_cli ping
        DAGQ_BROKER_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$pp/0" start_worker w1 --slots 2
        rl=$(sql "SELECT dagq.trigger_dag('long')")
        wait_log w1 'msg="try started"' 30
        sleep 0.5
        echo "XACK 8" >"$T_CASE/stall.ctl"
        rs=$(sql "SELECT dagq.trigger_dag('short')")
        wait_until 20 "SELECT count(*) FROM dagq.task_instance WHERE run_id = $rs AND state <> 'queued'" 1
        [ -e "$T_CASE/stall.ctl" ] && fail "the proxy never stalled an ack"
    else
        # Kafka: a malformed message waits in the worker's prefetch while both
        # slots are busy; the broker is stopped; when a slot frees the worker
        # dead-letters it, which needs the broker
        start_worker w1 --slots 2
        rl=$(sql "SELECT dagq.trigger_dag('long')")
        rs=$(sql "SELECT dagq.trigger_dag('short')")
        wait_until 30 "SELECT count(*) FROM dagq.task_instance WHERE state = 'running'" 2
        printf 'not msgpack' >"$T_CASE/junk.bin"
        kcat -b "${KAFKA_URL#kafka://}" -P -t "${DAGQ_KAFKA_TOPIC_PREFIX}default" "$T_CASE/junk.bin"
        sleep 1.5
        local kp
        kp=$(kafka__pid)
        kill -STOP "$kp"
        wait_until 20 "SELECT state FROM dagq.task_instance WHERE run_id = $rs" success
        sleep 6
        kill -CONT "$kp"
    fi
    assert_eq success "$(wait_run "$rl" 60)" "the long run"
    assert_eq success "$(wait_run "$rs" 60)" "the short run"
    assert_eq "1|1" "$(sql "SELECT string_agg(try_number::text, '|') FROM dagq.task_instance")" "no try was taken away"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_try WHERE note LIKE 'zombie%'")" "no false zombie"
    assert_eq 2 "$(wc -l <"$T_CASE/ran")" "each task ran once"
}

case_a_group_without_workers_does_not_flood_its_queue() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, default_worker_group, max_active_tasks) VALUES ('orphan', 'nobody', 100);
INSERT INTO dagq.task (dag_id, task_id, command)
  SELECT 'orphan', 't' || i, 'echo t' || i || ' >> ' || :'T' || '/ran' FROM generate_series(1, 30) i;
SQL
    start_scheduler sched --queued-timeout 1
    local run
    run=$(sql "SELECT dagq.trigger_dag('orphan')")
    wait_until 30 "SELECT count(*) FROM dagq.task_instance WHERE run_id = $run AND state = 'queued'" 30
    sleep 6 # several queued timeouts
    local n
    if [ "$T_BROKER" = redis ]; then
        n=$(redis_cli XLEN "${DAGQ_REDIS_PREFIX}queue:nobody")
    else
        n=$(kcat -b "${KAFKA_URL#kafka://}" -C -t "${DAGQ_KAFKA_TOPIC_PREFIX}nobody" -o beginning -e -q \
            -f '%o\n' 2>/dev/null | wc -l)
    fi
    assert_eq 30 "$n" "the queue holds each try once, not once per queued timeout"
    wait_log sched 'msg="worker group has queued tries and no live worker.*group=nobody queued=30' 40
    assert_contains "$(env -u DAGQ_BROKER_URL "$T_BIN/dagq" queues)" "nobody" "dagq queues shows the group"
    start_worker w1 --slots 4 --group nobody
    assert_eq success "$(wait_run "$run" 60)" "a worker of the group runs them all"
    assert_eq 30 "$(sort -u "$T_CASE/ran" | wc -l)" "every task"
    assert_eq 30 "$(wc -l <"$T_CASE/ran")" "each once"
}

# ---- starvation -----------------------------------------------------------------------

case_600_blocked_dags_do_not_starve_one_that_must_run() {
    sqlf <<'SQL'
INSERT INTO dagq.pool (pool, slots) VALUES ('shut', 0);
INSERT INTO dagq.dag (dag_id, schedule, start_date, catchup, max_active_runs)
  SELECT 'blocked' || i, '@hourly', now() - interval '10 days', true, 1 FROM generate_series(1, 600) i;
INSERT INTO dagq.task (dag_id, task_id, command, pool)
  SELECT 'blocked' || i, 't', 'true', 'shut' FROM generate_series(1, 600) i;
SQL
    start_stack 1
    # every blocked DAG has its one run, held by the shut pool, and is due again
    wait_until 90 "SELECT count(*) FROM dagq.dag_run WHERE state = 'running'" 600
    wait_until 30 "SELECT count(*) FROM dagq.dag WHERE next_dagrun_end < now() - interval '9 days'" 600
    # then a DAG comes due whose turn sorts after all of them
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, start_date, catchup) VALUES ('must', '* * * * *', now() - interval '1 hour', false);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('must', 't', 'true');
UPDATE dagq.dag SET next_dagrun_start = date_trunc('minute', now()) - interval '1 minute',
                    next_dagrun_end = date_trunc('minute', now()) WHERE dag_id = 'must';
SQL
    wait_until 20 "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'must' AND state = 'success'" 1
    assert_eq 600 "$(sql "SELECT count(*) FROM dagq.dag_run WHERE dag_id LIKE 'blocked%'")" \
        "the blocked DAGs got no second run"
}

# ---- signals, results, health ----------------------------------------------------------------

case_sighup_does_not_stop_a_worker() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('hup');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('hup', 't', 'sleep 1.5; echo ran >> ' || :'T' || '/ran');
SQL
    start_stack 1
    local run
    run=$(sql "SELECT dagq.trigger_dag('hup')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $run" running
    kill -HUP "${P_PID[w1]}" "${P_PID[sched]}"
    assert_eq success "$(wait_run "$run" 30)" "the try running at the SIGHUP finished"
    alive "${P_PID[w1]}" || fail "the worker died of SIGHUP"
    alive "${P_PID[sched]}" || fail "the scheduler died of SIGHUP"
    run=$(sql "SELECT dagq.trigger_dag('hup')")
    assert_eq success "$(wait_run "$run" 30)" "and it takes new tries"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_try WHERE try_number > 1")" "no try was lost to the signal"
    assert_contains "$(cat "$T_CASE/w1.log")" "SIGHUP" "the worker said so"
}

case_a_result_that_cannot_be_written_is_not_lost() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('unwritable');
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('unwritable', 't', 'echo "try $DAGQ_TRY_NUMBER" >> ' || :'T' || '/ran', 0, '0');
SQL
    expect_log_errors 'cannot record the result'
    start_stack 1
    # the worker cannot write results for a while (their table is away)
    sql "ALTER TABLE dagq.task_log RENAME TO task_log_away" >/dev/null
    local run
    run=$(sql "SELECT dagq.trigger_dag('unwritable')")
    wait_log w1 'msg="cannot record the result' 30
    wait_until 30 "SELECT count(*) FROM dagq.task_try WHERE state = 'released'" 1
    sql "ALTER TABLE dagq.task_log_away RENAME TO task_log" >/dev/null
    assert_eq success "$(wait_run "$run" 60)" "the run finishes"
    assert_contains "$(sql "SELECT note FROM dagq.task_try WHERE try_number = 1")" \
        "could not record" "the first try was given back, saying why"
    assert_eq "try 1 try 2" "$(tr '\n' ' ' <"$T_CASE/ran" | sed 's/ $//')" "then run again, without costing a retry"
}

case_healthz_fails_while_scheduling_passes_keep_failing() {
    expect_log_errors 'scheduling pass failed'
    local sp
    sp=$(t_free_port)
    start_scheduler sched --http-port "$sp" --health-timeout 2
    T_WAIT=20 t_wait_for curl -sf "http://127.0.0.1:$sp/healthz"
    sql "ALTER FUNCTION dagq.queue_ready(int) RENAME TO queue_ready_away" >/dev/null
    local body="" i
    for i in $(seq 100); do
        body=$(curl -s "http://127.0.0.1:$sp/healthz")
        case $body in *"scheduling passes failing"*) break ;; esac
        sleep 0.1
    done
    assert_contains "$body" "scheduling passes failing" "/healthz names the failing passes"
    assert_contains "$body" "queue_ready" "and why"
    sql "ALTER FUNCTION dagq.queue_ready_away(int) RENAME TO queue_ready" >/dev/null
    T_WAIT=20 t_wait_for curl -sf "http://127.0.0.1:$sp/healthz" || fail "/healthz did not recover"
}

# ---- upgrade --------------------------------------------------------------------------------

# A metastore of the previous release, with a run in flight and a bad row,
# migrates to this one; the run finishes by the definition it started with.
case_upgrade_with_a_run_in_flight() {
    local db
    db=$(pg_new_db "upgrade_$RANDOM") || { fail "creating the old release's database"; return; }
    local f
    for f in "$T_REPO"/sql/00[1-5]_*.sql; do
        psql -X -q -v ON_ERROR_STOP=1 "$db" -c "BEGIN" -f "$f" -c "COMMIT" >/dev/null ||
            { fail "applying $(basename "$f")"; return; }
    done
    psql -X -q -v ON_ERROR_STOP=1 -v T="$T_CASE" "$db" >/dev/null <<'SQL' || fail "the old release's data"
CREATE TABLE dagq.schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO dagq.schema_migrations (name)
  VALUES ('001_schema'), ('002_cron_check'), ('003_validation'), ('004_functions'), ('005_operations');
INSERT INTO dagq.dag (dag_id) VALUES ('old');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('old', 'a', 'echo a >> ' || :'T' || '/ran'), ('old', 'b', 'echo b >> ' || :'T' || '/ran');
INSERT INTO dagq.task_dependency VALUES ('old', 'b', 'a');
SELECT dagq.trigger_dag('old');
SELECT dagq.start_run(1);
UPDATE dagq.task_instance SET state = 'success', try_number = 1, ended_at = now() WHERE task_id = 'a';
SET session_replication_role = replica;
INSERT INTO dagq.dag (dag_id, schedule, end_date) VALUES ('bad', '@daily', 'infinity');
SQL
    DAGQ_DATABASE_URL=$db "$T_BIN/dagq" db migrate >"$T_CASE/upgrade.out" 2>&1 ||
        fail "migrate: $(cat "$T_CASE/upgrade.out")"
    assert_contains "$(psql -X -At "$db" -c "SELECT parked_reason FROM dagq.dag WHERE dag_id = 'bad'")" \
        "end_date infinity" "a bad row is parked by the upgrade"
    T_SCHED_DB_URL=$(role_url scheduler "$db") start_scheduler sched
    T_WORKER_DB_URL=$(role_url worker "$db") start_worker w1
    local st deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        st=$(psql -X -At "$db" -c "SELECT state FROM dagq.dag_run WHERE run_id = 1")
        [ "$st" = success ] && break
        sleep 0.2
    done
    assert_eq success "$st" "the run in flight finishes after the upgrade"
    assert_eq b "$(cat "$T_CASE/ran" 2>/dev/null)" "only b was left to run, and it ran once"
}

# ---- wakes ----------------------------------------------------------------------------------

# With polling all but off (60 s), every event that can make work ready is
# acted on at once: a run's end freeing a max_active_runs slot, a retry
# coming due, a pool raised, an unpause, a clear, a schedule coming due.
case_every_event_that_makes_work_wakes_the_scheduler() {
    sqlf <<'SQL'
INSERT INTO dagq.pool (pool, slots) VALUES ('gate', 0);
INSERT INTO dagq.dag (dag_id, max_active_runs) VALUES ('one_at_a_time', 1);
INSERT INTO dagq.dag (dag_id) VALUES ('retry_later'), ('gated'), ('paused_one'), ('cleared');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('one_at_a_time', 't', 'true'), ('gated', 't', 'true'), ('paused_one', 't', 'true'), ('cleared', 't', 'true');
UPDATE dagq.task SET pool = 'gate' WHERE dag_id = 'gated';
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('retry_later', 't', 'f=' || :'T' || '/failed; [ -e $f ] || { touch $f; exit 1; }', 1, '2 seconds');
SQL
    start_scheduler sched --poll-interval-ms 60000
    start_worker w1 --slots 4
    sleep 1
    local t0 run
    # three runs, one at a time: each end starts the next
    t0=$SECONDS
    sql "SELECT dagq.trigger_dag('one_at_a_time') FROM generate_series(1, 3)" >/dev/null
    wait_until 15 "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'one_at_a_time' AND state = 'success'" 3
    assert_le $((SECONDS - t0)) 8 "seconds for three runs behind max_active_runs = 1"
    # a retry 2 s after the failure
    t0=$SECONDS
    run=$(sql "SELECT dagq.trigger_dag('retry_later')")
    assert_eq success "$(wait_run "$run" 15)" "the retry ran when it came due"
    assert_le $((SECONDS - t0)) 8 "seconds for a run with a 2 s retry delay"
    # a pool raised
    run=$(sql "SELECT dagq.trigger_dag('gated')")
    wait_until 10 "SELECT state FROM dagq.task_instance WHERE run_id = $run" scheduled
    sleep 1
    t0=$SECONDS
    sql "UPDATE dagq.pool SET slots = 1 WHERE pool = 'gate'" >/dev/null
    assert_eq success "$(wait_run "$run" 15)" "raising the pool let the task run"
    assert_le $((SECONDS - t0)) 5 "seconds after the pool was raised"
    # an unpause
    "$T_BIN/dagq" pause paused_one >/dev/null
    run=$(sql "SELECT dagq.trigger_dag('paused_one')")
    sleep 1
    t0=$SECONDS
    "$T_BIN/dagq" unpause paused_one >/dev/null
    assert_eq success "$(wait_run "$run" 15)" "the unpaused DAG's run"
    assert_le $((SECONDS - t0)) 5 "seconds after the unpause"
    # a clear
    run=$(sql "SELECT dagq.trigger_dag('cleared')")
    assert_eq success "$(wait_run "$run" 15)" "the run to clear"
    t0=$SECONDS
    "$T_BIN/dagq" clear "$run" >/dev/null
    wait_until 15 "SELECT try_number FROM dagq.task_instance WHERE run_id = $run AND state = 'success'" 2
    assert_le $((SECONDS - t0)) 5 "seconds after the clear"
    # a schedule coming due 3 s from now
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, catchup) VALUES ('soon', '* * * * *', false);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('soon', 't', 'true');
UPDATE dagq.dag SET next_dagrun_start = now() - interval '1 minute',
                    next_dagrun_end = now() + interval '3 seconds' WHERE dag_id = 'soon';
SQL
    sql "SELECT pg_notify('dagq', 'dag')" >/dev/null # as an edit of the DAG would: the scheduler reads the new due time
    t0=$SECONDS
    wait_until 15 "SELECT count(*) >= 1 FROM dagq.dag_run WHERE dag_id = 'soon' AND state = 'success'" t
    assert_le $((SECONDS - t0)) 7 "seconds until the run of a schedule due in 3 s"
}
