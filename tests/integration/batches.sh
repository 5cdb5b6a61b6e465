# Batches on the worker's hot path: a worker claims every message it took
# in one dagq.claim_tries and writes every result ready at once in one
# dagq.finish_tries. The fence holds for each element: a try named twice,
# or one the metastore has moved past, starts at most once, and a result
# the worker held when its batch was cut off is never lost.

sqlf() { psql -X -q -At -v ON_ERROR_STOP=1 -v T="$T_CASE" "$DAGQ_DATABASE_URL" -f -; }

# metric PORT 'name{labels}': the sample's value, 0 when absent
metric() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }'
}

# save_queue GROUP: copies every message on the group's queue aside, to be
# delivered again later by push_saved
save_queue() {
    local group=$1
    if [ "$T_BROKER" = redis ]; then
        redis_cli EVAL "redis.call('DEL', KEYS[2])
            for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
                redis.call('RPUSH', KEYS[2], e[2][2])
            end
            return redis.call('LLEN', KEYS[2])" 2 "${DAGQ_REDIS_PREFIX}queue:$group" "${DAGQ_REDIS_PREFIX}saved" >/dev/null
    else
        local b=${KAFKA_URL#kafka://} t=${DAGQ_KAFKA_TOPIC_PREFIX}$group p o n=0
        mkdir -p "$T_CASE/saved"
        for p in $(seq 0 5); do
            o=0
            while kcat -b "$b" -C -t "$t" -p "$p" -o "$o" -c 1 -e -f '%s' >"$T_CASE/saved/$p.$o" 2>/dev/null &&
                [ -s "$T_CASE/saved/$p.$o" ]; do
                o=$((o + 1)) n=$((n + 1))
            done
            rm -f "$T_CASE/saved/$p.$o"
        done
    fi
}

# push_saved GROUP TIMES [each]: every saved message onto the group's queue
# again, TIMES times (the whole list TIMES times; with "each", on Redis,
# each message TIMES times in a row)
push_saved() {
    local group=$1 times=$2 each=${3:-} i f
    if [ "$T_BROKER" = redis ]; then
        redis_cli EVAL "local ms = redis.call('LRANGE', KEYS[2], 0, -1)
            local n = tonumber(ARGV[1])
            if ARGV[2] == 'each' then
                for _, m in ipairs(ms) do
                    for i = 1, n do redis.call('XADD', KEYS[1], '*', 'm', m) end
                end
            else
                for i = 1, n do
                    for _, m in ipairs(ms) do redis.call('XADD', KEYS[1], '*', 'm', m) end
                end
            end" 2 "${DAGQ_REDIS_PREFIX}queue:$group" "${DAGQ_REDIS_PREFIX}saved" "$times" "$each" >/dev/null
    else
        for i in $(seq "$times"); do
            for f in "$T_CASE"/saved/*; do
                kcat -b "${KAFKA_URL#kafka://}" -P -t "${DAGQ_KAFKA_TOPIC_PREFIX}$group" "$f"
            done
        done
    fi
}

saved_count() {
    if [ "$T_BROKER" = redis ]; then
        redis_cli LLEN "${DAGQ_REDIS_PREFIX}saved"
    else
        find "$T_CASE/saved" -type f | wc -l
    fi
}

# Every message of a 40-task run is delivered three times before any worker
# runs (on Redis three times in a row, so a batch holds the same try two
# and three times), and the two workers race for each try; after the run, the run is cleared and the
# first run's messages (now stale: their tries are over) are delivered
# twice more beside the new tries' messages. Each try must start exactly
# once: 40 first tries, 40 second ones, no other.
case_batched_claims_with_duplicate_and_stale_messages_start_each_try_once() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('dups', 1000);
INSERT INTO dagq.task (dag_id, task_id, command)
SELECT 'dups', 't' || i, 'echo $DAGQ_TASK_ID:$DAGQ_TRY_NUMBER >> ' || :'T' || '/ran; sleep 0.3'
  FROM generate_series(1, 40) i;
SQL
    start_scheduler sched
    local run p1 p2
    run=$(sql "SELECT dagq.trigger_dag('dups')")
    wait_until 30 "SELECT count(*) FROM dagq.task_instance WHERE run_id = $run AND state = 'queued'" 40
    sleep 0.5 # the pass that queued them pushes after its commit
    save_queue default
    assert_eq 40 "$(saved_count)" "the run's messages saved"
    if [ "$T_BROKER" = redis ]; then
        # the copies side by side, so one batch names a try two or three
        # times (a Kafka topic keeps what it has: there the copies come
        # after the originals, in later batches and in the other worker's)
        redis_cli XTRIM "${DAGQ_REDIS_PREFIX}queue:default" MAXLEN 0 >/dev/null
        push_saved default 3 each
    else
        push_saved default 2
    fi
    p1=$(t_free_port)
    p2=$(t_free_port)
    start_worker w1 --slots 8 --http-port "$p1"
    start_worker w2 --slots 8 --http-port "$p2"
    assert_eq success "$(wait_run "$run" 90)" "the run"
    sleep 1 # a try started twice would show now
    assert_eq 40 "$(wc -l <"$T_CASE/ran")" "starts of the first tries"
    assert_eq 40 "$(sort -u "$T_CASE/ran" | grep -c ':1$')" "each task's first try once"
    local claims items
    claims=$(($(metric "$p1" 'dagq_worker_batches_total{op="claim"}') + $(metric "$p2" 'dagq_worker_batches_total{op="claim"}')))
    items=$(($(metric "$p1" 'dagq_worker_batch_items_total{op="claim"}') + $(metric "$p2" 'dagq_worker_batch_items_total{op="claim"}')))
    echo "  claims: $claims statements for $items messages"
    assert_eq t "$(sql "SELECT $items >= 120")" "every message was claimed in some batch ($items: with any the scheduler pushed again)"
    assert_eq t "$(sql "SELECT $claims < $items")" "some claims named several messages"

    # stale and duplicate beside the live ones
    assert_eq 40 "$(sql "SELECT dagq.clear($run)")" "the run cleared"
    push_saved default 2
    assert_eq success "$(wait_run "$run" 90)" "the run again"
    sleep 1
    assert_eq 80 "$(wc -l <"$T_CASE/ran")" "starts of all tries"
    assert_eq 40 "$(grep -c ':2$' "$T_CASE/ran")" "second tries"
    assert_eq 80 "$(sort -u "$T_CASE/ran" | wc -l)" "no try started twice"
    assert_eq "80|80" "$(sql "SELECT count(*) || '|' || count(*) FILTER (WHERE y.state = 'success')
        FROM dagq.task_try y JOIN dagq.task_instance t USING (ti_id) WHERE t.run_id = $run")" "tries recorded, all successful"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_instance WHERE run_id = $run AND try_number <> 2")" \
        "every task instance on its second try"
}

# A session holds the rows of eight running tries while they end, so the
# worker's dagq.finish_tries for them waits; $1 says what happens to it
# then. Sets BF_RUN to the run and HOLD_PID to the holder; the tries'
# commands print "out-TASK".
batch_finish_held() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('held', 100);
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay)
SELECT 'held', 't' || i, 'echo out-$DAGQ_TASK_ID; sleep 1.5; echo $DAGQ_TASK_ID:$DAGQ_TRY_NUMBER >> ' || :'T' || '/ran',
       2, '0' FROM generate_series(1, 8) i;
SQL
    local run
    run=$(sql "SELECT dagq.trigger_dag('held')")
    BF_RUN=$run
    wait_until 30 "SELECT count(*) FROM dagq.task_instance WHERE run_id = $run AND state = 'running'" 8
    # hold them until the worker's finish waits on them (2 s lock_timeout:
    # it retries until the case lets the holder go)
    PGAPPNAME=holder psql -X -q -At -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" \
        -c "BEGIN; SELECT count(*) FROM (SELECT 1 FROM dagq.task_instance WHERE run_id = $run FOR UPDATE) x;
            SELECT pg_sleep(60); COMMIT;" >"$T_CASE/holder.out" 2>&1 &
    HOLD_PID=$!
    # the first finish may hold only the results ready then; one that
    # began after the eighth task ended holds what the worker collected
    # (its loop also waits on the held rows to write running tries' output)
    local i t8
    for i in $(seq 150); do [ "$(cat "$T_CASE/ran" 2>/dev/null | wc -l)" = 8 ] && break; sleep 0.2; done
    assert_eq 8 "$(cat "$T_CASE/ran" 2>/dev/null | wc -l)" "the eight tasks ended"
    t8=$(sql "SELECT clock_timestamp()")
    wait_until 20 "SELECT count(*) FROM pg_stat_activity
        WHERE application_name = 'dagq-worker' AND wait_event_type = 'Lock' AND query LIKE '%finish_tries%'
          AND query_start > '$t8'" 1
    wait_until 10 "SELECT count(*) FROM dagq.task_instance WHERE run_id = $run AND state = 'running'" 8
}

# The worker's connection is cut while its batch finish waits: the batch
# rolls back, the worker reconnects and writes every result it held, each
# try once, with its output. Nothing runs again.
case_batch_finish_cut_by_a_lost_connection_loses_no_result() {
    expect_log_errors 'terminating connection|server closed the connection|connection .*lost|database unreachable' w1
    start_scheduler sched
    start_worker w1 --slots 8
    local run
    batch_finish_held
    run=$BF_RUN
    assert_eq 1 "$(sql "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = 'dagq-worker' AND query LIKE '%finish_tries%') x")" "the finish's backend terminated"
    kill "$HOLD_PID" 2>/dev/null
    sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'holder'" >/dev/null
    wait "$HOLD_PID" 2>/dev/null
    assert_eq success "$(wait_run "$run" 60)" "the run"
    assert_eq 8 "$(wc -l <"$T_CASE/ran")" "each task ran once"
    assert_eq "8|8" "$(sql "SELECT count(*) || '|' || count(*) FILTER (WHERE y.state = 'success')
        FROM dagq.task_try y JOIN dagq.task_instance t USING (ti_id) WHERE t.run_id = $run")" "one try each, successful"
    assert_eq 8 "$(sql "SELECT count(*) FROM dagq.task_log l JOIN dagq.task_instance t USING (ti_id)
        WHERE t.run_id = $run AND l.output LIKE 'out-' || t.task_id || '%'")" "each try's output kept"
}

# The worker is killed (kill -9) while its batch finish waits, holding the
# results: each try was written whole by the statement in flight (its
# backend finishes it), or is taken away as a zombie and retried by another
# worker; none is left running, none is recorded without its output, none
# succeeded twice, and each lost one ran once more.
case_batch_finish_interrupted_by_kill9_loses_no_result() {
    start_scheduler sched --heartbeat-timeout 4
    start_worker w1 --slots 8
    local run
    batch_finish_held
    run=$BF_RUN
    kill9 w1
    kill "$HOLD_PID" 2>/dev/null
    sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'holder'" >/dev/null
    wait "$HOLD_PID" 2>/dev/null
    start_worker w2 --slots 8
    assert_eq success "$(wait_run "$run" 60)" "the run"
    assert_eq 8 "$(sql "SELECT count(*) FROM dagq.task_instance WHERE run_id = $run AND state = 'success'")" \
        "every task succeeded"
    assert_eq 0 "$(sql "SELECT count(*) FROM (SELECT 1 FROM dagq.task_try y JOIN dagq.task_instance t USING (ti_id)
        WHERE t.run_id = $run AND y.state = 'success' GROUP BY t.ti_id HAVING count(*) > 1) d")" "no task succeeded twice"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_try y JOIN dagq.task_instance t USING (ti_id)
        WHERE t.run_id = $run AND y.state NOT IN ('success', 'failed', 'up_for_retry')")" "no try left unfinished"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_try y JOIN dagq.task_instance t USING (ti_id)
        WHERE t.run_id = $run AND y.state = 'success' AND NOT EXISTS (SELECT 1 FROM dagq.task_log l
          WHERE l.ti_id = y.ti_id AND l.try_number = y.try_number AND l.output LIKE 'out-' || t.task_id || '%')")" \
        "every successful try has its output"
    # the killed worker's eight either were written (its backend finished
    # the statement) or came back as zombies and ran once more on w2
    local killed_ok
    killed_ok=$(sql "SELECT count(*) FROM dagq.task_try y JOIN dagq.task_instance t USING (ti_id)
        WHERE t.run_id = $run AND y.try_number = 1 AND y.state = 'success'")
    echo "  of the killed worker's 8 results, $killed_ok were written by its backend"
    assert_eq $((8 + 8 - killed_ok)) "$(wc -l <"$T_CASE/ran")" "starts: the eight, and one more for each one lost with the worker"
}

# The functions themselves, as the worker's login calls them: a try named
# twice in one claim is claimed once, a stale one (a try number the
# metastore moved past) and one already running not at all; a finish names
# a result twice and one for a try of another worker: the first is
# written once, the other discarded (state NULL), and nothing is written
# again by a second finish.
case_claim_tries_and_finish_tries_fence_each_element() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('fence');
INSERT INTO dagq.task (dag_id, task_id, command) SELECT 'fence', 't' || i, 'true' FROM generate_series(1, 3) i;
SQL
    start_scheduler sched
    local run a b c inc=11111111-1111-1111-1111-111111111111 other=22222222-2222-2222-2222-222222222222
    run=$(sql "SELECT dagq.trigger_dag('fence')")
    wait_until 30 "SELECT count(*) FROM dagq.task_instance WHERE run_id = $run AND state = 'queued'" 3
    read -r a b c <<<"$(sql "SELECT string_agg(ti_id::text, ' ' ORDER BY task_id) FROM dagq.task_instance WHERE run_id = $run")"
    wsql() { psql -X -q -At -v ON_ERROR_STOP=1 "$T_WORKER_DB_URL" -c "$1" 2>&1; }
    wsql "SELECT count(*) FROM dagq.worker_heartbeat('wx', '$inc', 'h', 1, '{default}', 8, 0, 'up');
          SELECT count(*) FROM dagq.worker_heartbeat('wy', '$other', 'h', 2, '{default}', 8, 0, 'up')" >/dev/null
    assert_contains "$(wsql "SELECT * FROM dagq.claim_tries('{$a,$b}', '{1}', 'wx', '$inc', 'h')")" \
        "2 task instances but 1 try numbers" "arrays of different lengths are refused, naming both"
    assert_eq "$a:1,$b:1" "$(wsql "SELECT string_agg(ti_id || ':' || try_number, ',' ORDER BY ti_id)
        FROM dagq.claim_tries('{$a,$a,$b,$c}', '{1,1,1,0}', 'wx', '$inc', 'h')")" \
        "claimed: the try named twice once, the other; not the stale one"
    assert_eq "" "$(wsql "SELECT string_agg(ti_id::text, ',') FROM dagq.claim_tries('{$a,$b}', '{1,1}', 'wy', '$other', 'h')")" \
        "another worker's claim of running tries gets nothing"
    assert_eq "$c:1" "$(wsql "SELECT string_agg(ti_id || ':' || try_number, ',') FROM dagq.claim_tries('{$c}', '{1}', 'wy', '$other', 'h')")" \
        "the other worker claims the third"
    # wx finishes a (twice) and c (wy's): a is written, c discarded
    assert_eq "$a|1|success,$a|1|success,$c|1|" "$(wsql "SELECT string_agg(ti_id || '|' || try_number || '|' || COALESCE(state, ''), ',')
        FROM dagq.finish_tries('{$a,$a,$c}', '{1,1,1}', 'wx', '$inc', '{t,t,t}', '{0,0,0}', '{0,0,0}',
                               '{NULL,NULL,NULL}', '{first,second,theirs}', '{0,0,0}')")" \
        "one row per result in their order: a success, c not wx's"
    assert_eq "running|1" "$(sql "SELECT state || '|' || try_number FROM dagq.task_instance WHERE ti_id = $c")" \
        "wy's try is untouched"
    assert_eq "$a|1|" "$(wsql "SELECT string_agg(ti_id || '|' || try_number || '|' || COALESCE(state, ''), ',')
        FROM dagq.finish_tries('{$a}', '{1}', 'wx', '$inc', '{f}', '{1}', '{0}', '{NULL}', '{again}', '{0}')")" \
        "a second finish of a finished try is discarded"
    assert_eq "success|1" "$(sql "SELECT y.state || '|' || count(*) OVER () FROM dagq.task_try y WHERE y.ti_id = $a")" \
        "a's one try is a success"
    assert_eq "first" "$(sql "SELECT string_agg(output, ',') FROM dagq.task_log WHERE ti_id = $a")" \
        "with the output of the first result written"
}
