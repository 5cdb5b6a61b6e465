# bench/measure.sh — sourced by bench/bench.sh: starting a stack, running a
# workload and measuring it, the cron burst, the prune of the history.

STACK=0
wanted() { case " $BENCH_WORKLOADS " in *" $1 "*) return 0 ;; esac; return 1; }

# stack_start BROKER direct|pgbouncer NWORKERS SLOTS
stack_start() {
    local b=$1 via=$2 nw=$3 slots=$4 url i wurl=$DB_URL
    STACK=$((STACK + 1))
    if [ "$b" = redis ]; then url=$REDIS_URL; else url=$KAFKA_URL; fi
    [ "$via" = pgbouncer ] && wurl=$(pgbouncer_url "$DB_URL")
    local common=(--broker-url "$url" --redis-prefix "bench$STACK:" --kafka-topic-prefix "bench$STACK.")
    mkdir -p "$T_ROOT/logs"
    "$T_BIN/dagq-scheduler" --database-url "$DB_URL" "${common[@]}" --name sched \
        >>"$T_ROOT/logs/$b-$STACK-sched.log" 2>&1 &
    SCHED_PID=$!
    WPIDS=()
    for i in $(seq "$nw"); do
        "$T_BIN/dagq-worker" --database-url "$wurl" "${common[@]}" --name "w$STACK-$i" --slots "$slots" \
            >>"$T_ROOT/logs/$b-$STACK-w$i.log" 2>&1 &
        WPIDS+=($!)
    done
    local deadline=$((SECONDS + 120))
    while (($(obs -c "SELECT count(*) FROM dagq.worker WHERE state = 'up' AND worker_id LIKE 'w$STACK-%'") < nw)); do
        ((SECONDS < deadline)) || { echo "bench: the workers of stack $STACK did not all register" >&2; return 1; }
        sleep 0.5
    done
    # warm-up: one run through the whole path (Kafka: consumer groups joined)
    trigger_wait "dag_id = 'warm'" "SELECT dagq.trigger_dag('warm')" 1 120 ||
        { echo "bench: warm-up run on $b did not finish ($TW_MSG); logs in $T_ROOT/logs" >&2; return 1; }
}

stack_stop() {
    local p i
    for p in $SCHED_PID "${WPIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in $SCHED_PID "${WPIDS[@]}"; do
        for i in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    SCHED_PID=""
    WPIDS=()
}

# trigger_wait WHERE TRIGGER_SQL NRUNS TIMEOUT: triggers, waits until NRUNS
# runs matching WHERE created since have ended; sets FIRST_RUN (runs are
# run_id >= it)
trigger_wait() {
    local where=$1 trig=$2 nruns=$3 timeout=$4 got before
    before=$(obs -c "SELECT coalesce(max(run_id), 0) FROM dagq.dag_run") || return 1
    FIRST_RUN=$((before + 1))
    obs -c "$trig" >/dev/null || return 1
    local deadline=$((SECONDS + timeout))
    TW_POLLS=1 # the bench's own read-only transactions: this one and the polls
    while ((SECONDS < deadline)); do
        TW_POLLS=$((TW_POLLS + 1))
        # what dagq's backends are waiting for right now, for the profile
        IFS='|' read -r got waits <<<"$(obs -c "SELECT count(*), (SELECT string_agg(w, ' ') FROM (
                SELECT COALESCE(wait_event_type || ':' || wait_event, 'CPU') AS w FROM pg_stat_activity
                 WHERE usename = 'dagq' AND state = 'active' AND backend_type = 'client backend') x)
              FROM dagq.dag_run WHERE run_id > $before AND $where AND state IN ('success', 'failed')")"
        [ -n "$waits" ] && tr ' ' '\n' <<<"$waits" >>"$T_ROOT/waits"
        ((got >= nruns)) && return 0
        sleep 0.25 # each poll is a psql process and a backend: keep the bench's own load low
    done
    TW_MSG="timeout: $got of $nruns runs ended"
    return 1
}

own_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
reaped_ticks() { awk '{ print $16 + $17 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
# the PostgreSQL server: postmaster and its live children, plus what it reaped
pg_ticks() {
    local pm p t v
    pm=$(head -1 "$PG_DIR/data/postmaster.pid")
    t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
    for p in $(pgrep -P "$pm"); do
        v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) && t=$((t + v))
    done
    echo "$t"
}
broker_ticks() {
    local p
    if [ "$1" = redis ]; then p=$(redis_pid); else p=$(kafka__pid 2>/dev/null); fi
    [ -n "$p" ] && awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0
}
workers_ticks() { # own|reaped
    local p t=0
    for p in "${WPIDS[@]}"; do t=$((t + $("$1_ticks" "$p"))); done
    echo "$t"
}
# commits and WAL syncs so far (after the backends flushed their counters:
# at most a second after they go idle)
pg_counters() {
    sleep 1.2
    obs -F ' ' -c "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
                          (SELECT wal_sync FROM pg_stat_wal)"
}

# measure BROKER WORKLOAD WHERE TRIGGER_SQL NRUNS [CRON_MINUTE]
measure() {
    local b=$1 w=$2 where=$3 trig=$4 nruns=$5 minute=${6:-0} p
    t_log "$PHASE/$b/$w: $nruns run(s)"
    for p in $SCHED_PID "${WPIDS[@]}"; do reset_hwm "$p"; done
    obs -c "SELECT pg_stat_statements_reset()" >/dev/null
    local c0 c1 y0 y1 s0 s1 w0 w1 f0 f1 pg0 pg1 k0 k1
    read -r c0 y0 <<<"$(pg_counters)"
    : >"$T_ROOT/waits"
    s0=$(own_ticks "$SCHED_PID") w0=$(workers_ticks own) f0=$(workers_ticks reaped)
    pg0=$(pg_ticks) k0=$(broker_ticks "$b")
    if ! trigger_wait "$where" "$trig" "$nruns" "$BENCH_TIMEOUT"; then
        echo "$PHASE/$b/$w: $TW_MSG" | tee -a "$NOTES" >&2
        printf '%s\t%s\t%s\tTIMEOUT\n' "$b" "$w" "$PHASE" >>"$RES"
        return 1
    fi
    s1=$(own_ticks "$SCHED_PID") w1=$(workers_ticks own) f1=$(workers_ticks reaped)
    pg1=$(pg_ticks) k1=$(broker_ticks "$b")
    local polls=$TW_POLLS
    read -r c1 y1 <<<"$(pg_counters)"
    local shwm whwm=0 h
    shwm=$(hwm_kb "$SCHED_PID")
    for p in "${WPIDS[@]}"; do
        h=$(hwm_kb "$p")
        ((h > whwm)) && whwm=$h
    done
    local stmts
    stmts=$(obs -F ' ' -c "SELECT coalesce(sum(calls), 0), coalesce(sum(calls) FILTER (WHERE toplevel), 0)
          FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND userid = (SELECT oid FROM pg_roles WHERE rolname = 'dagq')")
    if [ -n "$BENCH_PROFILE_DIR" ]; then
        mkdir -p "$BENCH_PROFILE_DIR"
        # dagq's active backends, sampled with every poll (4 a second): what they waited for
        { echo "wait events of active dagq backends, $TW_POLLS samples:"
          sort "$T_ROOT/waits" | uniq -c | sort -rn | head -8
          echo; } >"$BENCH_PROFILE_DIR/$PHASE-$b-$w.txt"
        obs -F ' | ' -P pager=off >>"$BENCH_PROFILE_DIR/$PHASE-$b-$w.txt" <<'SQL'
SELECT round(total_exec_time::numeric, 1) AS ms, calls, round((total_exec_time / calls)::numeric, 4) AS ms_per_call,
       shared_blks_hit + shared_blks_read AS blks, wal_records, toplevel, left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND userid = (SELECT oid FROM pg_roles WHERE rolname = 'dagq')
 ORDER BY total_exec_time DESC LIMIT 25
SQL
    fi
    local figs
    figs=$(obs -F ' ' <<SQL
WITH r AS (SELECT * FROM dagq.dag_run WHERE run_id >= $FIRST_RUN AND $where),
ti AS (SELECT ti.* FROM dagq.task_instance ti JOIN r USING (run_id)),
up AS (SELECT d.ti_id, d.started_at, d.queued_at, max(u.ended_at) AS ready_at
         FROM ti d
         JOIN dagq.task_instance_dependency e ON e.ti_id = d.ti_id
         JOIN dagq.task_instance u ON u.ti_id = e.upstream_ti_id
        GROUP BY d.ti_id, d.started_at, d.queued_at),
lat AS (SELECT extract(epoch FROM started_at - ready_at) * 1000 AS ms,
               extract(epoch FROM queued_at - ready_at) * 1000 AS rq FROM up),
p AS (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY ms) AS q,
             percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY rq) AS qr FROM lat),
c AS (SELECT extract(epoch FROM r.created_at - to_timestamp($minute)) * 1000 AS created,
             extract(epoch FROM (SELECT min(started_at) FROM ti WHERE ti.run_id = r.run_id)
                                - to_timestamp($minute)) * 1000 AS started
        FROM r WHERE $minute > 0),
cq AS (SELECT max(created) AS cmax, percentile_cont(0.5) WITHIN GROUP (ORDER BY created) AS c50,
              max(started) AS smax, percentile_cont(0.5) WITHIN GROUP (ORDER BY started) AS s50 FROM c)
SELECT (SELECT count(*) FROM ti),
       (SELECT count(*) FROM ti WHERE state = 'success'),
       (SELECT count(*) FROM r WHERE state = 'success'),
       (SELECT extract(epoch FROM max(ended_at) - min(created_at)) FROM r),
       (SELECT extract(epoch FROM (SELECT min(started_at) FROM ti) - min(created_at)) * 1000 FROM r),
       coalesce((SELECT q[1] FROM p), -1), coalesce((SELECT q[2] FROM p), -1),
       coalesce((SELECT qr[1] FROM p), -1), coalesce((SELECT qr[2] FROM p), -1),
       coalesce((SELECT cmax FROM cq), -1), coalesce((SELECT c50 FROM cq), -1),
       coalesce((SELECT smax FROM cq), -1), coalesce((SELECT s50 FROM cq), -1)
SQL
)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$b" "$w" "$PHASE" \
        "$(echo "$figs" | tr ' ' '\t')" \
        "$((s1 - s0))" "$((w1 - w0))" "$((f1 - f0))" "$((pg1 - pg0))" "$((k1 - k0))" \
        "$((c1 - c0 - polls))" "$((y1 - y0))" "$(echo "$stmts" | tr ' ' '\t')" "$shwm" "$whwm" \
        "${#WPIDS[@]}" >>"$RES"
    # shellcheck disable=SC2086
    set -- $figs
    if [ "$1" != "$2" ] || [ "$3" != "$nruns" ]; then
        echo "$PHASE/$b/$w: only $2 of $1 task instances and $3 of $nruns runs succeeded" | tee -a "$NOTES" >&2
    fi
}

# cron_burst BROKER: the cron DAGs' next run all due at the next minute at
# least 20 s away (one interval: they are paused again once it ran); the
# measure starts 2 s before that minute
cron_burst() {
    local b=$1 now m
    now=$(obs -c "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint")
    m=$(((now + 20 + 59) / 60 * 60))
    obs -c "UPDATE dagq.dag SET start_date = to_timestamp($((m - 60))), next_dagrun_start = NULL,
                next_dagrun_end = NULL, is_paused = false WHERE dag_id LIKE 'cron\_%'" >/dev/null
    now=$(obs -c "SELECT extract(epoch FROM clock_timestamp())")
    sleep "$(awk -v m="$m" -v n="$now" 'BEGIN { d = m - n - 3.5; print (d > 0 ? d : 0) }')"
    measure "$b" cron "dag_id LIKE 'cron\_%' AND logical_date = to_timestamp($((m - 60)))" \
        "SELECT 1" "$BENCH_CRON" "$m"
    obs -c "UPDATE dagq.dag SET is_paused = true WHERE dag_id LIKE 'cron\_%'" >/dev/null
}

# run_stack BROKER direct|pgbouncer NWORKERS SLOTS WORKLOAD...
run_stack() {
    local b=$1 via=$2 nw=$3 slots=$4 w any=0
    shift 4
    for w in "$@"; do wanted "$w" && any=1; done
    [ $any = 1 ] || return 0
    stack_start "$b" "$via" "$nw" "$slots" || { echo "$PHASE/$b: the stack did not start" >>"$NOTES"; stack_stop; return 1; }
    for w in "$@"; do
        wanted "$w" || continue
        case $w in
        wide | pooled) measure "$b" "$w" "dag_id = 'wide'" "SELECT dagq.trigger_dag('wide')" 1 ;;
        chain) measure "$b" "$w" "dag_id = 'chain'" "SELECT dagq.trigger_dag('chain')" 1 ;;
        many) measure "$b" "$w" "dag_id LIKE 'many\_%'" \
            "SELECT count(dagq.trigger_dag(dag_id)) FROM dagq.dag WHERE dag_id LIKE 'many\_%'" "$BENCH_MANY" ;;
        cron) cron_burst "$b" ;;
        esac
    done
    stack_stop
}

# prune_oldest_month: dagq.prune_history in batches of 1,000 runs (what
# `dagq db prune` does) over the oldest 30 days of the history, each batch
# timed; sets PRUNE_LINE
prune_oldest_month() {
    local age out ms runs tis n=0 total_runs=0 total_tis=0 t0=$EPOCHREALTIME times=()
    age=$(obs -c "SELECT ceil(extract(epoch FROM clock_timestamp() - min(ended_at)) / 86400) - 30
                    FROM dagq.dag_run WHERE dag_id LIKE 'hist\_%'")
    t_log "prune: the history older than $age days, in batches of 1,000 runs"
    while :; do
        out=$(psql -X -q -At -v ON_ERROR_STOP=1 "$OBS_URL" -c '\timing on' \
            -c "SELECT runs, task_instances FROM dagq.prune_history('$age days', 1000)" 2>&1) || break
        ms=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out")
        IFS='|' read -r runs tis <<<"$(head -1 <<<"$out")"
        [ "${runs:-0}" -gt 0 ] || break
        n=$((n + 1)) total_runs=$((total_runs + runs)) total_tis=$((total_tis + tis))
        times+=("$ms")
    done
    local secs p50 mx
    secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    read -r p50 mx <<<"$(printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.0f %.0f", v[int((NR + 1) / 2)], v[NR] }')"
    PRUNE_LINE="prune (history, $BENCH_DURABILITY durability): the oldest 30 days, $total_runs runs and $total_tis task instances (with their tries, logs, edges and events), in $n batches of 1,000 runs: $secs s in all, $(awk -v n="$total_tis" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') task instances/s, a batch took $p50 ms (median), $mx ms at most"
    t_log "$PRUNE_LINE"
}
