# The database rejects a DAG that cannot run, with an error naming the
# problem, and keeps nothing of the rejected transaction.
# brokers: redis

case_cyclic_dag_rejected_at_insert() {
    local err
    err=$(sql_err "BEGIN;
        INSERT INTO dagq.dag (dag_id) VALUES ('cyc');
        INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('cyc','a','true'),('cyc','b','true'),('cyc','c','true'),('cyc','d','true');
        INSERT INTO dagq.task_dependency VALUES ('cyc','b','a'),('cyc','c','b'),('cyc','a','c'),('cyc','d','a');
        COMMIT;")
    assert_contains "$err" 'has a cycle' "cycle error"
    assert_contains "$err" 'DAG "cyc"' "names the DAG"
    case "$err" in *"a -> b -> c -> a"* | *"b -> c -> a -> b"* | *"c -> a -> b -> c"*) ;;
        *) fail "cycle path not named: $err" ;; esac
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.dag")" "nothing kept"
    # a self-loop, and a cycle closed by a later statement on an existing DAG
    sql "INSERT INTO dagq.dag (dag_id) VALUES ('ok'); INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('ok','a','true'),('ok','b','true'); INSERT INTO dagq.task_dependency VALUES ('ok','b','a')" >/dev/null
    assert_contains "$(sql_err "INSERT INTO dagq.task_dependency VALUES ('ok','a','a')")" "cycle: a -> a" "self loop"
    assert_contains "$(sql_err "INSERT INTO dagq.task_dependency VALUES ('ok','a','b')")" "has a cycle" "two-node cycle"
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.task_dependency")" "only the good edge"
}

case_bad_definitions_rejected_with_named_problem() {
    sql "INSERT INTO dagq.dag (dag_id) VALUES ('d'); INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('d','a','true')" >/dev/null
    assert_contains "$(sql_err "INSERT INTO dagq.task_dependency VALUES ('d','a','nope')")" 'unknown task "nope"' "edge to unknown task"
    assert_contains "$(sql_err "INSERT INTO dagq.task (dag_id, task_id, command, trigger_rule) VALUES ('d','x','true','sometimes')")" 'unknown trigger_rule "sometimes"' "trigger rule"
    assert_contains "$(sql_err "INSERT INTO dagq.task (dag_id, task_id, command, kind) VALUES ('d','x','true','python')")" 'unknown kind "python"' "kind"
    assert_contains "$(sql_err "INSERT INTO dagq.task (dag_id, task_id, command, retries) VALUES ('d','x','true',-1)")" 'retries must not be negative' "negative retries"
    assert_contains "$(sql_err "INSERT INTO dagq.task (dag_id, task_id, command, worker_group) VALUES ('d','x','true','no spaces')")" 'not a valid worker group name' "worker group"
    assert_contains "$(sql_err "INSERT INTO dagq.task (dag_id, task_id) VALUES ('d','x')")" 'needs a command' "missing command"
    assert_contains "$(sql_err "INSERT INTO dagq.dag (dag_id, schedule) VALUES ('s','61 * * * *')")" 'schedule "61 * * * *" is not valid' "bad cron"
    assert_contains "$(sql_err "INSERT INTO dagq.dag (dag_id, schedule) VALUES ('s','@fortnightly')")" 'is not valid' "bad macro"
    assert_contains "$(sql_err "INSERT INTO dagq.dag (dag_id, timezone) VALUES ('s','Mars/Olympus')")" 'timezone "Mars/Olympus" is not a known IANA time zone' "bad time zone"
    assert_contains "$(sql_err "INSERT INTO dagq.dag (dag_id) VALUES ('bad id!')")" 'dag_id "bad id!" is not valid' "bad dag id"
    assert_contains "$(sql_err "SELECT dagq.trigger_dag('nope')")" 'unknown DAG "nope"' "trigger unknown DAG"
    assert_contains "$(sql_err "UPDATE dagq.dag SET schedule = '0 25 * * *' WHERE dag_id = 'd'")" 'is not valid' "bad cron on update"
    # good ones pass
    sql "INSERT INTO dagq.dag (dag_id, schedule, timezone) VALUES ('good', '30 2 * * 1-5', 'Europe/Berlin'), ('good2', '@daily', 'America/New_York')" >/dev/null ||
        fail "valid schedules rejected"
}

case_sql_cron_check_agrees_with_c_parser() {
    bash tests/cron_sql_check.sh "$DAGQ_DATABASE_URL" || fail "dagq.cron_check disagrees with cron_parse"
}

case_migrate_is_idempotent_and_concurrent() {
    local out
    out=$("$T_BIN/dagq" db migrate 2>&1) || fail "second migrate failed: $out"
    local db2
    db2=$(pg_new_db "${T_CASE##*/}_m" | tr -d '\n') || true
    db2=$(echo "postgresql://dagq@127.0.0.1:$PG_PORT/$(basename "$T_CASE" | tr '-' '_')_m")
    psql -X -q "$PG_ADMIN_URL" -c "CREATE DATABASE \"$(basename "$db2")\"" >/dev/null 2>&1
    DAGQ_DATABASE_URL=$db2 "$T_BIN/dagq" db migrate >"$T_CASE/m1.out" 2>&1 &
    local p1=$!
    DAGQ_DATABASE_URL=$db2 "$T_BIN/dagq" db migrate >"$T_CASE/m2.out" 2>&1 &
    local p2=$!
    wait $p1 || fail "concurrent migrate 1: $(cat "$T_CASE/m1.out")"
    wait $p2 || fail "concurrent migrate 2: $(cat "$T_CASE/m2.out")"
    assert_eq "$(sql "SELECT count(*) FROM dagq.schema_migrations")" \
        "$(psql -X -At "$db2" -c "SELECT count(*) FROM dagq.schema_migrations")" "all migrations recorded once"
}

case_bad_pools_rejected_with_named_problem() {
    sql "INSERT INTO dagq.dag (dag_id) VALUES ('d'); INSERT INTO dagq.pool (pool, slots) VALUES ('db', 3)" >/dev/null
    assert_contains "$(sql_err "INSERT INTO dagq.task (dag_id, task_id, command, pool) VALUES ('d','x','true','nope')")" \
        'dagq.task "d.x": unknown pool "nope"' "unknown pool, checked at commit"
    assert_contains "$(sql_err "INSERT INTO dagq.task (dag_id, task_id, command, pool, pool_slots) VALUES ('d','x','true','db',4)")" \
        'needs 4 slots of pool "db", which has only 3' "task larger than its pool"
    assert_contains "$(sql_err "INSERT INTO dagq.task (dag_id, task_id, command, pool, pool_slots) VALUES ('d','x','true','db',0)")" \
        'pool_slots must be from 1 to 1000000' "zero pool_slots"
    assert_contains "$(sql_err "INSERT INTO dagq.pool (pool, slots) VALUES ('p', -1)")" 'slots must be from 0 to 1000000' "negative slots"
    assert_contains "$(sql_err "INSERT INTO dagq.pool (pool, slots) VALUES ('no pool', 1)")" 'pool "no pool" is not valid' "pool name"
    # tasks may come before their pool in one transaction
    sql "BEGIN; INSERT INTO dagq.task (dag_id, task_id, command, pool, pool_slots) VALUES ('d','a','true','api',2);
         INSERT INTO dagq.pool (pool, slots) VALUES ('api', 2); COMMIT" >/dev/null || fail "task before its pool in one transaction"
    assert_contains "$(sql_err "DELETE FROM dagq.pool WHERE pool = 'api'")" 'cannot delete it: 1 task(s) use it, such as "d.a"' "delete a used pool"
    assert_contains "$(sql_err "UPDATE dagq.pool SET pool = 'api2' WHERE pool = 'api'")" 'cannot rename it' "rename a used pool"
    assert_contains "$(sql_err "UPDATE dagq.pool SET slots = 1 WHERE pool = 'api'")" 'fewer than task "d.a" needs (2)' "shrink below a task"
    sql "UPDATE dagq.pool SET slots = 0 WHERE pool = 'api'" >/dev/null || fail "a pool may be held back with 0 slots"
    sql "DELETE FROM dagq.pool WHERE pool = 'db'" >/dev/null || fail "an unused pool can be deleted"
}

# The shipped example DAG loads as the README says, and loading it again
# changes nothing (it is what `make demo` runs).
case_example_dag_loads_twice() {
    local i
    for i in 1 2; do
        psql -X -q -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" -f examples/etl_daily.sql >/dev/null 2>"$T_CASE/load$i.err" ||
            fail "examples/etl_daily.sql, load $i: $(cat "$T_CASE/load$i.err")"
    done
    assert_eq "5|4" "$(sql "SELECT (SELECT count(*) FROM dagq.task WHERE dag_id = 'etl_daily'),
        (SELECT count(*) FROM dagq.task_dependency WHERE dag_id = 'etl_daily')")" "tasks and edges"
    assert_eq "load|1" "$(sql "SELECT t.task_id, p.slots FROM dagq.task t JOIN dagq.pool p USING (pool)
        WHERE t.dag_id = 'etl_daily'")" "the load runs in the sales_mart pool"
}

# Time zones are checked against dagq.timezone_name (pg_timezone_names read
# once, at migration: reading it per DAG cost 50-200 ms); a name missing
# there, as after a time zone database update, is still looked up.
case_time_zones_checked_without_reading_the_zone_database_per_dag() {
    assert_eq t "$(sql "SELECT count(*) > 300 FROM dagq.timezone_name")" "the names are kept"
    sql "DELETE FROM dagq.timezone_name WHERE name = 'Pacific/Chatham'" >/dev/null
    sql "INSERT INTO dagq.dag (dag_id, schedule, timezone) VALUES ('chatham', '0 3 * * *', 'Pacific/Chatham')" >/dev/null
    assert_eq Pacific/Chatham "$(sql "SELECT timezone FROM dagq.dag WHERE dag_id = 'chatham'")" \
        "a valid name not in the table is accepted"
    assert_contains "$(sql_err "INSERT INTO dagq.dag (dag_id, timezone) VALUES ('mars', 'Mars/Olympus')")" \
        'timezone "Mars/Olympus" is not a known IANA time zone name' "an unknown one is refused, named"
    local t0=$SECONDS
    sql "INSERT INTO dagq.dag (dag_id, schedule, timezone)
         SELECT 'tz_' || i, '0 3 * * *', 'Europe/Paris' FROM generate_series(1, 500) i" >/dev/null
    echo "  500 DAGs inserted in $((SECONDS - t0)) s"
    assert_eq 500 "$(sql "SELECT count(*) FROM dagq.dag WHERE dag_id LIKE 'tz\_%'")" "500 DAGs"
}
