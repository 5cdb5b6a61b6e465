# Workers through PgBouncer in transaction pooling mode (README "Connection
# poolers"): nothing a worker does keeps state on a server connection, so
# any number of workers share a small pool. Each case starts a PgBouncer of
# its own in front of the lane's PostgreSQL. The broker plays no part here.
# brokers: redis

# pooler_pgb POOL: a PgBouncer of POOL server connections; sets PGB_WORKER_URL
pooler_pgb() {
    PGB_DIR="$T_CASE/pgbouncer" PGB_POOL_SIZE=$1 pgbouncer_start || { fail "cannot start PgBouncer"; return 1; }
    PGB_WORKER_URL=$(pgbouncer_url "$T_WORKER_DB_URL")
}

# the most server connections t_worker had open at once, sampled until $1 ends
max_worker_backends() {
    local pid=$1 n max=0
    while kill -0 "$pid" 2>/dev/null; do
        n=$(sql "SELECT count(*) FROM pg_stat_activity WHERE usename = 't_worker' AND datname = current_database()")
        ((n > max)) && max=$n
        sleep 0.5
    done
    echo "$max"
}

case_workers_share_one_server_connection() {
    pooler_pgb 1 || return
    psql -X -q -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" >/dev/null <<'SQL'
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('fan', 100);
INSERT INTO dagq.task (dag_id, task_id, command) SELECT 'fan', 't' || g, 'sleep 0.2' FROM generate_series(1, 30) g;
SQL
    start_scheduler sched
    local i
    for i in 1 2 3; do DAGQ_DATABASE_URL=$PGB_WORKER_URL start_worker "w$i" --slots 2; done
    wait_until 20 "SELECT count(*) FROM dagq.worker WHERE state = 'up'" 3
    local run
    run=$(sql "SELECT dagq.trigger_dag('fan')")
    assert_eq success "$(wait_run "$run" 60)" "the run through one shared server connection"
    assert_eq 3 "$(sql "SELECT count(DISTINCT worker_id) FROM dagq.task_try")" "each of the three workers ran tries"
    assert_eq 30 "$(sql "SELECT count(*) FROM dagq.task_try WHERE state = 'success'")" "each task once"
    for i in 1 2 3; do
        if grep -qE 'heartbeat failed|claim failed|cannot record' "$T_CASE/w$i.log"; then
            fail "w$i had a failed call: $(grep -E 'heartbeat failed|claim failed|cannot record' "$T_CASE/w$i.log" | head -2)"
        fi
    done
    stop_all
    pgbouncer_stop
}

# The issue's test: 200 worker processes of 1 slot through a pool of 20
# server connections run 2,000 tasks, each once.
case_200_workers_through_a_pool_of_20_run_2000_tasks_each_once() {
    pooler_pgb 20 || return
    psql -X -q -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" >/dev/null <<'SQL'
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('wide', 100000);
INSERT INTO dagq.task (dag_id, task_id, command) SELECT 'wide', 't' || g, 'true' FROM generate_series(1, 2000) g;
SQL
    start_scheduler sched --batch 500
    local i
    for i in $(seq 200); do
        DAGQ_DATABASE_URL=$PGB_WORKER_URL start "w$i" dagq-worker --name "w$i" --slots 1 --heartbeat-interval 5
    done
    wait_until 120 "SELECT count(*) FROM dagq.worker WHERE state = 'up'" 200
    local run sampler
    run=$(sql "SELECT dagq.trigger_dag('wide')")
    (wait_run "$run" 300 >"$T_CASE/run.state") &
    sampler=$!
    local max
    max=$(max_worker_backends "$sampler")
    assert_eq success "$(cat "$T_CASE/run.state")" "the run"
    assert_le "$max" 20 "the workers' server connections ($max at most)"
    assert_eq "2000|2000|1" "$(sql "SELECT count(*), count(DISTINCT ti_id), max(try_number) FROM dagq.task_try WHERE state = 'success'")" \
        "2,000 tries, each task once, none twice"
    assert_le 150 "$(sql "SELECT count(DISTINCT worker_id) FROM dagq.task_try")" "the work spread over the workers"
    stop_all
    pgbouncer_stop
}
