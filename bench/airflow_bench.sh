#!/usr/bin/env bash
# bench/airflow_bench.sh — Apache Airflow on the same workloads as
# bench/bench.sh, for the dagq/Airflow ratio (run by `make bench-airflow`).
#
# Installs a pinned Airflow 2.x into the git-ignored bench/.venv (with the
# project's constraints file when raw.githubusercontent.com is reachable,
# else plain pip), starts a private PostgreSQL (tests/lib.sh pg_start), runs
# `airflow scheduler` with the LocalExecutor and parallelism = the same
# number of slots dagq's workers get, and measures:
#   wide   one run of $BENCH_WIDE independent BashOperator('true') tasks
#   chain  one run of $BENCH_CHAIN of them in a line
# Figures from Airflow's own dag_run / task_instance timestamps (trigger =
# dag_run.queued_at), /proc (scheduler = the `airflow scheduler` process;
# "workers" = every other process of its tree: executor workers, task
# runners, DAG processor; a lower bound: task runners' CPU is still lost,
# see BENCHMARKS.md) and pg_stat_statements. Runs still going after
# BENCH_TIMEOUT s are measured over what ended and reported as partial.
set -u
B_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$B_DIR/.." && pwd)
export T_BIN="${T_BIN:-$REPO/bin}"
# shellcheck source=../tests/lib.sh
. "$REPO/tests/lib.sh"

: "${AIRFLOW_VERSION:=2.10.5}"
: "${BENCH_WIDE:=2000}" "${BENCH_CHAIN:=200}"
: "${BENCH_SLOTS:=$(($(nproc) * 4 * 2))}"   # dagq: 2 workers x nproc*4 slots
# BENCH_TIMEOUT: seconds per workload; a run still going then is measured on
# the task instances that ended by then, and stopped
: "${BENCH_TIMEOUT:=1800}" "${BENCH_FORK_SECONDS:=5}"
: "${BENCH_OUT:=}"
VENV="$B_DIR/.venv"
CLK_TCK=$(getconf CLK_TCK)
RES="$T_ROOT/results.tsv"
NOTES="$T_ROOT/notes.txt"
: >"$RES"
: >"$NOTES"
SCHED=""

# every process of the scheduler's tree (task runners make their own
# sessions, so a group kill is not enough)
session_kill() {
    local p
    [ -n "$SCHED" ] || return 0
    for p in $(session_pids); do
        kill "-${1:-9}" "$p" 2>/dev/null
    done
}
a_cleanup() {
    session_kill 9
    t_cleanup
}
trap a_cleanup EXIT
trap 'exit 130' INT TERM

# --- Airflow into bench/.venv ------------------------------------------------
if ! [ -x "$VENV/bin/airflow" ] || ! "$VENV/bin/pip" show apache-airflow 2>/dev/null | grep -qx "Version: $AIRFLOW_VERSION"; then
    PYV=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    t_log "installing apache-airflow $AIRFLOW_VERSION (python $PYV) into $VENV"
    [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV" || exit 1
    CONSTRAINTS="https://raw.githubusercontent.com/apache/airflow/constraints-$AIRFLOW_VERSION/constraints-$PYV.txt"
    CARGS=()
    if curl -fsS -m 20 -o "$T_ROOT/constraints.txt" "$CONSTRAINTS" 2>/dev/null; then
        CARGS=(--constraint "$T_ROOT/constraints.txt")
    else
        t_log "constraints file not reachable ($CONSTRAINTS): plain pip"
    fi
    "$VENV/bin/pip" install -q "apache-airflow[postgres]==$AIRFLOW_VERSION" "${CARGS[@]}" ||
        { echo "bench-airflow: pip could not install apache-airflow $AIRFLOW_VERSION" >&2; exit 1; }
fi

# --- the machine's limit (as bench/bench.sh) ------------------------------------
cc -O2 -o "$T_ROOT/forklimit" "$B_DIR/forklimit.c" || exit 1
F1=$("$T_ROOT/forklimit" "$BENCH_FORK_SECONDS" "$(nproc)")
F2=$("$T_ROOT/forklimit" "$BENCH_FORK_SECONDS" "$(($(nproc) * 2))")
FORK_LIMIT=$(awk -v a="$F1" -v b="$F2" 'BEGIN { printf "%.0f", (a > b ? a : b) }')
t_log "fork limit: $FORK_LIMIT/s"

# --- PostgreSQL and Airflow's home ------------------------------------------------
pg_start || exit 1
psql -X -q "$PG_ADMIN_URL" -c "CREATE ROLE bench LOGIN SUPERUSER" >/dev/null || exit 1
pg_new_db airflow >/dev/null || exit 1
OBS_URL="postgresql://bench@/airflow?host=$PG_DIR&port=$PG_PORT" # over the socket, trusted (TCP logins other than dagq need a password)
obs() { psql -X -q -At -v ON_ERROR_STOP=1 "$OBS_URL" "$@"; }
obs -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null || exit 1

export AIRFLOW_HOME="$T_ROOT/airflow"
mkdir -p "$AIRFLOW_HOME/dags"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://dagq@127.0.0.1:$PG_PORT/airflow"
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=$BENCH_SLOTS
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=100000
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$AIRFLOW_HOME/dags"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL=5
export AIRFLOW__WEBSERVER__SECRET_KEY=bench
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=300
export AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT=600
AF="$VENV/bin/airflow"

t_log "airflow db migrate"
"$AF" db migrate >"$T_ROOT/airflow-migrate.log" 2>&1 || { tail -30 "$T_ROOT/airflow-migrate.log"; exit 1; }
"$AF" pools set default_pool "$((BENCH_SLOTS * 8))" "bench" >/dev/null 2>&1

cat >"$AIRFLOW_HOME/dags/bench_dags.py" <<PY
from datetime import datetime
from airflow import DAG
from airflow.operators.bash import BashOperator

kw = dict(start_date=datetime(2024, 1, 1), schedule=None, catchup=False,
          max_active_tasks=100000, is_paused_upon_creation=False)
with DAG("bench_wide", **kw):
    for i in range($BENCH_WIDE):
        BashOperator(task_id="t%d" % i, bash_command="true")
with DAG("bench_chain", **kw):
    prev = None
    for i in range($BENCH_CHAIN):
        t = BashOperator(task_id="t%d" % i, bash_command="true")
        if prev is not None:
            prev >> t
        prev = t
PY

setsid "$AF" scheduler >"$T_ROOT/airflow-scheduler.log" 2>&1 &
SCHED=$!
t_log "airflow scheduler pid $SCHED; waiting for the DAGs to be parsed"
dags_parsed() {
    [ "$(obs -c "SELECT count(*) FROM serialized_dag WHERE dag_id IN ('bench_wide', 'bench_chain')" 2>/dev/null)" = 2 ]
}
T_WAIT=600 t_wait_for dags_parsed ||
    { echo "bench-airflow: the DAGs were not parsed in 600 s" >&2; tail -30 "$T_ROOT/airflow-scheduler.log" >&2; exit 1; }
obs -c "UPDATE dag SET is_paused = false WHERE dag_id LIKE 'bench\_%'" >/dev/null

# the scheduler and every live descendant (by parent pid: Airflow's task
# runners call setsid, so they leave the scheduler's session)
session_pids() {
    ps -e -o pid=,ppid=,sid= | awk -v s="$SCHED" '
        { par[$1] = $2; sid[$1] = $3 }
        END {
            for (p in par) {
                q = p; n = 0
                while (q != "" && q != s && q > 1 && n++ < 64) q = par[q]
                if (q == s || sid[p] == s) print p
            }
        }'
}
# CPU ticks from /proc/PID/stat. Airflow retitles its processes ("airflow
# task supervisor: ..."), and the comm field in parentheses then holds
# spaces: parse after the last ")" (fields 14-17 become 12-15 there).
stat_ticks() { # pid, with_children
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null |
        awk -v c="$2" '{ print $12 + $13 + (c ? $14 + $15 : 0) }'
}
# every live process of the tree: own + reaped children's CPU
session_ticks() {
    local p t=0 v
    for p in $(session_pids); do
        v=$(stat_ticks "$p" 1) && [ -n "$v" ] && t=$((t + v))
    done
    echo "$t"
}
sched_ticks() { stat_ticks "$SCHED" 0; }

# rss_sampler FILE: the largest VmHWM of any non-scheduler process, until killed
rss_sampler() {
    local out=$1 max=0 p h
    while :; do
        for p in $(session_pids); do
            [ "$p" = "$SCHED" ] && continue
            h=$(awk '/^VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
            [ -n "$h" ] && ((h > max)) && max=$h && echo "$max" >"$out"
        done
        sleep 0.5
    done
}

measure() { # WORKLOAD DAG_ID
    local w=$1 dag=$2
    t_log "airflow/$w: triggering $dag"
    echo 5 >"/proc/$SCHED/clear_refs" 2>/dev/null
    echo 0 >"$T_ROOT/rss.$w"
    rss_sampler "$T_ROOT/rss.$w" &
    local sampler=$! s0 a0 s1 a1
    s0=$(sched_ticks)
    a0=$(session_ticks)
    obs -c "SELECT pg_stat_statements_reset()" >/dev/null
    local run
    run=$("$AF" dags trigger "$dag" -o plain 2>>"$T_ROOT/airflow-trigger.log" | awk 'NR == 2 { print $2 }')
    run=$(obs -c "SELECT run_id FROM dag_run WHERE dag_id = '$dag' ORDER BY id DESC LIMIT 1")
    local deadline=$((SECONDS + BENCH_TIMEOUT)) st=""
    while ((SECONDS < deadline)); do
        st=$(obs -c "SELECT state FROM dag_run WHERE dag_id = '$dag' AND run_id = '$run'")
        case $st in success | failed) break ;; esac
        sleep 0.2
    done
    s1=$(sched_ticks)
    a1=$(session_ticks)
    kill "$sampler" 2>/dev/null
    wait "$sampler" 2>/dev/null
    local wl=$w
    case $st in success | failed) ;; *)
        wl="$w (partial)"
        echo "airflow/$w: run $run did not end in $BENCH_TIMEOUT s; figures are over the task instances that ended by then" |
            tee -a "$NOTES" >&2 ;;
    esac
    local stmts figs shwm
    stmts=$(obs -F ' ' -c "SELECT coalesce(sum(calls), 0), coalesce(sum(calls) FILTER (WHERE toplevel), 0)
          FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND userid = (SELECT oid FROM pg_roles WHERE rolname = 'dagq')")
    figs=$(obs -F ' ' <<SQL
WITH r AS (SELECT * FROM dag_run WHERE dag_id = '$dag' AND run_id = '$run'),
ti AS (SELECT ti.* FROM task_instance ti JOIN r USING (dag_id, run_id)),
lat AS (SELECT extract(epoch FROM d.start_date - u.end_date) * 1000 AS ms
          FROM ti d JOIN ti u ON u.task_id = 't' || (substr(d.task_id, 2)::int - 1)
         WHERE '$w' = 'chain'),
p AS (SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms) AS q FROM lat)
SELECT (SELECT count(*) FROM ti),
       (SELECT count(*) FROM ti WHERE state = 'success'),
       (SELECT count(*) FROM r WHERE state = 'success'),
       (SELECT extract(epoch FROM coalesce(end_date, (SELECT max(end_date) FROM ti WHERE state = 'success')) - queued_at) FROM r),
       (SELECT extract(epoch FROM (SELECT min(start_date) FROM ti) - queued_at) * 1000 FROM r),
       coalesce((SELECT q[1] FROM p), -1), coalesce((SELECT q[2] FROM p), -1),
       coalesce((SELECT q[3] FROM p), -1)
SQL
)
    shwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$SCHED/status")
    printf 'airflow\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$wl" "$(echo "$figs" | tr ' ' '\t')" \
        "$((s1 - s0))" "$((a1 - a0 - (s1 - s0)))" "$(echo "$stmts" | tr ' ' '\t')" "$shwm" \
        "$(cat "$T_ROOT/rss.$w")" >>"$RES"
    if [ "$wl" != "$w" ]; then # stop the rest of the run before the next workload
        obs -c "UPDATE task_instance SET state = 'skipped' WHERE dag_id = '$dag' AND run_id = '$run'
                   AND (state IS NULL OR state IN ('scheduled', 'queued'))" \
            -c "UPDATE dag_run SET state = 'failed', end_date = now() WHERE dag_id = '$dag' AND run_id = '$run'" >/dev/null
        sleep 10
    fi
    # shellcheck disable=SC2086
    set -- $figs
    [ "$1" = "$2" ] || echo "airflow/$w: $2 of $1 task instances succeeded" | tee -a "$NOTES" >&2
}

measure wide bench_wide
measure chain bench_chain
session_kill TERM
sleep 3
session_kill 9

TABLE=$(awk -F'\t' -v lim="$FORK_LIMIT" -v tck="$CLK_TCK" '
function ms(x) { return x < 0 ? "-" : sprintf("%.1f", x) }
BEGIN {
    print "| system | workload | tasks | tasks/s | % of fork limit | p50 ms | p95 ms | p99 ms | trigger->1st start ms | sched CPU s/1k | worker CPU s/1k | PG stmts/task (top-level) | sched RSS MB | worker RSS MB |"
    print "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
}
$3 == "TIMEOUT" { printf "| %s | %s | timeout | | | | | | | | | | | |\n", $1, $2; next }
{
    n = $4; tps = $6 > 0 ? n / $6 : 0 # the task instances that succeeded
    printf "| %s | %s | %d | %.1f | %.1f%% | %s | %s | %s | %.0f | %.2f | %.2f | %.1f (%.1f) | %.1f | %.1f |\n",
        $1, $2, n, tps, 100 * tps / lim, ms($8), ms($9), ms($10), $7,
        $11 / tck / n * 1000, $12 / tck / n * 1000, $13 / n, $14 / n, $15 / 1024, $16 / 1024
}' "$RES")
echo
echo "Apache Airflow $AIRFLOW_VERSION, LocalExecutor, parallelism $BENCH_SLOTS — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
echo "fork limit: $FORK_LIMIT/s; worker CPU = every process descending from the scheduler but the scheduler itself (executor workers, task runners, DAG processor); worker RSS = the largest of them"
echo
echo "$TABLE"
if [ -s "$NOTES" ]; then echo; sed 's/^/note: /' "$NOTES"; fi
[ -n "$BENCH_OUT" ] && echo "$TABLE" >"$BENCH_OUT"
exit 0
