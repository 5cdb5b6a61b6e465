# The ETL features' SQL side, with no scheduler or broker: the database's
# evaluation of schedules agrees with the scheduler's, definitions that
# cannot work are rejected naming the problem, and operator functions check
# who calls them.
# brokers: redis

. "$T_REPO/tests/etl_lib.sh"

case_sql_schedule_evaluation_agrees_with_cron_next() {
    bash tests/cron_next_check.sh "$DAGQ_DATABASE_URL" || fail "dagq.schedule_next / dagq.cron_fires disagree with cron_next"
}

case_sql_bad_schedules_and_definitions_rejected_naming_the_problem() {
    assert_contains "$(sql_err "INSERT INTO dagq.dag (dag_id, schedule) VALUES ('e', '@every 30m1h')")" \
        'schedule "@every 30m1h" is not valid: @every: duration "30m1h" is not valid' "a bad @every"
    assert_contains "$(sql_err "INSERT INTO dagq.dag (dag_id, schedule) VALUES ('e', '@every 400d')")" \
        '@every: 400d is out of range 1s-365d' "an @every out of range"
    assert_contains "$(sql_err "INSERT INTO dagq.dag (dag_id, schedule) VALUES ('e', '@once now')")" \
        'unexpected text after @once' "@once with text after it"
    sql "INSERT INTO dagq.dag (dag_id, schedule) VALUES ('e1', '@every 1h30m'), ('e2', '@once'), ('e3', '@daily')" >/dev/null ||
        fail "good schedules refused"
    sql "INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('e1', 't', 'true'), ('e2', 't', 'true'), ('e3', 't', 'true')" >/dev/null
    assert_contains "$(sql_err "INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id, upstream_task_id) VALUES ('e1', 't', 'e2', 'nope')")" \
        'violates foreign key constraint' "a dependency on an unknown task"
    assert_contains "$(sql_err "INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id, if_upstream_failed) VALUES ('e1', 't', 'e2', 'ignore')")" \
        'if_upstream_failed must be fail or skip, got ignore' "an unknown policy"
    assert_contains "$(sql_err "INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id) VALUES ('e1', 't', 'e1')")" \
        'waits for its own DAG at the same logical date' "a DAG waiting for itself"
    sql "INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id, logical_date_offset) VALUES ('e1', 't', 'e1', '-1 day')" >/dev/null ||
        fail "waiting for its own previous run"
    sql "INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id, upstream_task_id) VALUES ('e1', 't', 'e2', 't')" >/dev/null ||
        fail "a good dependency refused"
    assert_contains "$(sql_err "DELETE FROM dagq.task WHERE dag_id = 'e2'")" 'task_external_dependency' "a task others wait for cannot be deleted"
    assert_contains "$(sql_err "SELECT dagq.backfill('nope', '2024-01-01', '2024-01-02')")" 'unknown DAG "nope"' "backfill of an unknown DAG"
    sql "INSERT INTO dagq.dag (dag_id) VALUES ('manual_only')" >/dev/null
    assert_contains "$(sql_err "SELECT dagq.backfill('manual_only', '2024-01-01', '2024-01-02')")" 'has no schedule' "backfill of a DAG without a schedule"
    assert_contains "$(sql_err "SELECT dagq.backfill('e3', '2024-01-02', '2024-01-01')")" 'must not be after' "a reversed range"
    assert_contains "$(sql_err "SELECT dagq.backfill('e3', '2024-01-01', '2024-01-02', 'some')")" 'reprocess must be none, failed or all' "reprocess"
}

case_sql_dag_trigger_cycle_rejected_naming_it() {
    sql "INSERT INTO dagq.dag (dag_id) VALUES ('a'), ('b'), ('c')" >/dev/null
    sql "INSERT INTO dagq.dag_trigger (dag_id, upstream_dag_id) VALUES ('b', 'a'), ('c', 'b')" >/dev/null || fail "a chain of triggers"
    local err
    err=$(sql_err "INSERT INTO dagq.dag_trigger (dag_id, upstream_dag_id) VALUES ('a', 'c')")
    assert_contains "$err" 'DAG triggers would form a cycle: a -> b -> c -> a' "the cycle is named"
    assert_contains "$(sql_err "INSERT INTO dagq.dag_trigger (dag_id, upstream_dag_id) VALUES ('a', 'a')")" \
        'DAG triggers would form a cycle: a -> a' "a DAG triggering itself"
    # two transactions adding half a cycle each: the second is refused at commit
    sql "INSERT INTO dagq.dag (dag_id) VALUES ('x_up'), ('x_down')" >/dev/null
    hold half 2 "INSERT INTO dagq.dag_trigger (dag_id, upstream_dag_id) VALUES ('x_down', 'x_up');
        SET CONSTRAINTS ALL IMMEDIATE"
    err=$(sql_err "INSERT INTO dagq.dag_trigger (dag_id, upstream_dag_id) VALUES ('x_up', 'x_down')")
    wait "$HOLD_PID" || fail "the first half: $(cat "$T_CASE/half.out")"
    assert_contains "$err" 'x_up -> x_down -> x_up' "the second half of a cycle, committed at the same time, is refused"
    assert_eq 3 "$(sql "SELECT count(*) FROM dagq.dag_trigger")" "only the good triggers"
    assert_contains "$(sql_err "DELETE FROM dagq.dag WHERE dag_id = 'a'")" 'dag_trigger' "a DAG others are triggered by cannot be deleted"
}

# roles: a viewer, an operator of team A (which owns the DAG), one of team B
etl_roles() {
    local n=${DAGQ_REDIS_PREFIX%:}
    VIEWER=viewer_$n
    OP_A=op_a_$n
    OP_B=op_b_$n
    login_role "team_a_$n"
    login_role "team_b_$n"
    login_role "$VIEWER" dagq_viewer
    login_role "$OP_A" dagq_operator "team_a_$n"
    login_role "$OP_B" dagq_operator "team_b_$n"
    AUTHOR_A=author_a_$n
    AUTHOR_B=author_b_$n
    login_role "$AUTHOR_A" dagq_author "team_a_$n"
    login_role "$AUTHOR_B" dagq_author "team_b_$n"
    sql "INSERT INTO dagq.dag (dag_id, schedule, start_date, end_date, owner) VALUES ('d', '@daily', '2024-01-01', '2024-12-31', 'team_a_$n');
         INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('d', 't', 'true');
         SELECT dagq.trigger_dag('d'); SELECT dagq.start_run(1);" >/dev/null
}

# dagq_as ROLE ARGS...: the CLI logged in as ROLE; sets OUT, ERR, RC
dagq_as() {
    local role=$1
    shift
    OUT=$(DAGQ_DATABASE_URL="$(login_url "$role")" "$T_BIN/dagq" "$@" 2>"$T_CASE/err")
    RC=$?
    ERR=$(cat "$T_CASE/err")
}

case_sql_operator_functions_refuse_viewers_and_other_teams() {
    etl_roles
    local cmd
    for cmd in "backfill d --from 2024-02-01 --to 2024-02-03" "mark 1 t success" "stop 1" "stop 1 t"; do
        # shellcheck disable=SC2086 # the words of the command
        dagq_as "$VIEWER" $cmd
        assert_eq 1 "$RC" "dagq $cmd as a viewer: exit status"
        assert_contains "$ERR" "permission denied for function" "dagq $cmd as a viewer"
        assert_contains "$ERR" "dagq_operator" "dagq $cmd as a viewer says what is missing"
        # shellcheck disable=SC2086
        dagq_as "$OP_B" $cmd
        assert_eq 1 "$RC" "dagq $cmd as team B's operator: exit status"
        assert_contains "$ERR" "may not act on DAG \"d\", owned by team_a_" "dagq $cmd as team B's operator"
    done
    assert_eq "0|0|running" "$(sql "SELECT (SELECT count(*) FROM dagq.backfill), (SELECT count(*) FROM dagq.task_instance WHERE note IS NOT NULL),
        (SELECT state FROM dagq.dag_run WHERE run_id = 1)")" "nothing was done"
    dagq_as "$VIEWER" backfill d --from 2024-02-01 --to 2024-02-03 --dry-run
    assert_eq 0 "$RC" "a viewer may plan a backfill (--dry-run): $ERR"
    assert_contains "$OUT" "3 intervals: 3 to create" "the plan"
    dagq_as "$OP_A" backfill d --from 2024-02-01 --to 2024-02-03
    assert_eq "0|1" "$RC|$OUT" "team A's operator backfills its DAG: $ERR"
    dagq_as "$OP_B" backfill cancel 1
    assert_contains "$ERR" "may not act on DAG \"d\"" "team B's operator cannot cancel it"
    dagq_as "$OP_A" mark 1 t success
    assert_eq "0|marked 1 task instance success" "$RC|$OUT" "team A's operator marks: $ERR"
    assert_eq "marked success by $OP_A" "$(sql "SELECT note FROM dagq.task_instance WHERE run_id = 1")" "recorded with who"
    dagq_as "$OP_A" backfill cancel 1
    assert_eq "0|canceled backfill 1: 3 runs that had not started deleted (running ones go on)" "$RC|$OUT" "team A's operator cancels: $ERR"
    dagq_as "$VIEWER" backfills
    assert_contains "$OUT" "canceled" "a viewer lists backfills"
    # authors write the dependencies and triggers of their own DAGs only
    sql "INSERT INTO dagq.dag (dag_id, owner) VALUES ('up', 'team_b_${DAGQ_REDIS_PREFIX%:}');
         INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('up', 'u', 'true')" >/dev/null
    as_role "$AUTHOR_A" -c "INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id, upstream_task_id)
        VALUES ('d', 't', 'up', 'u'); INSERT INTO dagq.dag_trigger (dag_id, upstream_dag_id) VALUES ('d', 'up');
        UPDATE dagq.dag SET dagrun_timeout = '1 hour' WHERE dag_id = 'd'" >/dev/null ||
        fail "team A's author makes its DAG wait on team B's"
    assert_eq "1|1|01:00:00" "$(sql "SELECT (SELECT count(*) FROM dagq.task_external_dependency), (SELECT count(*) FROM dagq.dag_trigger),
        (SELECT dagrun_timeout FROM dagq.dag WHERE dag_id = 'd')")" "written"
    assert_contains "$(as_role "$AUTHOR_B" -c "INSERT INTO dagq.task_external_dependency (dag_id, task_id, upstream_dag_id)
        VALUES ('d', 't', 'up')" 2>&1)" "row-level security" "team B's author cannot touch team A's DAG"
    assert_contains "$(as_role "$AUTHOR_B" -c "DELETE FROM dagq.dag_trigger RETURNING 1" 2>&1)" "" "nor delete its triggers"
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.dag_trigger")" "the trigger is still there"
}
