# Core integration cases: SQL-defined DAGs run end to end through a real
# PostgreSQL and the case's broker (Redis or Kafka), scheduler and workers
# under ASan+UBSan. Each case_* runs with a fresh database.

# psql with the case folder as :'T', SQL from stdin
sqlf() { psql -X -q -At -v ON_ERROR_STOP=1 -v T="$T_CASE" "$DAGQ_DATABASE_URL" -f -; }

case_diamond_runs_in_dependency_order() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('diamond');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('diamond', 'extract', 'echo extract >> ' || :'T' || '/order'),
  ('diamond', 'clean',   'sleep 0.3; echo clean >> ' || :'T' || '/order'),
  ('diamond', 'enrich',  'echo enrich >> ' || :'T' || '/order'),
  ('diamond', 'load',    'echo load >> ' || :'T' || '/order');
INSERT INTO dagq.task_dependency VALUES
  ('diamond', 'clean', 'extract'), ('diamond', 'enrich', 'extract'),
  ('diamond', 'load', 'clean'), ('diamond', 'load', 'enrich');
SQL
    start_stack 2
    local run
    run=$(sql "SELECT dagq.trigger_dag('diamond')")
    assert_eq success "$(wait_run "$run" 60)" "diamond run state"
    assert_eq extract "$(head -1 "$T_CASE/order")" "first task"
    assert_eq load "$(tail -1 "$T_CASE/order")" "last task"
    assert_eq 4 "$(wc -l <"$T_CASE/order")" "each task ran once"
    assert_eq 4 "$(sort -u "$T_CASE/order" | wc -l)" "four distinct tasks"
    # the metastore's own timestamps agree: load started after both middles ended
    assert_eq t "$(sql "SELECT l.started_at >= greatest(c.ended_at, e.ended_at)
        AND c.started_at >= x.ended_at AND e.started_at >= x.ended_at
        FROM dagq.task_instance l, dagq.task_instance c, dagq.task_instance e, dagq.task_instance x
        WHERE l.run_id = $run AND l.task_id = 'load' AND c.run_id = $run AND c.task_id = 'clean'
          AND e.run_id = $run AND e.task_id = 'enrich' AND x.run_id = $run AND x.task_id = 'extract'")" \
        "start times follow the edges"
    assert_eq 4 "$(sql "SELECT count(*) FROM dagq.task_try t JOIN dagq.task_instance i USING (ti_id)
        WHERE i.run_id = $run AND t.state = 'success'")" "one successful try each"
}

case_failing_task_retries_then_succeeds() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('flaky');
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('flaky', 'fetch',
   'n=$(cat ' || :'T' || '/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > ' || :'T' || '/count; echo "attempt $n try $DAGQ_TRY_NUMBER"; [ $n -ge 3 ]',
   3, '1 second');
SQL
    start_stack 1
    local run
    run=$(sql "SELECT dagq.trigger_dag('flaky')")
    assert_eq success "$(wait_run "$run" 60)" "flaky run state"
    assert_eq 3 "$(sql "SELECT try_number FROM dagq.task_instance WHERE run_id = $run")" "succeeded on try 3"
    assert_eq "1|up_for_retry|1
2|up_for_retry|1
3|success|0" "$(sql "SELECT t.try_number, t.state, t.exit_code FROM dagq.task_try t
        JOIN dagq.task_instance i USING (ti_id) WHERE i.run_id = $run ORDER BY 1")" "every try recorded"
    # retry_delay was honoured between tries
    assert_eq t "$(sql "SELECT bool_and(b.started_at - a.ended_at >= interval '0.9 seconds')
        FROM dagq.task_try a JOIN dagq.task_try b ON b.ti_id = a.ti_id AND b.try_number = a.try_number + 1
        JOIN dagq.task_instance i ON i.ti_id = a.ti_id WHERE i.run_id = $run")" "retry delay respected"
    assert_contains "$("$T_BIN/dagq" logs "$run" fetch --try 2)" "attempt 2 try 2" "log of try 2 kept"
    assert_contains "$("$T_BIN/dagq" logs "$run" fetch)" "attempt 3 try 3" "latest log"
}

case_timeout_kills_task_and_children() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('slow');
INSERT INTO dagq.task (dag_id, task_id, command, execution_timeout) VALUES
  ('slow', 'hang', '(sleep 300; echo survived >> ' || :'T' || '/survived) & echo $! > ' || :'T' || '/bgpid; sleep 300', '2 seconds');
SQL
    start_stack 1
    local run t0=$SECONDS
    run=$(sql "SELECT dagq.trigger_dag('slow')")
    assert_eq failed "$(wait_run "$run" 60)" "timed-out run fails"
    assert_le $((SECONDS - t0)) 20 "timeout enforced promptly"
    assert_contains "$(sql "SELECT note FROM dagq.task_instance WHERE run_id = $run")" "timed out" "note says timed out"
    local bg
    bg=$(cat "$T_CASE/bgpid" 2>/dev/null)
    [ -n "$bg" ] || fail "background child pid not recorded"
    sleep 0.5
    if [ -n "$bg" ] && alive "$bg"; then fail "child $bg of the timed-out task still runs"; fi
}

case_trigger_rules() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('rules', 32);
INSERT INTO dagq.task (dag_id, task_id, command, trigger_rule) VALUES
  ('rules', 'ok', 'true', 'all_success'),
  ('rules', 'bad', 'exit 3', 'all_success'),
  ('rules', 'all_success_ok', 'true', 'all_success'),
  ('rules', 'all_success_bad', 'true', 'all_success'),
  ('rules', 'all_failed_run', 'true', 'all_failed'),
  ('rules', 'all_failed_skip', 'true', 'all_failed'),
  ('rules', 'all_done_run', 'true', 'all_done'),
  ('rules', 'one_success_run', 'true', 'one_success'),
  ('rules', 'one_success_fail', 'true', 'one_success'),
  ('rules', 'one_failed_run', 'true', 'one_failed'),
  ('rules', 'one_failed_skip', 'true', 'one_failed'),
  ('rules', 'none_failed_run', 'true', 'none_failed'),
  ('rules', 'none_failed_fail', 'true', 'none_failed'),
  ('rules', 'always_run', 'true', 'always'),
  ('rules', 'after_upstream_failed', 'true', 'all_success'),
  ('rules', 'after_skipped', 'true', 'all_success'),
  ('rules', 'none_failed_after_skip', 'true', 'none_failed');
INSERT INTO dagq.task_dependency (dag_id, task_id, upstream_task_id) VALUES
  ('rules', 'all_success_ok', 'ok'),
  ('rules', 'all_success_bad', 'ok'), ('rules', 'all_success_bad', 'bad'),
  ('rules', 'all_failed_run', 'bad'),
  ('rules', 'all_failed_skip', 'ok'), ('rules', 'all_failed_skip', 'bad'),
  ('rules', 'all_done_run', 'ok'), ('rules', 'all_done_run', 'bad'),
  ('rules', 'one_success_run', 'ok'), ('rules', 'one_success_run', 'bad'),
  ('rules', 'one_success_fail', 'bad'),
  ('rules', 'one_failed_run', 'ok'), ('rules', 'one_failed_run', 'bad'),
  ('rules', 'one_failed_skip', 'ok'),
  ('rules', 'none_failed_run', 'ok'),
  ('rules', 'none_failed_fail', 'bad'),
  ('rules', 'always_run', 'bad'),
  ('rules', 'after_upstream_failed', 'all_success_bad'),
  ('rules', 'after_skipped', 'all_failed_skip'),
  ('rules', 'none_failed_after_skip', 'all_failed_skip'), ('rules', 'none_failed_after_skip', 'ok');
SQL
    start_stack 2
    local run
    run=$(sql "SELECT dagq.trigger_dag('rules')")
    assert_eq failed "$(wait_run "$run" 90)" "run with failed leaves fails"
    local t want
    for t in ok:success bad:failed all_success_ok:success all_success_bad:upstream_failed \
        all_failed_run:success all_failed_skip:skipped all_done_run:success \
        one_success_run:success one_success_fail:upstream_failed one_failed_run:success \
        one_failed_skip:skipped none_failed_run:success none_failed_fail:upstream_failed \
        always_run:success after_upstream_failed:upstream_failed after_skipped:skipped \
        none_failed_after_skip:success; do
        want=${t#*:}
        assert_eq "$want" "$(ti_state "$run" "${t%%:*}")" "trigger rule: ${t%%:*}"
    done
}

case_all_success_run_succeeds_and_skips_do_not_fail() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('leafy');
INSERT INTO dagq.task (dag_id, task_id, command, trigger_rule) VALUES
  ('leafy', 'a', 'true', 'all_success'),
  ('leafy', 'cleanup_on_failure', 'true', 'one_failed');
INSERT INTO dagq.task_dependency VALUES ('leafy', 'cleanup_on_failure', 'a');
SQL
    start_stack 1
    local run
    run=$(sql "SELECT dagq.trigger_dag('leafy')")
    assert_eq success "$(wait_run "$run" 60)" "skipped leaf does not fail the run"
    assert_eq skipped "$(ti_state "$run" cleanup_on_failure)" "one_failed skipped"
}

# Copies the first message on the group's queue, so the broker delivers it twice.
duplicate_first_message() {
    local group=$1
    if [ "$T_BROKER" = redis ]; then
        redis_cli EVAL "local e = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
            return redis.call('XADD', KEYS[1], '*', 'm', e[1][2][2])" 1 "${DAGQ_REDIS_PREFIX}queue:$group" >/dev/null
    else
        local b=${KAFKA_URL#kafka://}
        kcat -b "$b" -C -t "${DAGQ_KAFKA_TOPIC_PREFIX}$group" -o beginning -c 1 -e -f '%s' >"$T_CASE/msg.bin" 2>/dev/null
        kcat -b "$b" -P -t "${DAGQ_KAFKA_TOPIC_PREFIX}$group" "$T_CASE/msg.bin"
    fi
}

push_raw() { # group payload
    if [ "$T_BROKER" = redis ]; then
        redis_cli XADD "${DAGQ_REDIS_PREFIX}queue:$1" '*' m "$2" >/dev/null
    else
        printf '%s' "$2" >"$T_CASE/raw.bin"
        kcat -b "${KAFKA_URL#kafka://}" -P -t "${DAGQ_KAFKA_TOPIC_PREFIX}$1" "$T_CASE/raw.bin"
    fi
}

dead_letters() {
    if [ "$T_BROKER" = redis ]; then
        redis_cli XRANGE "${DAGQ_REDIS_PREFIX}dead-letter" - +
    else
        kcat -b "${KAFKA_URL#kafka://}" -C -t "${DAGQ_KAFKA_TOPIC_PREFIX}dead-letter" -o beginning -e \
            -f 'headers=%h value=%s\n' 2>/dev/null
    fi
}

case_message_delivered_twice_runs_once() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('dup');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('dup', 'once', 'echo ran >> ' || :'T' || '/ran; sleep 1');
SQL
    start_scheduler sched
    local run
    run=$(sql "SELECT dagq.trigger_dag('dup')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $run" queued
    sleep 0.5
    duplicate_first_message default
    duplicate_first_message default
    start_worker w1 --slots 2
    start_worker w2 --slots 2
    assert_eq success "$(wait_run "$run" 60)" "run state"
    sleep 1 # give a wrongly claimed duplicate time to show itself
    assert_eq 1 "$(wc -l <"$T_CASE/ran")" "the task ran once"
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.task_try t JOIN dagq.task_instance i USING (ti_id) WHERE i.run_id = $run")" "one try"
}

case_malformed_message_dead_lettered_and_work_goes_on() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('after_junk');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('after_junk', 't', 'echo fine');
SQL
    start_stack 1
    sleep 1 # the worker's consumer exists
    push_raw default "this is not msgpack"
    push_raw default "$(printf '\x81\xa1v\x07')" # {v: 7}
    local run
    run=$(sql "SELECT dagq.trigger_dag('after_junk')")
    assert_eq success "$(wait_run "$run" 60)" "run after junk"
    local dl
    for _ in $(seq 50); do
        dl=$(dead_letters)
        case "$dl" in *"unsupported message version"*) break ;; esac
        sleep 0.2
    done
    assert_contains "$dl" "undecodable message" "dead letter carries the reason"
    assert_contains "$dl" "unsupported message version 7" "versioned reason"
    assert_contains "$dl" "this is not msgpack" "dead letter keeps the payload"
    assert_contains "$(cat "$T_CASE/w1.log")" "dead-letter" "worker logged it"
}

case_kill9_worker_mid_task_retries_elsewhere() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('crashy');
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('crashy', 'long', 'echo $$ > ' || :'T' || '/pid.$DAGQ_TRY_NUMBER; echo "start $DAGQ_WORKER" >> ' || :'T' || '/starts; sleep 3; echo finished', 1, '0');
SQL
    start_scheduler sched --heartbeat-timeout 4
    start_worker w1 --slots 1
    local run victim
    run=$(sql "SELECT dagq.trigger_dag('crashy')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $run" running
    start_worker w2 --slots 1
    victim=$(sql "SELECT worker_id FROM dagq.task_instance WHERE run_id = $run")
    T_WAIT=10 t_wait_for test -s "$T_CASE/pid.1"
    kill9 "$victim"
    # the killed worker's task dies with it (no orphan to run beside the retry)
    local orphan
    orphan=$(cat "$T_CASE/pid.1")
    sleep 0.5
    if alive "$orphan"; then fail "task process $orphan of the killed worker still runs"; fi
    assert_eq success "$(wait_run "$run" 60)" "run succeeds after the crash"
    assert_eq 2 "$(sql "SELECT try_number FROM dagq.task_instance WHERE run_id = $run")" "second try"
    assert_eq "w2" "$(sql "SELECT worker_id FROM dagq.task_instance WHERE run_id = $run")" "ran on the other worker"
    assert_contains "$(sql "SELECT t.note FROM dagq.task_try t JOIN dagq.task_instance i USING (ti_id) WHERE i.run_id = $run AND t.try_number = 1")" \
        "zombie" "first try recorded as zombie"
    sleep 3.5
    assert_eq 2 "$(wc -l <"$T_CASE/starts")" "two starts, no third"
}

# hold_scheduler NAME: stops the scheduler (SIGSTOP) between two of its
# passes. Stopped inside a pass it would keep the pass's advisory lock, and
# no other scheduler could pass either; so while a transaction holding that
# lock stands still, it is let go and stopped again a moment later.
hold_scheduler() {
    local pid=${P_PID[$1]} i
    for i in $(seq 20); do
        kill -STOP "$pid"
        sleep 0.3
        [ "$(sql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                   WHERE l.locktype = 'advisory' AND l.granted
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                     AND a.state = 'idle in transaction'
                     AND a.state_change < now() - interval '0.2 seconds'")" = 0 ] && return 0
        kill -CONT "$pid"
        sleep "0.$((RANDOM % 5 + 1))"
    done
    fail "could not stop $1 outside a scheduling pass"
    return 1
}

# Two schedulers at once (high availability). Each in turn is stopped while
# runs are triggered, so the other must start them all alone (its own log
# says so, the stopped one's does not); then both race over the missed
# intervals of a catchup DAG. No interval gets two runs, and every task
# instance runs exactly once.
case_two_schedulers_create_each_run_once() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, max_active_runs, max_active_tasks) VALUES ('manual', 50, 50);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('manual', 'x', 'echo "$DAGQ_RUN_ID x" >> ' || :'T' || '/ran');
SQL
    # a try the stopped scheduler committed but had not pushed yet is
    # pushed again by the other after 3 s
    start_scheduler s1 --queued-timeout 3
    start_scheduler s2 --queued-timeout 3
    start_worker w1 --slots 4
    start_worker w2 --slots 4
    wait_log s1 'msg="connected to the database"' 30
    wait_log s2 'msg="connected to the database"' 30
    local phase held carrier runs r
    for phase in "s2 s1" "s1 s2"; do
        held=${phase% *}
        carrier=${phase#* }
        hold_scheduler "$held" || return
        runs=$(sql "SELECT dagq.trigger_dag('manual') FROM generate_series(1, 10)")
        wait_until 60 "SELECT count(*) FROM dagq.dag_run WHERE state = 'success'
            AND run_id IN ($(echo $runs | tr ' ' ','))" 10
        for r in $runs; do
            grep -qE "msg=\"run started\" dag=manual run=$r( |$)" "$T_CASE/$carrier.log" ||
                fail "$carrier.log does not say it started run $r, triggered while $held was stopped"
        done
        if grep -qE "msg=\"run started\" dag=manual run=($(echo $runs | tr ' ' '|'))( |$)" "$T_CASE/$held.log"; then
            fail "$held.log says it started a run while it was stopped"
        fi
        kill -CONT "${P_PID[$held]}"
    done
    # both at once: 8 missed intervals of a DAG with catchup
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, start_date, catchup, max_active_runs, max_active_tasks)
VALUES ('every_minute', '* * * * *', date_trunc('minute', now()) - interval '8 minutes', true, 50, 50);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('every_minute', 'a', 'echo "$DAGQ_RUN_ID a" >> ' || :'T' || '/ran'),
  ('every_minute', 'b', 'echo "$DAGQ_RUN_ID b" >> ' || :'T' || '/ran');
INSERT INTO dagq.task_dependency VALUES ('every_minute', 'b', 'a');
SQL
    wait_until 90 "SELECT count(*) FILTER (WHERE state = 'success') = count(*) AND count(*) >= 28 FROM dagq.dag_run" t
    stop s1
    stop s2
    assert_eq 0 "$(sql "SELECT count(*) FROM (SELECT logical_date FROM dagq.dag_run WHERE dag_id = 'every_minute'
        GROUP BY 1 HAVING count(*) > 1) x")" "no interval has two runs"
    assert_eq t "$(sql "SELECT count(*) >= 8 FROM dagq.dag_run WHERE dag_id = 'every_minute'")" "catchup created the missed intervals"
    assert_eq t "$(sql "SELECT bool_and(logical_date = data_interval_start AND data_interval_end = data_interval_start + interval '1 minute')
        FROM dagq.dag_run WHERE dag_id = 'every_minute'")" "intervals are one minute, logical date at the start"
    local tis lines uniq
    tis=$(sql "SELECT count(*) FROM dagq.task_instance")
    lines=$(wc -l <"$T_CASE/ran")
    uniq=$(sort -u "$T_CASE/ran" | wc -l)
    assert_eq "$tis" "$lines" "every task instance ran exactly once"
    assert_eq "$tis" "$uniq" "no task instance ran twice"
    assert_eq "$tis" "$(sql "SELECT count(*) FROM dagq.task_try")" "one try per task instance"
}

case_templating_params_and_env() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, params) VALUES ('tmpl', '{"table": "sales", "limit": 10}');
INSERT INTO dagq.task (dag_id, task_id, command, env) VALUES
  ('tmpl', 'show',
   'echo "ds={{ ds }} nodash={{ds_nodash}} ts={{ ts }} table={{ params.table }} limit={{ params.limit }} run={{ run_id }} dag={{ dag_id }} task={{ task_id }} try=$DAGQ_TRY_NUMBER ld=$DAGQ_LOGICAL_DATE region=$REGION"',
   '{"REGION": "eu-west"}');
SQL
    start_stack 1
    local run out
    run=$(sql "SELECT dagq.trigger_dag('tmpl', '{\"table\": \"sales_eu\"}', '2024-03-01 00:00:00+00')")
    assert_eq success "$(wait_run "$run" 60)" "templated run"
    out=$("$T_BIN/dagq" logs "$run" show)
    assert_contains "$out" "ds=2024-03-01 nodash=20240301 ts=2024-03-01T00:00:00+00:00 table=sales_eu limit=10 run=$run dag=tmpl task=show try=1 ld=2024-03-01T00:00:00+00:00 region=eu-west" "rendered command"
    # the instance keeps the command as rendered; editing the DAG does not change it
    sql "UPDATE dagq.task SET command = 'echo changed' WHERE dag_id = 'tmpl'" >/dev/null
    assert_contains "$(sql "SELECT command FROM dagq.task_instance WHERE run_id = $run")" "table=sales_eu" "rendered command kept"
    # an unknown variable fails the task instance with a reason, without a worker
    sql "UPDATE dagq.task SET command = 'echo {{ params.nope }}' WHERE dag_id = 'tmpl'" >/dev/null
    run=$(sql "SELECT dagq.trigger_dag('tmpl')")
    assert_eq failed "$(wait_run "$run" 60)" "bad template fails the run"
    assert_contains "$(sql "SELECT note FROM dagq.task_instance WHERE run_id = $run")" "params.nope" "note names the variable"
}

case_output_kept_and_bounded() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('chatty');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('chatty', 'big', 'head -c 3000000 /dev/zero | tr "\0" "x"; printf "\nbinary:\377\376 end\n"; echo to-stderr >&2');
SQL
    start_stack 1
    local run
    run=$(sql "SELECT dagq.trigger_dag('chatty')")
    assert_eq success "$(wait_run "$run" 60)" "chatty run"
    assert_eq t "$(sql "SELECT length(output) <= 1048576 AND length(output) > 1000000 FROM dagq.task_log")" "log bounded to 1 MiB, tail kept"
    assert_eq t "$(sql "SELECT truncated_bytes > 1900000 FROM dagq.task_log")" "truncation counted"
    local out
    out=$("$T_BIN/dagq" logs "$run" big)
    assert_contains "$out" "to-stderr" "stderr kept"
    assert_contains "$out" "binary:" "tail kept"
}

case_pause_and_clear() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('clr');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('clr', 'a', 'echo a >> ' || :'T' || '/ran'),
  ('clr', 'b', 'echo b >> ' || :'T' || '/ran');
INSERT INTO dagq.task_dependency VALUES ('clr', 'b', 'a');
SQL
    start_stack 1
    local run
    "$T_BIN/dagq" pause clr >/dev/null || fail "dagq pause"
    run=$(sql "SELECT dagq.trigger_dag('clr')")
    sleep 2
    assert_eq queued "$(sql "SELECT state FROM dagq.dag_run WHERE run_id = $run")" "paused DAG does not start"
    "$T_BIN/dagq" unpause clr >/dev/null || fail "dagq unpause"
    assert_eq success "$(wait_run "$run" 60)" "runs after unpause"
    "$T_BIN/dagq" clear "$run" a --downstream >"$T_CASE/clear.out" || fail "dagq clear"
    assert_contains "$(cat "$T_CASE/clear.out")" "2" "two cleared"
    assert_eq success "$(wait_run "$run" 60)" "cleared run runs again"
    sleep 0.5
    assert_eq "a b a b" "$(tr '\n' ' ' <"$T_CASE/ran" | sed 's/ $//')" "a and b ran twice, in order"
    assert_eq 2 "$(sql "SELECT try_number FROM dagq.task_instance WHERE run_id = $run AND task_id = 'b'")" "new try number"
}

case_lost_message_is_pushed_again() {
    # the state a scheduler crash between COMMIT and push leaves behind: a
    # try 'queued' in the metastore whose message never reached the broker
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('lost');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('lost', 't', 'echo ran >> ' || :'T' || '/ran');
SELECT dagq.trigger_dag('lost');
SELECT dagq.start_run(1);
UPDATE dagq.task_instance SET state = 'queued', try_number = 1, queued_at = now(),
       pushed_at = now() - interval '1 hour';
SQL
    start_scheduler sched --queued-timeout 2
    start_worker w1 --slots 1
    assert_eq success "$(wait_run 1 60)" "the run finishes"
    assert_eq 1 "$(sql "SELECT try_number FROM dagq.task_instance WHERE run_id = 1")" "same try, not a new one"
    assert_eq 1 "$(wc -l <"$T_CASE/ran")" "ran once"
    assert_contains "$(cat "$T_CASE/sched.log")" "pushing it again" "scheduler says it re-pushed"
}

case_max_active_tasks_and_runs_are_honoured() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, max_active_tasks, max_active_runs) VALUES ('narrow', 2, 1);
INSERT INTO dagq.task (dag_id, task_id, command)
  SELECT 'narrow', 't' || i, 'sleep 0.3' FROM generate_series(1, 6) i;
SELECT dagq.trigger_dag('narrow') FROM generate_series(1, 3);
SQL
    start_stack 2
    wait_until 90 "SELECT count(*) FROM dagq.dag_run WHERE state = 'success'" 3
    # most task instances of the DAG running at any instant: at a start,
    # count the others whose [start, end) covers it
    assert_eq 2 "$(sql "SELECT max(n) FROM (SELECT (SELECT count(*) FROM dagq.task_instance o
        WHERE o.started_at <= t.started_at AND o.ended_at > t.started_at) AS n FROM dagq.task_instance t) x")" \
        "at most max_active_tasks=2 at once (and 2 were used)"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.dag_run a JOIN dagq.dag_run b ON a.run_id < b.run_id
        AND a.started_at < b.ended_at AND b.started_at < a.ended_at")" "runs never overlap with max_active_runs=1"
}

case_ready_tasks_queue_by_priority() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('prio', 1);
INSERT INTO dagq.task (dag_id, task_id, command, priority) VALUES
  ('prio', 'low', 'echo low >> ' || :'T' || '/order', 1),
  ('prio', 'high', 'echo high >> ' || :'T' || '/order', 100),
  ('prio', 'mid', 'echo mid >> ' || :'T' || '/order', 50),
  ('prio', 'default', 'echo default >> ' || :'T' || '/order', 0);
SELECT dagq.trigger_dag('prio');
SQL
    start_stack 1
    assert_eq success "$(wait_run 1 60)" "run"
    assert_eq "high mid low default" "$(tr '\n' ' ' <"$T_CASE/order" | sed 's/ $//')" "higher priority first"
}

case_schedule_without_catchup_runs_latest_interval_in_its_time_zone() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, schedule, timezone, start_date, catchup) VALUES
  ('nightly_ny', '0 3 * * *', 'America/New_York', now() - interval '10 days', false),
  ('hourly17', '17 * * * *', 'UTC', now() - interval '1 day', false),
  ('future', '@daily', 'UTC', now() + interval '10 days', false);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('nightly_ny', 't', 'true'), ('hourly17', 't', 'true'), ('future', 't', 'true');
SQL
    start_stack 1
    wait_until 60 "SELECT count(*) >= 2 FROM dagq.dag_run WHERE state = 'success'" t
    sleep 1.5 # a further pass creates nothing more
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'nightly_ny'")" "one run without catchup"
    # its interval ends at the latest 03:00 New York time that has passed
    assert_eq "03:00:00|t|1 day" "$(sql "SELECT to_char(data_interval_end AT TIME ZONE 'America/New_York', 'HH24:MI:SS'),
        data_interval_end <= now() AND data_interval_end > now() - interval '1 day',
        (data_interval_end AT TIME ZONE 'America/New_York') - (data_interval_start AT TIME ZONE 'America/New_York')
        FROM dagq.dag_run WHERE dag_id = 'nightly_ny'")" "interval in the DAG's time zone"
    assert_eq "17|t|t|01:00:00" "$(sql "SELECT extract(minute FROM data_interval_end)::int,
        data_interval_end > now() - interval '1 hour' AND data_interval_end <= now(),
        logical_date = data_interval_start, data_interval_end - data_interval_start
        FROM dagq.dag_run WHERE dag_id = 'hourly17'")" "latest hourly interval only"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'future'")" "nothing before start_date"
    assert_eq t "$(sql "SELECT next_dagrun_end > now() FROM dagq.dag WHERE dag_id = 'hourly17'")" "next interval is in the future"
}

# Pools cap concurrent slots across DAGs: never more than the pool holds
# (measured from the database's own start and end times), the pool is used
# to its size, tasks outside it are not held back, and a pool of 0 slots
# holds its tasks until it is raised.
case_pools_cap_concurrency_across_dags() {
    sqlf <<'SQL'
INSERT INTO dagq.pool (pool, slots) VALUES ('warehouse', 2), ('held', 0);
INSERT INTO dagq.dag (dag_id) VALUES ('pa'), ('pb'), ('pc');
INSERT INTO dagq.task (dag_id, task_id, command, pool, pool_slots)
SELECT 'pa', 'a' || i, 'sleep 0.3', 'warehouse', 1 FROM generate_series(1, 4) i
UNION ALL SELECT 'pb', 'b' || i, 'sleep 0.3', 'warehouse', 1 FROM generate_series(1, 3) i
UNION ALL SELECT 'pb', 'big', 'sleep 0.3', 'warehouse', 2
UNION ALL SELECT 'pb', 'free' || i, 'sleep 1', NULL, 1 FROM generate_series(1, 4) i
UNION ALL SELECT 'pc', 'c1', 'true', 'held', 1;
SQL
    start_stack 2
    local ra rb rc
    ra=$(sql "SELECT dagq.trigger_dag('pa')")
    rb=$(sql "SELECT dagq.trigger_dag('pb')")
    rc=$(sql "SELECT dagq.trigger_dag('pc')")
    assert_eq success "$(wait_run "$ra" 60)" "run of pa"
    assert_eq success "$(wait_run "$rb" 60)" "run of pb"
    # slots in use at each start: pool tasks whose try spans that instant
    local overlap
    overlap="WITH t AS (SELECT i.pool, i.pool_slots, y.started_at s, y.ended_at e
                        FROM dagq.task_try y JOIN dagq.task_instance i USING (ti_id)
                       WHERE i.run_id IN ($ra, $rb) AND y.state = 'success')
             SELECT max(u) FROM (SELECT (SELECT sum(b.pool_slots) FROM t b
                                          WHERE b.pool IS NOT DISTINCT FROM a.pool
                                            AND b.s <= a.s AND a.s < b.e) u
                                   FROM t a WHERE a.pool IS NOT DISTINCT FROM %s) m"
    # shellcheck disable=SC2059
    assert_eq 2 "$(sql "$(printf "$overlap" "'warehouse'")")" "most warehouse slots in use at once"
    # shellcheck disable=SC2059
    assert_eq 4 "$(sql "$(printf "$overlap" "NULL")")" "tasks outside the pool ran side by side"
    assert_eq 12 "$(sql "SELECT count(*) FROM dagq.task_try y JOIN dagq.task_instance i USING (ti_id)
        WHERE i.run_id IN ($ra, $rb)")" "each task ran once"
    assert_eq scheduled "$(ti_state "$rc" c1)" "a task of a pool with 0 slots waits"
    sql "UPDATE dagq.pool SET slots = 1 WHERE pool = 'held'" >/dev/null
    assert_eq success "$(wait_run "$rc" 30)" "raising the pool lets it run"
}

# With polling all but off, every kind of task end that can make work wakes
# the scheduler: a freed max_active_tasks slot, a freed pool slot, a
# downstream task, a retry, and the end of a run. Each step would otherwise
# wait for the 60 s poll; the whole case finishes in a few seconds.
case_task_ends_wake_the_scheduler_without_polling() {
    sqlf <<'SQL'
INSERT INTO dagq.pool (pool, slots) VALUES ('narrow', 2);
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('slots', 3), ('pooled', 100), ('line', 16), ('retry', 16);
INSERT INTO dagq.task (dag_id, task_id, command)
SELECT 'slots', 's' || i, 'true' FROM generate_series(1, 12) i;
INSERT INTO dagq.task (dag_id, task_id, command, pool)
SELECT 'pooled', 'p' || i, 'true', 'narrow' FROM generate_series(1, 8) i;
INSERT INTO dagq.task (dag_id, task_id, command)
SELECT 'line', 'l' || i, 'true' FROM generate_series(1, 5) i;
INSERT INTO dagq.task_dependency SELECT 'line', 'l' || i, 'l' || (i - 1) FROM generate_series(2, 5) i;
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('retry', 'once', 'f=' || :'T' || '/failed; [ -e $f ] || { touch $f; exit 1; }', 1, '0');
SQL
    start_scheduler sched --poll-interval-ms 60000
    start_worker w1 --slots 8
    sleep 1
    local t0=$SECONDS r run
    for r in slots pooled line retry; do
        run=$(sql "SELECT dagq.trigger_dag('$r')")
        assert_eq success "$(wait_run "$run" 30)" "run of $r"
    done
    assert_le "$((SECONDS - t0))" 20 "seconds for the four runs (a missed wake costs 60)"
    assert_eq 2 "$(sql "SELECT try_number FROM dagq.task_instance WHERE dag_id = 'retry'")" "the retry ran as try 2"
}
