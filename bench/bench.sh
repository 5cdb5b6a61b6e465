#!/usr/bin/env bash
# bench/bench.sh — dagq benchmarks (run by `make bench` via bench/run.sh).
#
# Starts a private PostgreSQL (pg_stat_statements preloaded), Redis and, when
# it can be fetched and started, Kafka (tests/lib.sh, tests/kafka.sh); runs
# the release binaries in bin/ with 1 scheduler and $BENCH_WORKERS workers.
# Workloads (no-op tasks, command `true`):
#   wide     one run of $BENCH_WIDE independent tasks
#   chain    one run of $BENCH_CHAIN tasks in a line
#   many     $BENCH_MANY DAGs of 10 tasks (1 -> 8 -> 1) triggered together
#   history  wide again after $BENCH_HIST_TI finished task instances in
#            $BENCH_HIST_RUNS finished runs were inserted (set-based SQL)
# Every figure comes from the database's own timestamps, /proc and
# pg_stat_statements; the fork limit is measured in the same run by
# bench/forklimit.c. Small versions: BENCH_WIDE=100 BENCH_CHAIN=20 ...
set -u
B_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$B_DIR/.." && pwd)
export T_BIN="${T_BIN:-$REPO/bin}"
# shellcheck source=../tests/lib.sh
. "$REPO/tests/lib.sh"

: "${BENCH_WIDE:=2000}" "${BENCH_CHAIN:=200}" "${BENCH_MANY:=200}"
: "${BENCH_HIST_TI:=1000000}" "${BENCH_HIST_RUNS:=100000}"
: "${BENCH_WORKERS:=2}" "${BENCH_SLOTS:=$(($(nproc) * 4))}"
: "${BENCH_BROKERS:=redis kafka}" "${BENCH_TIMEOUT:=600}" "${BENCH_FORK_SECONDS:=5}"
: "${BENCH_OUT:=}" # also write the table (markdown) to this file
: "${BENCH_PROFILE_DIR:=}" # also write each workload's top statements (pg_stat_statements) here

CLK_TCK=$(getconf CLK_TCK)
RES="$T_ROOT/results.tsv"
NOTES="$T_ROOT/notes.txt"
: >"$RES"
: >"$NOTES"
declare -A PID=()

b_cleanup() {
    local p
    for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null; done
    t_cleanup
}
trap b_cleanup EXIT
trap 'exit 130' INT TERM

for p in dagq dagq-scheduler dagq-worker; do
    [ -x "$T_BIN/$p" ] || { echo "bench: $T_BIN/$p missing (make all)" >&2; exit 1; }
done

# --- the machine's limit --------------------------------------------------
cc -O2 -o "$T_ROOT/forklimit" "$B_DIR/forklimit.c" || exit 1
t_log "fork limit: $BENCH_FORK_SECONDS s of /bin/sh -c true on $(nproc) and $(($(nproc) * 2)) processes"
F1=$("$T_ROOT/forklimit" "$BENCH_FORK_SECONDS" "$(nproc)")
F2=$("$T_ROOT/forklimit" "$BENCH_FORK_SECONDS" "$(($(nproc) * 2))")
FORK_LIMIT=$(awk -v a="$F1" -v b="$F2" 'BEGIN { printf "%.0f", (a > b ? a : b) }')
t_log "fork limit: $F1/s ($(nproc) procs), $F2/s ($(($(nproc) * 2)) procs) -> $FORK_LIMIT/s"

# --- servers ----------------------------------------------------------------
pg_start || exit 1
psql -X -q "$PG_ADMIN_URL" -c "CREATE ROLE bench LOGIN SUPERUSER" >/dev/null || exit 1
DB_URL=$(pg_new_db bench) || exit 1
OBS_URL="postgresql://bench@127.0.0.1:$PG_PORT/bench"   # the bench's own queries: not counted
export DAGQ_DATABASE_URL=$DB_URL
"$T_BIN/dagq" db migrate >"$T_ROOT/migrate.log" 2>&1 || { cat "$T_ROOT/migrate.log"; exit 1; }
obs() { psql -X -q -At -v ON_ERROR_STOP=1 "$OBS_URL" "$@"; }
obs -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null || exit 1

BROKERS=""
for b in $BENCH_BROKERS; do
    case $b in
    redis)
        if redis_start; then BROKERS="$BROKERS redis"; else echo "redis: not available" >>"$NOTES"; fi ;;
    kafka)
        if ! type kafka_fetch >/dev/null 2>&1; then
            echo "kafka: tests/kafka.sh missing, Kafka not measured" >>"$NOTES"
        elif ! kafka_fetch >"$T_ROOT/kafka_fetch.log" 2>&1; then
            echo "kafka: kafka_fetch failed ($(tail -1 "$T_ROOT/kafka_fetch.log")), Kafka not measured" >>"$NOTES"
        elif ! kafka_start >"$T_ROOT/kafka_start.log" 2>&1; then
            echo "kafka: kafka_start failed ($(tail -1 "$T_ROOT/kafka_start.log")), Kafka not measured" >>"$NOTES"
        else
            BROKERS="$BROKERS kafka"
        fi ;;
    esac
done
[ -s "$NOTES" ] && cat "$NOTES" >&2

# --- DAGs -------------------------------------------------------------------
t_log "defining DAGs: wide $BENCH_WIDE, chain $BENCH_CHAIN, many $BENCH_MANY x 10"
obs -v wide="$BENCH_WIDE" -v chain="$BENCH_CHAIN" -v many="$BENCH_MANY" >/dev/null <<'SQL' || exit 1
BEGIN;
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('warm', 16), ('wide', 100000), ('chain', 16);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('warm', 't', 'true');
INSERT INTO dagq.task (dag_id, task_id, command)
  SELECT 'wide', 't' || g, 'true' FROM generate_series(1, :wide) g;
INSERT INTO dagq.task (dag_id, task_id, command)
  SELECT 'chain', 't' || g, 'true' FROM generate_series(1, :chain) g;
INSERT INTO dagq.task_dependency (dag_id, task_id, upstream_task_id)
  SELECT 'chain', 't' || g, 't' || (g - 1) FROM generate_series(2, :chain) g;
-- many: extract -> t1..t8 -> load, :many times
INSERT INTO dagq.dag (dag_id, max_active_tasks)
  SELECT 'many_' || d, 16 FROM generate_series(1, :many) d;
INSERT INTO dagq.task (dag_id, task_id, command)
  SELECT 'many_' || d, t, 'true' FROM generate_series(1, :many) d,
         unnest(ARRAY['extract', 't1', 't2', 't3', 't4', 't5', 't6', 't7', 't8', 'load']) t;
INSERT INTO dagq.task_dependency (dag_id, task_id, upstream_task_id)
  SELECT 'many_' || d, 't' || k, 'extract' FROM generate_series(1, :many) d, generate_series(1, 8) k
  UNION ALL
  SELECT 'many_' || d, 'load', 't' || k FROM generate_series(1, :many) d, generate_series(1, 8) k;
COMMIT;
SQL

# --- the stack ----------------------------------------------------------------
STACK=0
stack_start() { # BROKER
    local b=$1 url i
    STACK=$((STACK + 1))
    if [ "$b" = redis ]; then url=$REDIS_URL; else url=$KAFKA_URL; fi
    local common=(--database-url "$DB_URL" --broker-url "$url"
        --redis-prefix "bench$STACK:" --kafka-topic-prefix "bench$STACK.")
    mkdir -p "$T_ROOT/logs"
    "$T_BIN/dagq-scheduler" "${common[@]}" --name sched >>"$T_ROOT/logs/$b-$STACK-sched.log" 2>&1 &
    PID[sched]=$!
    for i in $(seq "$BENCH_WORKERS"); do
        "$T_BIN/dagq-worker" "${common[@]}" --name "w$STACK-$i" --slots "$BENCH_SLOTS" \
            >>"$T_ROOT/logs/$b-$STACK-w$i.log" 2>&1 &
        PID[w$i]=$!
    done
    # warm-up: one run through the whole path (Kafka: consumer groups joined)
    trigger_wait "dag_id = 'warm'" "SELECT dagq.trigger_dag('warm')" 1 120 ||
        { echo "bench: warm-up run on $b did not finish ($TW_MSG); logs in $T_ROOT/logs" >&2; return 1; }
}

stack_stop() {
    local n
    for n in "${!PID[@]}"; do kill -TERM "${PID[$n]}" 2>/dev/null; done
    for n in "${!PID[@]}"; do
        local i
        for i in $(seq 300); do kill -0 "${PID[$n]}" 2>/dev/null || break; sleep 0.1; done
        kill -9 "${PID[$n]}" 2>/dev/null
        wait "${PID[$n]}" 2>/dev/null
        unset "PID[$n]"
    done
}

# trigger_wait WHERE TRIGGER_SQL NRUNS TIMEOUT: triggers, waits until the NRUNS
# runs created by TRIGGER_SQL have ended; sets FIRST_RUN (runs are run_id >= it)
trigger_wait() {
    local where=$1 trig=$2 nruns=$3 timeout=$4 got
    local before
    before=$(obs -c "SELECT coalesce(max(run_id), 0) FROM dagq.dag_run") || return 1
    FIRST_RUN=$((before + 1))
    obs -c "$trig" >/dev/null || return 1
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        got=$(obs -c "SELECT count(*) FROM dagq.dag_run WHERE run_id > $before AND $where
                       AND state IN ('success', 'failed')")
        [ "$got" = "$nruns" ] && return 0
        sleep 0.25 # each poll is a psql process and a backend: keep the bench's own load low
    done
    TW_MSG="timeout: $got of $nruns runs ended"
    return 1
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# the PostgreSQL server: postmaster and its live children, plus what it reaped
pg_ticks() {
    local pm p t=0 v
    pm=$(head -1 "$PG_DIR/data/postmaster.pid")
    t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
    for p in $(pgrep -P "$pm"); do
        v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) && t=$((t + v))
    done
    echo "$t"
}
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

# measure BROKER WORKLOAD WHERE TRIGGER_SQL NRUNS
measure() {
    local b=$1 w=$2 where=$3 trig=$4 nruns=$5 n
    t_log "$b/$w: $nruns run(s)"
    for n in "${!PID[@]}"; do reset_hwm "${PID[$n]}"; done
    local s0 w0=0 i
    s0=$(cpu_ticks "${PID[sched]}")
    local pg0 pg1
    pg0=$(pg_ticks)
    for i in $(seq "$BENCH_WORKERS"); do w0=$((w0 + $(cpu_ticks "${PID[w$i]}"))); done
    obs -c "SELECT pg_stat_statements_reset()" >/dev/null
    if ! trigger_wait "$where" "$trig" "$nruns" "$BENCH_TIMEOUT"; then
        echo "$b/$w: $TW_MSG" | tee -a "$NOTES" >&2
        printf '%s\t%s\tTIMEOUT\n' "$b" "$w" >>"$RES"
        return 1
    fi
    local s1 w1=0 shwm whwm=0 h
    s1=$(cpu_ticks "${PID[sched]}")
    pg1=$(pg_ticks)
    for i in $(seq "$BENCH_WORKERS"); do
        w1=$((w1 + $(cpu_ticks "${PID[w$i]}")))
        h=$(hwm_kb "${PID[w$i]}")
        ((h > whwm)) && whwm=$h
    done
    shwm=$(hwm_kb "${PID[sched]}")
    local stmts
    stmts=$(obs -F ' ' -c "SELECT coalesce(sum(calls), 0), coalesce(sum(calls) FILTER (WHERE toplevel), 0)
          FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND userid = (SELECT oid FROM pg_roles WHERE rolname = 'dagq')")
    if [ -n "$BENCH_PROFILE_DIR" ]; then
        mkdir -p "$BENCH_PROFILE_DIR"
        obs -F ' | ' -P pager=off >"$BENCH_PROFILE_DIR/$b-$w.txt" <<'SQL'
SELECT round(total_exec_time::numeric, 1) AS ms, calls, round((total_exec_time / calls)::numeric, 4) AS ms_per_call,
       shared_blks_hit + shared_blks_read AS blks, toplevel, left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
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
lat AS (SELECT extract(epoch FROM d.started_at - max(u.ended_at)) * 1000 AS ms
          FROM ti d
          JOIN dagq.task_dependency e ON e.dag_id = d.dag_id AND e.task_id = d.task_id
          JOIN ti u ON u.run_id = d.run_id AND u.task_id = e.upstream_task_id
         GROUP BY d.ti_id, d.started_at),
p AS (SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms) AS q FROM lat)
SELECT (SELECT count(*) FROM ti),
       (SELECT count(*) FROM ti WHERE state = 'success'),
       (SELECT count(*) FROM r WHERE state = 'success'),
       (SELECT extract(epoch FROM max(ended_at) - min(created_at)) FROM r),
       (SELECT extract(epoch FROM (SELECT min(started_at) FROM ti) - min(created_at)) * 1000 FROM r),
       coalesce((SELECT q[1] FROM p), -1), coalesce((SELECT q[2] FROM p), -1),
       coalesce((SELECT q[3] FROM p), -1)
SQL
)
    # broker workload tasks ok_tasks ok_runs secs first_ms p50 p95 p99 sched_ticks worker_ticks
    # stmts top_stmts sched_hwm_kb worker_hwm_kb pg_ticks
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$b" "$w" "$(echo "$figs" | tr ' ' '\t')" \
        "$((s1 - s0))" "$((w1 - w0))" "$(echo "$stmts" | tr ' ' '\t')" "$shwm" "$whwm" \
        "$((pg1 - pg0))" >>"$RES"
    # shellcheck disable=SC2086
    set -- $figs
    if [ "$1" != "$2" ] || [ "$3" != "$nruns" ]; then
        echo "$b/$w: only $2 of $1 task instances and $3 of $nruns runs succeeded" | tee -a "$NOTES" >&2
    fi
}

run_workloads() { # BROKER WORKLOAD...
    local b=$1 w
    shift
    stack_start "$b" || { echo "$b: the stack did not start" >>"$NOTES"; stack_stop; return 1; }
    for w in "$@"; do
        case $w in
        wide | history) measure "$b" "$w" "dag_id = 'wide'" "SELECT dagq.trigger_dag('wide')" 1 ;;
        chain) measure "$b" "$w" "dag_id = 'chain'" "SELECT dagq.trigger_dag('chain')" 1 ;;
        many) measure "$b" "$w" "dag_id LIKE 'many\_%'" \
            "SELECT count(dagq.trigger_dag(dag_id)) FROM dagq.dag WHERE dag_id LIKE 'many\_%'" "$BENCH_MANY" ;;
        esac
    done
    stack_stop
}

for b in $BROKERS; do run_workloads "$b" wide chain many; done

# --- history ------------------------------------------------------------------
if [ -n "$BROKERS" ]; then
    t_log "history: inserting $BENCH_HIST_RUNS finished runs, $BENCH_HIST_TI finished task instances"
    t0=$SECONDS
    obs -v runs="$BENCH_HIST_RUNS" -v tis="$BENCH_HIST_TI" >/dev/null <<'SQL' || exit 1
BEGIN;
INSERT INTO dagq.dag (dag_id) SELECT 'hist_' || d FROM generate_series(1, 100) d;
INSERT INTO dagq.dag_run (dag_id, run_type, logical_date, data_interval_start, data_interval_end,
                          state, created_at, started_at, ended_at)
SELECT 'hist_' || (g % 100 + 1), 'scheduled', ts, ts, ts + interval '1 hour', 'success',
       ts, ts + interval '1 second', ts + interval '10 minutes'
  FROM generate_series(1, :runs) g,
       LATERAL (SELECT timestamptz '2015-01-01' + g * interval '1 hour' AS ts) x;
CREATE TEMP TABLE hr AS
SELECT run_id, dag_id, started_at, row_number() OVER (ORDER BY run_id) - 1 AS i
  FROM dagq.dag_run WHERE dag_id LIKE 'hist\_%';
-- :tis task instances spread evenly over the runs
INSERT INTO dagq.task_instance (run_id, dag_id, task_id, state, try_number, max_tries,
                                worker_group, worker_id, hostname, command, trigger_rule,
                                retries, retry_delay, retry_exponential_backoff,
                                max_retry_delay, queued_at, pushed_at, started_at, ended_at,
                                heartbeat_at, exit_code)
SELECT hr.run_id, hr.dag_id, 't' || (g / :runs), 'success', 1, 1, 'default', 'old', 'old', 'true',
       'all_success', 0, interval '5 minutes', false, interval '1 day',
       hr.started_at, hr.started_at, hr.started_at, hr.started_at + interval '1 second',
       hr.started_at, 0
  FROM generate_series(0, :tis - 1) g JOIN hr ON hr.i = g % :runs;
INSERT INTO dagq.task_try (ti_id, try_number, worker_id, hostname, state, started_at, ended_at, exit_code)
SELECT ti_id, 1, worker_id, hostname, 'success', started_at, ended_at, 0
  FROM dagq.task_instance WHERE worker_id = 'old';
COMMIT;
SQL
    # what autovacuum would have done long before 1,000,000 rows piled up
    obs -c "VACUUM ANALYZE dagq.dag_run" -c "VACUUM ANALYZE dagq.task_instance" \
        -c "VACUUM ANALYZE dagq.task_try" >/dev/null
    t_log "history: inserted in $((SECONDS - t0)) s: $(obs -c "SELECT (SELECT count(*) FROM dagq.dag_run) || ' runs, ' || (SELECT count(*) FROM dagq.task_instance) || ' task instances'")"
    for b in $BROKERS; do run_workloads "$b" history; done
fi

# --- the table ----------------------------------------------------------------
TABLE=$(awk -F'\t' -v lim="$FORK_LIMIT" -v tck="$CLK_TCK" '
function ms(x) { return x < 0 ? "-" : sprintf("%.1f", x) }
BEGIN {
    print "| broker | workload | tasks | tasks/s | % of fork limit | p50 ms | p95 ms | p99 ms | trigger->1st start ms | sched CPU s/1k | worker CPU s/1k | PG CPU s/1k | PG stmts/task (top-level) | sched RSS MB | worker RSS MB |"
    print "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
}
$3 == "TIMEOUT" { printf "| %s | %s | timeout | | | | | | | | | | | | |\n", $1, $2; next }
{
    n = $3; tps = $6 > 0 ? n / $6 : 0
    printf "| %s | %s | %d | %.0f | %.0f%% | %s | %s | %s | %.0f | %.3f | %.3f | %.3f | %.1f (%.1f) | %.1f | %.1f |\n",
        $1, $2, n, tps, 100 * tps / lim, ms($8), ms($9), ms($10), $7,
        $11 / tck / n * 1000, $12 / tck / n * 1000, $17 / tck / n * 1000, $13 / n, $14 / n, $15 / 1024, $16 / 1024
}' "$RES")

echo
echo "dagq benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
echo "fork limit (/bin/sh -c true, forked and reaped on all cores): $FORK_LIMIT/s ($F1/s with $(nproc) processes, $F2/s with $(($(nproc) * 2)))"
echo "1 scheduler, $BENCH_WORKERS workers x $BENCH_SLOTS slots; latency = started_at of a task instance minus the latest ended_at of its upstreams (database timestamps); CPU per 1,000 tasks; PG CPU = the PostgreSQL server (incl. the bench's own 4 polls/s); worker CPU and RSS: both workers summed / the larger"
echo
echo "$TABLE"
if [ -s "$NOTES" ]; then echo; sed 's/^/note: /' "$NOTES"; fi
if [ -n "$BENCH_OUT" ]; then
    {
        echo "$TABLE"
        if [ -s "$NOTES" ]; then echo; sed 's/^/note: /' "$NOTES"; fi
    } >"$BENCH_OUT"
fi
