# The Redis dead-letter stream is capped (XADD MAXLEN ~ --dead-letter-max):
# a flood of junk cannot grow Redis without bound.
# brokers: redis

case_dead_letter_stream_is_capped() {
    psql -X -q -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" >/dev/null <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('after_junk');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('after_junk', 't', 'echo fine');
SQL
    start_scheduler sched
    start_worker w1 --slots 2 --dead-letter-max 20
    local stream="${DAGQ_REDIS_PREFIX}queue:default" dl="${DAGQ_REDIS_PREFIX}dead-letter" i
    # 400 undecodable entries in one pipeline
    for i in $(seq 400); do printf 'XADD %s * m junk-%d\n' "$stream" "$i"; done | redis_cli >/dev/null
    local run
    run=$(sql "SELECT dagq.trigger_dag('after_junk')")
    assert_eq success "$(wait_run "$run" 60)" "a run after the junk"
    local n=0 t
    for t in $(seq 100); do
        # every entry dead-lettered: the group has none pending, the stream none left
        [ "$(redis_cli XLEN "$stream")" = 0 ] && break
        sleep 0.2
    done
    assert_eq 0 "$(redis_cli XLEN "$stream")" "the junk was taken off the queue"
    n=$(redis_cli XLEN "$dl")
    # ~ trims whole nodes of the stream (stream-node-max-entries, 100 by
    # default): at least the cap is kept, at most a node more
    assert_le 20 "$n" "the newest dead letters are kept"
    assert_le "$n" 120 "the dead-letter stream is capped ($n of 400 left)"
    assert_contains "$(redis_cli XREVRANGE "$dl" + - COUNT 1)" "junk-400" "the newest is kept"
    assert_contains "$(cat "$T_CASE/w1.log")" "dead-letter" "the worker logged it"
}
