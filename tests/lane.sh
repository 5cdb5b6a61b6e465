#!/usr/bin/env bash
# tests/lane.sh LANE — one lane of tests/run.sh, which starts DAGQ_TEST_JOBS
# of them, each in a session of its own; not meant to be run by hand.
#
# A lane takes items one at a time from the run's queue ($T_RUN/queue, one
# tab-separated line per item, longest first; $T_RUN/next, under the lock
# $T_RUN/queue.lock, counts what was taken), so lanes that draw short items
# simply draw more of them. An item is either an integration case (a case_*
# function of a tests/integration/*.sh file, on one broker) or a standalone
# test script that starts its own servers. An integration case of kind
# pgbcase runs with every worker connecting through the lane's PgBouncer
# (transaction pooling), started the first time a case needs it.
#
# The lane's servers are its own: PostgreSQL, Redis and Kafka on ports of
# the lane's block (T_PORT_BASE, T_PORT_SPAN: see t_free_port) with data
# under its T_ROOT ($T_RUN/laneN), each started the first time an item
# needs it (a lane that draws no Kafka case starts no JVM), checked before
# every case and restarted if a case left it down, and all stopped when the
# lane ends, however it ends. So a fault case that kills PostgreSQL or the
# broker hurts nothing outside its lane.
#
# Every case runs in a subshell in a process group of its own, with a fresh
# database t<N> and queue prefix t<N>: / t<N>. (N, the item's place in the
# queue, is unique in the run); whatever it leaves running is killed with
# its group when it ends. Each result is printed under the run's output
# lock (the `ok`/`FAIL` line, after the failing case's tail) and appended to
# $T_RUN/results ("status<TAB>seconds<TAB>name") for run.sh's summary.
set -u
cd "$(dirname "$0")/.."
lane=$1
: "${T_RUN:?tests/lane.sh is started by tests/run.sh}"
export T_ROOT="$T_RUN/lane$lane"
mkdir -p "$T_ROOT"
export T_PORT_FILE="$T_ROOT/ports.next"
. tests/lib.sh
. tests/itest.sh

CASE_PGID=""
NEED_ERR="$T_ROOT/need.err"

lane_teardown() {
    if [ -n "$CASE_PGID" ]; then kill -9 -- "-$CASE_PGID" 2>/dev/null; fi
    kafka_kill
    redis_stop
    pgbouncer_stop
    pg_stop
}
trap lane_teardown EXIT
trap 'exit 143' TERM INT HUP

# lane_next: prints "N<TAB>item" for the next item of the queue; false when
# none is left.
lane_next() {
    local fd n line
    exec {fd}>>"$T_RUN/queue.lock"
    flock "$fd"
    n=$(($(cat "$T_RUN/next") + 1))
    line=$(sed -n "${n}p" "$T_RUN/queue")
    [ -n "$line" ] && echo "$n" >"$T_RUN/next"
    exec {fd}>&-
    [ -n "$line" ] && printf '%s\t%s\n' "$n" "$line"
}

# lane_report STATUS SECONDS NAME [OUTPUT]: one result line, after the last
# 40 lines of OUTPUT for a failure
lane_report() {
    local fd block=""
    if [ "$1" = FAIL ] && [ -n "${4:-}" ] && [ -s "$4" ]; then
        block=$(tail -40 "$4" | sed 's/^/    /')$'\n'
    fi
    block+=$(printf '%-4s %s (%.0fs)' "$1" "$3" "$2")
    exec {fd}>>"$T_RUN/out.lock"
    flock "$fd"
    printf '%s\n' "$block"
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$T_RUN/results"
    exec {fd}>&-
}

# seconds since EPOCHREALTIME value $1, one decimal
lane_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# lane_need pg|redis|kafka|-: the lane's server is up, started on first
# need, restarted if a case left it down; on failure the reason is in
# $NEED_ERR.
lane_need() {
    : >"$NEED_ERR"
    case $1 in
    pg)
        if [ -z "${PG_ADMIN_URL:-}" ]; then
            pg_start 2>>"$NEED_ERR" || { echo "lane $lane: cannot start PostgreSQL" >>"$NEED_ERR"; return 1; }
        elif ! psql -X -q -At "$PG_ADMIN_URL" -c 'SELECT 1' >/dev/null 2>&1; then
            t_log "lane $lane: PostgreSQL is down after the last case; restarting it"
            pg_kill
            pg_restart 2>>"$NEED_ERR" || { echo "lane $lane: cannot restart PostgreSQL" >>"$NEED_ERR"; return 1; }
        fi
        ;;
    redis)
        if [ -z "${REDIS_URL:-}" ]; then
            redis_start 2>>"$NEED_ERR" || { echo "lane $lane: cannot start Redis" >>"$NEED_ERR"; return 1; }
        elif ! redis_cli ping >/dev/null 2>&1; then
            t_log "lane $lane: Redis is down after the last case; restarting it"
            redis_restart 2>>"$NEED_ERR" || { echo "lane $lane: cannot restart Redis" >>"$NEED_ERR"; return 1; }
        fi
        ;;
    pgbouncer)
        # one server connection per case database: the case's workers share
        # it, so whatever one of them left on a session, another would meet
        export PGB_POOL_SIZE=${DAGQ_TEST_PGBOUNCER_POOL:-1}
        if [ -z "${PGB_PORT:-}" ]; then
            pgbouncer_start 2>>"$NEED_ERR" || { echo "lane $lane: cannot start PgBouncer" >>"$NEED_ERR"; return 1; }
        elif ! pgbouncer_ping >/dev/null 2>&1; then
            t_log "lane $lane: PgBouncer is down after the last case; restarting it"
            pgbouncer_stop
            unset PGB_PORT
            pgbouncer_start 2>>"$NEED_ERR" || { echo "lane $lane: cannot restart PgBouncer" >>"$NEED_ERR"; return 1; }
        fi
        ;;
    kafka)
        if [ -z "${KAFKA_URL:-}" ]; then
            kafka_start 2>>"$NEED_ERR" || { echo "lane $lane: cannot start Kafka" >>"$NEED_ERR"; return 1; }
        elif ! kafka__pid >/dev/null || ! kafka__ready; then
            t_log "lane $lane: Kafka is down after the last case; restarting it"
            kafka_restart 2>>"$NEED_ERR" || { echo "lane $lane: cannot restart Kafka" >>"$NEED_ERR"; return 1; }
        fi
        ;;
    esac
}

# lane_watch PGID OUTPUT: after DAGQ_TEST_CASE_TIMEOUT seconds (default
# 900) stops the test's process group, and says so in its OUTPUT
lane_watch() {
    local limit=${DAGQ_TEST_CASE_TIMEOUT:-900} sp
    sleep "$limit" &
    sp=$!
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    wait "$sp" || exit 0
    echo "    FAIL: still running after ${limit}s (DAGQ_TEST_CASE_TIMEOUT); stopped" >>"$2"
    kill -TERM -- "-$1" 2>/dev/null
    sleep 5
    kill -KILL -- "-$1" 2>/dev/null
}

# lane_wait OUTPUT: waits for the test in $CASE_PGID, under lane_watch; the
# test's status is in $rc, and whatever it left running is killed
lane_wait() {
    local watch
    lane_watch "$CASE_PGID" "$1" &
    watch=$!
    wait "$CASE_PGID"
    rc=$?
    kill "$watch" 2>/dev/null
    wait "$watch" 2>/dev/null
    kill -9 -- "-$CASE_PGID" 2>/dev/null
    CASE_PGID=""
}

# lane_case N BROKER FILE FUNCTION NAME [pgbouncer]: with pgbouncer, every
# worker the case starts connects through the lane's PgBouncer in
# transaction pooling mode (T_WORKER_DB_URL; T_PGBOUNCER=1 tells the case)
lane_case() {
    local n=$1 b=$2 f=$3 c=$4 name=$5 via=${6:-} t0=$EPOCHREALTIME rc db
    export T_CASE="$T_ROOT/cases/$n-${c#case_}-$b"
    mkdir -p "$T_CASE"
    if ! lane_need pg || ! lane_need "$b" || { [ -n "$via" ] && ! lane_need pgbouncer; }; then
        lane_report FAIL "$(lane_since "$t0")" "$name" "$NEED_ERR"
        return
    fi
    t0=$EPOCHREALTIME # a case's time is its own, not its lane's server start
    if ! db=$(pg_new_db "t$n" 2>"$T_CASE/case.out"); then
        lane_report FAIL "$(lane_since "$t0")" "$name" "$T_CASE/case.out"
        return
    fi
    set -m # the case's subshell leads a process group of its own
    (
        trap 'for p in "${P_PID[@]}"; do kill -9 "$p" 2>/dev/null; done' EXIT
        export DAGQ_DATABASE_URL=$db T_BROKER=$b
        export DAGQ_REDIS_PREFIX="t$n:" DAGQ_KAFKA_TOPIC_PREFIX="t$n."
        if [ "$b" = redis ]; then export DAGQ_BROKER_URL=$REDIS_URL; else export DAGQ_BROKER_URL=$KAFKA_URL; fi
        "$T_BIN/dagq" db migrate >"$T_CASE/migrate.log" 2>&1 || { cat "$T_CASE/migrate.log"; exit 1; }
        # the programs connect as least-privilege login roles, never as
        # the superuser the case sets up with
        pg_login_roles || { echo "cannot create the login roles"; exit 1; }
        export T_SCHED_DB_URL=$(role_url scheduler "$db") T_WORKER_DB_URL=$(role_url worker "$db")
        if [ -n "$via" ]; then
            export T_PGBOUNCER=1 T_WORKER_DB_URL=$(pgbouncer_url "$T_WORKER_DB_URL")
        fi
        export T_OPERATOR_DB_URL=$(role_url operator "$db") T_VIEWER_DB_URL=$(role_url viewer "$db")
        export T_AUTHOR_DB_URL=$(role_url author "$db")
        . "$f"
        "$c"
        stop_all
        check_logs
        exit $((T_FAILS > 0))
    ) >>"$T_CASE/case.out" 2>&1 </dev/null &
    CASE_PGID=$!
    set +m
    lane_wait "$T_CASE/case.out"
    t_sweep "$T_CASE" # a server the case started itself (a PgBouncer daemonizes out of its group)
    if [ $rc -eq 0 ]; then
        lane_report ok "$(lane_since "$t0")" "$name"
    else
        lane_report FAIL "$(lane_since "$t0")" "$name" "$T_CASE/case.out"
    fi
}

# lane_script N FILE NAME: a standalone test script, with a T_ROOT of its
# own under the lane's and none of the lane's servers in its environment
lane_script() {
    local n=$1 f=$2 name=$3 t0=$EPOCHREALTIME rc dir
    dir="$T_ROOT/scripts/$n-$name"
    mkdir -p "$dir/root"
    set -m
    env -u PG_PORT -u PG_DIR -u PG_BIN -u PG_ADMIN_URL -u REDIS_PORT -u REDIS_DIR -u REDIS_URL \
        -u PGB_PORT -u PGB_DIR \
        -u KAFKA_URL -u KAFKA_PORT -u KAFKA_CONTROLLER_PORT -u KAFKA_DIR -u KAFKA_PID -u T_CASE \
        T_ROOT="$dir/root" bash "$f" >"$dir/out" 2>&1 </dev/null &
    CASE_PGID=$!
    set +m
    lane_wait "$dir/out"
    t_sweep "$dir/root" # servers of a script that did not clean up after itself
    if [ $rc -eq 0 ]; then
        lane_report ok "$(lane_since "$t0")" "$name"
    else
        lane_report FAIL "$(lane_since "$t0")" "$name" "$dir/out"
    fi
}

while item=$(lane_next); do
    IFS=$'\t' read -r n kind broker file func name <<<"$item"
    # a lane whose run.sh is gone stops (its trap cleans up)
    kill -0 "$T_RUN_PID" 2>/dev/null || exit 1
    case $kind in
    case) lane_case "$n" "$broker" "$file" "$func" "$name" ;;
    pgbcase) lane_case "$n" "$broker" "$file" "$func" "$name" pgbouncer ;;
    script) lane_script "$n" "$file" "$name" ;;
    esac
done
exit 0
