# Retention: `dagq db prune` and `dagq-scheduler --retention` delete old
# finished runs with what hangs off them, and nothing else; the rows of
# long-gone workers are pruned. The broker plays no part: Redis only.
# brokers: redis

sqlf() { psql -X -q -At -v ON_ERROR_STOP=1 -v T="$T_CASE" "$DAGQ_DATABASE_URL" -f -; }

# hold NAME SECONDS SQL (as tests/integration/state.sh): SQL in its own
# session inside BEGIN ... COMMIT, held open for SECONDS
hold() {
    local name=$1 secs=$2 q=$3
    PGAPPNAME=$name psql -X -q -At -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" \
        -c "BEGIN; $q; SELECT pg_sleep($secs); COMMIT;" >"$T_CASE/$name.out" 2>&1 &
    HOLD_PID=$!
    wait_until 10 "SELECT count(*) FROM pg_stat_activity
        WHERE application_name = '$name' AND wait_event = 'PgSleep'" 1
}

# N finished runs of DAG old (a -> b, c), then M of DAG recent; the old
# ones are made to have ended 40 days ago (their task instances, tries and
# events too). Leaves the stack running.
retention_setup() {
    local nold=$1 nrecent=$2 i run
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('old'), ('recent'), ('slow');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('old', 'a', 'echo a'), ('old', 'b', 'echo b'), ('old', 'c', 'echo c'),
  ('recent', 'a', 'echo a'), ('slow', 'long', 'sleep 60');
INSERT INTO dagq.task_dependency VALUES ('old', 'b', 'a');
SQL
    start_stack 1
    for i in $(seq "$nold"); do
        run=$(sql "SELECT dagq.trigger_dag('old')")
        assert_eq success "$(wait_run "$run" 60)" "old run $i"
    done
    for i in $(seq "$nrecent"); do
        run=$(sql "SELECT dagq.trigger_dag('recent')")
        assert_eq success "$(wait_run "$run" 60)" "recent run $i"
    done
    sqlf <<'SQL' >/dev/null
UPDATE dagq.dag_run SET created_at = created_at - interval '40 days',
       started_at = started_at - interval '40 days', ended_at = ended_at - interval '40 days'
 WHERE dag_id = 'old';
UPDATE dagq.event SET created_at = created_at - interval '40 days' WHERE dag_id = 'old';
-- events of no run: one old, one recent
INSERT INTO dagq.event (event, dag_id, created_at, note)
VALUES ('dag_parked', 'old', now() - interval '40 days', 'old news'),
       ('dag_parked', 'recent', now(), 'fresh news');
SQL
}

# counts: runs|task instances|tries|logs|edges|events of DAG $1
history_of() {
    sql "SELECT (SELECT count(*) FROM dagq.dag_run WHERE dag_id = '$1') || '|' ||
                (SELECT count(*) FROM dagq.task_instance WHERE dag_id = '$1') || '|' ||
                (SELECT count(*) FROM dagq.task_try y JOIN dagq.task_instance t USING (ti_id) WHERE t.dag_id = '$1') || '|' ||
                (SELECT count(*) FROM dagq.task_log l JOIN dagq.task_instance t USING (ti_id) WHERE t.dag_id = '$1') || '|' ||
                (SELECT count(*) FROM dagq.task_instance_dependency e JOIN dagq.task_instance t USING (ti_id) WHERE t.dag_id = '$1') || '|' ||
                (SELECT count(*) FROM dagq.event WHERE dag_id = '$1')"
}

case_prune_deletes_only_old_finished_runs_never_one_in_flight() {
    retention_setup 3 2
    # in flight beside the old ones: a running run, and a run marked failed
    # 40 days ago whose task is still running (a stop whose kill is pending)
    local slow stuck
    slow=$(sql "SELECT dagq.trigger_dag('slow')")
    stuck=$(sql "SELECT dagq.trigger_dag('slow')")
    wait_until 30 "SELECT count(*) FROM dagq.task_instance WHERE dag_id = 'slow' AND state = 'running'" 2
    sql "UPDATE dagq.dag_run SET state = 'failed', ended_at = now() - interval '40 days'
          WHERE run_id = $stuck" >/dev/null
    local before_old before_recent before_slow
    before_old=$(history_of old)
    before_recent=$(history_of recent)
    before_slow=$(history_of slow)
    # each old run: 3 task instances, 3 tries, 3 logs, 1 edge, 1 run_succeeded; plus the old news
    assert_eq "3|9|9|9|3|4" "$before_old" "the old history before"

    # a dry run lists and deletes nothing
    local out
    out=$("$T_BIN/dagq" db prune --older-than 30d --dry-run 2>&1)
    assert_contains "$out" "old" "the dry run names the DAG"
    assert_contains "$out" "would delete 3 runs, 9 task instances and 4 events" "the dry run's totals"
    case "$out" in *recent* | *slow*) fail "the dry run lists runs it must keep: $out" ;; esac
    assert_eq "$before_old" "$(history_of old)" "the dry run deleted nothing"

    # least privilege: an operator may not prune
    assert_contains "$(DAGQ_DATABASE_URL=$T_OPERATOR_DB_URL "$T_BIN/dagq" db prune --older-than 30d 2>&1)" \
        "permission denied" "an operator is refused"
    assert_contains "$("$T_BIN/dagq" db prune --older-than 3x 2>&1)" 'unknown unit "x"' "a bad age is refused"
    assert_contains "$("$T_BIN/dagq" db prune --older-than 30 2>&1)" 'needs a unit' "an age needs a unit"

    out=$("$T_BIN/dagq" db prune --older-than 30d 2>&1)
    assert_contains "$out" "deleted 3 runs, 9 task instances, 9 tries, 9 logs and 4 events" "what prune says"
    assert_eq "0|0|0|0|0|0" "$(history_of old)" "the old runs are gone with everything of theirs"
    assert_eq "$before_recent" "$(history_of recent)" "recent runs are kept whole"
    assert_eq "$before_slow" "$(history_of slow)" "runs in flight are kept whole"
    assert_eq "running|failed" "$(sql "SELECT string_agg(state, '|' ORDER BY run_id) FROM dagq.dag_run WHERE dag_id = 'slow'")" \
        "the running run and the stuck one are there"
    assert_eq "fresh news" "$(sql "SELECT note FROM dagq.event WHERE run_id IS NULL")" "only the recent event of no run is left"
    assert_contains "$("$T_BIN/dagq" db prune --older-than 30d 2>&1)" "deleted 0 runs" "a second prune finds nothing"
    # the work goes on
    local run
    run=$(sql "SELECT dagq.trigger_dag('recent')")
    assert_eq success "$(wait_run "$run" 60)" "a run after the prune"
    kill9 w1 # its slow tries would hold its drain for a minute
}

# An old run that a running backfill has still to rerun (reprocess all over
# old dates) is the user's work to come, not history: prune keeps it until
# the backfill is over.
case_prune_keeps_a_run_a_backfill_is_still_to_rerun() {
    retention_setup 2 0
    stop_all # the backfill below is made by hand: no scheduler may start it
    local keep gone
    keep=$(sql "SELECT min(run_id) FROM dagq.dag_run WHERE dag_id = 'old'")
    gone=$(sql "SELECT max(run_id) FROM dagq.dag_run WHERE dag_id = 'old'")
    sqlf <<SQL >/dev/null
INSERT INTO dagq.backfill (backfill_id, dag_id, from_date, to_date, reprocess, created_by)
VALUES (9001, 'old', now() - interval '41 days', now() - interval '39 days', 'all', 'tester');
INSERT INTO dagq.backfill_run (backfill_id, seq, logical_date, data_interval_end, action, run_id)
SELECT 9001, 1, logical_date, data_interval_end, 'rerun_all', run_id FROM dagq.dag_run WHERE run_id = $keep;
INSERT INTO dagq.backfill_run (backfill_id, seq, logical_date, data_interval_end, action, run_id, started_at)
SELECT 9001, 2, logical_date, data_interval_end, 'rerun_all', run_id, now() FROM dagq.dag_run WHERE run_id = $gone;
SQL
    assert_contains "$("$T_BIN/dagq" db prune --older-than 30d 2>&1)" "deleted 1 runs" "one old run goes"
    assert_eq "$keep" "$(sql "SELECT string_agg(run_id::text, ',') FROM dagq.dag_run WHERE dag_id = 'old'")" \
        "the run the backfill has still to rerun is kept, the one it reran is not"
    assert_eq 3 "$(sql "SELECT count(*) FROM dagq.task_instance WHERE run_id = $keep")" "with its task instances"
    sql "UPDATE dagq.backfill SET state = 'canceled', ended_at = now() WHERE backfill_id = 9001" >/dev/null
    assert_contains "$("$T_BIN/dagq" db prune --older-than 30d 2>&1)" "deleted 1 runs" "once the backfill is over"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'old'")" "the old runs are gone"
}

# A prune's batch locks only what it deletes and skips what others hold:
# a row a user holds does not stall it, and a batch held open does not stall
# a scheduling pass.
case_prune_batches_never_stall_a_pass_nor_wait_for_a_held_row() {
    retention_setup 3 0
    local first
    first=$(sql "SELECT min(run_id) FROM dagq.dag_run WHERE dag_id = 'old'")
    # a user holds the task instances of one old run
    hold locker 12 "SELECT 1 FROM dagq.task_instance WHERE run_id = $first FOR UPDATE"
    local t0=$SECONDS out
    out=$("$T_BIN/dagq" db prune --older-than 30d 2>&1)
    assert_le $((SECONDS - t0)) 3 "the prune did not wait for the held rows"
    assert_contains "$out" "deleted 2 runs" "the runs nobody holds are pruned"
    assert_eq "1|3" "$(sql "SELECT count(*) || '|' || (SELECT count(*) FROM dagq.task_instance WHERE dag_id = 'old')
        FROM dagq.dag_run WHERE dag_id = 'old'")" "the held run is kept whole"
    alive "$HOLD_PID" || fail "the holding transaction ended too early for the case to mean anything"
    wait "$HOLD_PID"
    assert_contains "$("$T_BIN/dagq" db prune --older-than 30d 2>&1)" "deleted 1 runs" "and pruned once it is free"

    # a batch held open (its locks kept) beside a scheduler's passes
    retention_more_old 2
    # open 20 s: a pass stalled by it would hold the run that long; 15 s is
    # room for a loaded machine
    hold pruner 20 "SELECT * FROM dagq.prune_history('30 days', 500)"
    local run
    run=$(sql "SELECT dagq.trigger_dag('recent')")
    assert_eq success "$(wait_run "$run" 15)" "a run goes through while a prune batch is open"
    alive "$HOLD_PID" || fail "the open batch ended too early for the case to mean anything"
    wait "$HOLD_PID" || fail "the batch failed: $(cat "$T_CASE/pruner.out")"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'old'")" "the batch committed"
}

# two more old finished runs of DAG old (the stack is running)
retention_more_old() {
    local i run
    for i in $(seq "$1"); do
        run=$(sql "SELECT dagq.trigger_dag('old')")
        assert_eq success "$(wait_run "$run" 60)" "one more old run"
    done
    sql "UPDATE dagq.dag_run SET ended_at = ended_at - interval '40 days' WHERE dag_id = 'old'" >/dev/null
}

case_scheduler_retention_prunes_as_it_goes() {
    retention_setup 3 1
    stop sched
    # gone workers' rows: one silent for two days (pruned), one fresh (kept)
    sql "INSERT INTO dagq.worker (worker_id, incarnation, hostname, pid, groups, slots, state, heartbeat_at)
         VALUES ('ghost', gen_random_uuid(), 'h', 1, '{default}', 1, 'gone', now() - interval '2 days'),
                ('napping', gen_random_uuid(), 'h', 2, '{default}', 1, 'gone', now() - interval '1 hour')" >/dev/null
    local first
    first=$(sql "SELECT min(run_id) FROM dagq.dag_run WHERE dag_id = 'old'")
    hold locker 12 "SELECT 1 FROM dagq.task_instance WHERE run_id = $first FOR UPDATE"
    start_scheduler sched --retention 30d
    wait_until 10 "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'old'" 1
    wait_log sched 'msg="pruned finished history".* runs=2 task_instances=6 ' 5
    # the passes go on beside it (the held run does not stall them)
    local run
    run=$(sql "SELECT dagq.trigger_dag('recent')")
    assert_eq success "$(wait_run "$run" 8)" "a run goes through while retention skips a held run"
    assert_eq "2|2" "$(sql "SELECT count(*) || '|' || count(*) FILTER (WHERE state = 'success') FROM dagq.dag_run WHERE dag_id = 'recent'")" \
        "recent runs are kept"
    assert_eq napping "$(sql "SELECT string_agg(worker_id, ',') FROM dagq.worker WHERE state = 'gone'")" \
        "the row of the worker gone for two days was pruned (dagq.prune_workers)"
    alive "$HOLD_PID" || fail "the holding transaction ended too early for the case to mean anything"
    wait "$HOLD_PID"
    # a full batch is followed at once, one less than full waits a minute:
    # the held run goes at the next batch, in a minute; do not wait for it
    if grep -q 'level=warn.*pruning the history failed' "$T_CASE/sched.log"; then
        fail "a batch failed: $(grep 'pruning the history failed' "$T_CASE/sched.log" | head -2)"
    fi
}

case_scheduler_retention_rejects_a_bad_age() {
    local out
    local rc
    out=$("$T_BIN/dagq-scheduler" --retention 'ninety days' 2>&1)
    rc=$?
    assert_eq 2 "$rc" "exit status"
    assert_contains "$out" "--retention" "names the option"
}
