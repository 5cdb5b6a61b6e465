#!/usr/bin/env bash
# bench/bench.sh — dagq benchmarks (run by `make bench` via bench/run.sh).
#
# Starts a private PostgreSQL (stock durability by default: fsync,
# full_page_writes and synchronous_commit on, max_connections 100;
# pg_stat_statements preloaded), Redis and, when it can be fetched and
# started, Kafka (tests/lib.sh, tests/kafka.sh); runs the release binaries
# in bin/ with 1 scheduler and $BENCH_WORKERS workers of $BENCH_SLOTS slots.
# Workloads (no-op tasks, command `true`):
#   wide     one run of $BENCH_WIDE independent tasks
#   chain    one run of $BENCH_CHAIN tasks in a line
#   many     $BENCH_MANY DAGs of 10 tasks (1 -> 8 -> 1) triggered in one statement
#   cron     $BENCH_CRON DAGs of one task, all due at the same minute
#   pooled   wide with $BENCH_POOLED_WORKERS workers of 1 slot connected through
#            PgBouncer (transaction pooling, $BENCH_POOL server connections)
#            to the PostgreSQL of max_connections 100 (Redis only)
# each on an empty metastore, then again after $BENCH_HIST_RUNS finished runs
# of $BENCH_HIST_PER task instances each were inserted (bench/history.sql),
# then a prune of the oldest month of that history. Every figure comes from
# the database's own timestamps, /proc, pg_stat_database, pg_stat_wal and
# pg_stat_statements; the fork limit is measured in the same run by
# bench/forklimit.c. Small versions: BENCH_WIDE=100 BENCH_HIST_RUNS=1000 ...
set -u
B_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$B_DIR/.." && pwd)
export T_BIN="${T_BIN:-$REPO/bin}"
# shellcheck source=../tests/lib.sh
. "$REPO/tests/lib.sh"

: "${BENCH_WIDE:=2000}" "${BENCH_CHAIN:=200}" "${BENCH_MANY:=200}" "${BENCH_CRON:=1000}"
: "${BENCH_POOLED_WORKERS:=200}" "${BENCH_POOL:=20}"
: "${BENCH_HIST_RUNS:=1000000}" "${BENCH_HIST_PER:=10}"
: "${BENCH_WORKERS:=2}" "${BENCH_SLOTS:=$(($(nproc) * 4))}"
: "${BENCH_BROKERS:=redis kafka}" "${BENCH_TIMEOUT:=600}" "${BENCH_FORK_SECONDS:=5}"
: "${BENCH_WORKLOADS:=wide chain many cron pooled}"
: "${BENCH_DURABILITY:=stock}" # stock, or off (fsync = off, full_page_writes = off)
: "${BENCH_OUT:=}"             # also write the table (markdown) to this file
: "${BENCH_PROFILE_DIR:=}"     # also write each workload's top statements (pg_stat_statements) here
export PG_DURABILITY=$BENCH_DURABILITY

CLK_TCK=$(getconf CLK_TCK)
RES="$T_ROOT/results.tsv"
NOTES="$T_ROOT/notes.txt"
: >"$NOTES"
# one line per workload; the table is made from it by bench/table.awk
echo -e "broker\tworkload\tphase\ttasks\tok_tasks\tok_runs\tsecs\tfirst_ms\tlat_p50\tlat_p99\trq_p50\trq_p99\tcron_created_max\tcron_created_p50\tcron_started_max\tcron_started_p50\tsched_t\tworkers_t\tforks_t\tpg_t\tbroker_t\tcommits\twal_syncs\tstmts\ttop_stmts\tsched_hwm\tworker_hwm\tnworkers" >"$RES"
SCHED_PID=""
WPIDS=()
PHASE=empty

b_cleanup() {
    local p
    for p in $SCHED_PID "${WPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    t_cleanup
}
trap b_cleanup EXIT
trap 'exit 130' INT TERM

for p in dagq dagq-scheduler dagq-worker; do
    [ -x "$T_BIN/$p" ] || { echo "bench: $T_BIN/$p missing (make all)" >&2; exit 1; }
done
T_START=$SECONDS

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
OBS_URL="postgresql://bench@/bench?host=$PG_DIR&port=$PG_PORT" # the bench's own queries (over the socket, trusted): not counted
export DAGQ_DATABASE_URL=$DB_URL
"$T_BIN/dagq" db migrate >"$T_ROOT/migrate.log" 2>&1 || { cat "$T_ROOT/migrate.log"; exit 1; }
obs() { psql -X -q -At -v ON_ERROR_STOP=1 "$OBS_URL" "$@"; }
obs -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null || exit 1
PG_SETTINGS=$(obs -F ' ' -c "SELECT string_agg(name || ' = ' || setting || COALESCE(unit, ''), ', ' ORDER BY name)
    FROM pg_settings WHERE name IN ('fsync', 'full_page_writes', 'synchronous_commit', 'wal_sync_method',
                                    'max_connections', 'shared_buffers', 'wal_level', 'checkpoint_timeout', 'max_wal_size')")

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
case " $BENCH_WORKLOADS " in *" pooled "*)
    if ! PGB_AUTH_TYPE=trust PGB_POOL_SIZE=$BENCH_POOL pgbouncer_start >"$T_ROOT/pgbouncer_start.log" 2>&1; then
        echo "pooled: PgBouncer did not start ($(tail -1 "$T_ROOT/pgbouncer_start.log")), not measured" >>"$NOTES"
        BENCH_WORKLOADS=${BENCH_WORKLOADS/pooled/}
    fi ;;
esac

# --- DAGs -------------------------------------------------------------------
t_log "defining DAGs: wide $BENCH_WIDE, chain $BENCH_CHAIN, many $BENCH_MANY x 10, cron $BENCH_CRON"
obs -v wide="$BENCH_WIDE" -v chain="$BENCH_CHAIN" -v many="$BENCH_MANY" -v cron="$BENCH_CRON" >/dev/null <<'SQL' || exit 1
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
-- cron: every minute, paused until a burst is armed (cron_arm)
INSERT INTO dagq.dag (dag_id, schedule, is_paused, catchup)
  SELECT 'cron_' || d, '* * * * *', true, false FROM generate_series(1, :cron) d;
INSERT INTO dagq.task (dag_id, task_id, command) SELECT 'cron_' || d, 't', 'true' FROM generate_series(1, :cron) d;
COMMIT;
SQL

. "$B_DIR/measure.sh"

run_phase() {
    local b
    t_log "phase: $PHASE"
    for b in $BROKERS; do
        run_stack "$b" direct "$BENCH_WORKERS" "$BENCH_SLOTS" wide chain many cron
        if [ "$b" = redis ]; then run_stack "$b" pgbouncer "$BENCH_POOLED_WORKERS" 1 pooled; fi
    done
}

run_phase

# --- history ------------------------------------------------------------------
HIST_SECS=0
if [ -n "$BROKERS" ] && [ "$BENCH_HIST_RUNS" -gt 0 ]; then
    t_log "history: inserting $BENCH_HIST_RUNS finished runs of $BENCH_HIST_PER task instances each"
    t0=$SECONDS
    obs -v runs="$BENCH_HIST_RUNS" -v per="$BENCH_HIST_PER" -f "$B_DIR/history.sql" >/dev/null || exit 1
    # what autovacuum would have done long before this much piled up
    obs -c "VACUUM ANALYZE" >/dev/null
    # and the load's dirty pages on disk now, not flushed under the workloads
    obs -c "CHECKPOINT" >/dev/null
    HIST_SECS=$((SECONDS - t0))
    HIST_DESC=$(obs -c "SELECT (SELECT count(*) FROM dagq.dag_run) || ' runs, ' || (SELECT count(*) FROM dagq.task_instance) || ' task instances, '
        || pg_size_pretty(pg_database_size(current_database()))")
    t_log "history: $HIST_DESC, inserted and vacuumed in $HIST_SECS s"
    PHASE=history
    run_phase
    prune_oldest_month
fi

# --- the table ----------------------------------------------------------------
TABLE=$(awk -F'\t' -v lim="$FORK_LIMIT" -v tck="$CLK_TCK" -v ncpu="$(nproc)" -f "$B_DIR/table.awk" "$RES" "$RES")
HEAD="dagq benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), PostgreSQL $(obs -c 'SHOW server_version' | cut -d' ' -f1)
PostgreSQL settings ($BENCH_DURABILITY durability): $PG_SETTINGS
fork limit (/bin/sh -c true, forked and reaped on all cores): $FORK_LIMIT/s ($F1/s with $(nproc) processes, $F2/s with $(($(nproc) * 2)))
1 scheduler; $BENCH_WORKERS workers x $BENCH_SLOTS slots (pooled: $BENCH_POOLED_WORKERS x 1 through PgBouncer, pool $BENCH_POOL); history: ${HIST_DESC:-none} (inserted in $HIST_SECS s); bench total $((SECONDS - T_START)) s
start lat = started_at minus the latest upstream ended_at; ready->queued = queued_at minus the latest upstream ended_at; CPU s per 1,000 tasks (forks: the task shells the workers reaped); busy = all of it / (wall x CPUs); commits and WAL syncs per task from pg_stat_database / pg_stat_wal (the bench's own polls subtracted)"
echo
echo "$HEAD"
echo
echo "$TABLE"
[ -n "${PRUNE_LINE:-}" ] && { echo; echo "$PRUNE_LINE"; }
if [ -s "$NOTES" ]; then echo; sed 's/^/note: /' "$NOTES"; fi
if [ -n "$BENCH_OUT" ]; then
    {
        echo "$HEAD"
        echo
        echo "$TABLE"
        [ -n "${PRUNE_LINE:-}" ] && { echo; echo "$PRUNE_LINE"; }
        if [ -s "$NOTES" ]; then echo; sed 's/^/note: /' "$NOTES"; fi
    } >"$BENCH_OUT"
fi
