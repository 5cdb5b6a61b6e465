# tests/itest.sh — helpers for integration test cases (sourced by
# tests/lane.sh after tests/lib.sh). Each case runs in its own subshell, in
# one of tests/run.sh's lanes (DAGQ_TEST_JOBS), with a fresh database
# ($DAGQ_DATABASE_URL), a private queue prefix ($DAGQ_REDIS_PREFIX,
# $DAGQ_KAFKA_TOPIC_PREFIX), its lane's own PostgreSQL, Redis and Kafka
# ($PG_PORT, $REDIS_PORT, $KAFKA_URL: a case may kill and restart them with
# pg_kill, redis_restart, kafka_restart; nothing outside the lane sees it)
# and its own log folder $T_CASE. Processes it starts are stopped at its
# end, and every $T_CASE/*.log is checked: a sanitizer report, or a
# `level=error` line the case did not declare with expect_log_errors, fails
# the case.

declare -A P_PID=()
T_FAILS=0
T_EXPECTED_ERRORS=()

# psql on the case's database: one value per line, fields separated by |
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" -c "$1"; }
# the same, returning the error text instead of failing the case
sql_err() { psql -X -q -At -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" -c "$1" 2>&1 >/dev/null; }

fail() {
    echo "    FAIL: $*" >&2
    T_FAILS=$((T_FAILS + 1))
}

assert_eq() { # expected actual what
    if [ "$1" != "$2" ]; then fail "$3: expected [$1], got [$2]"; fi
}

assert_contains() { # haystack needle what
    case "$1" in *"$2"*) ;; *) fail "$3: [$1] does not contain [$2]" ;; esac
}

assert_le() { # a b what  (integers: a <= b)
    if ! [ "$1" -le "$2" ] 2>/dev/null; then fail "$3: expected $1 <= $2"; fi
}

# start NAME PROGRAM [ARGS...]: a dagq program in the background, logging to
# $T_CASE/NAME.log
start() {
    local name=$1 prog=$2
    shift 2
    # a dagq program gets its own settings only: the harness's other URLs
    # hold passwords its tasks must not inherit
    env -u T_SCHED_DB_URL -u T_WORKER_DB_URL -u T_OPERATOR_DB_URL -u T_VIEWER_DB_URL \
        -u T_AUTHOR_DB_URL -u REDIS_URL -u REDIS_PASSWORD -u T_SECRET \
        ${TEST_PREFIX:-} "$T_BIN/$prog" "$@" >>"$T_CASE/$name.log" 2>&1 &
    P_PID[$name]=$!
    T_PIDS+=($!)
}

# The scheduler and the workers connect as their least-privilege login roles
# (T_SCHED_DB_URL, T_WORKER_DB_URL: members of dagq_scheduler and dagq_worker
# only); a case that points them at another database sets those.
start_scheduler() {
    local n=$1
    shift
    DAGQ_DATABASE_URL=${T_SCHED_DB_URL:-$DAGQ_DATABASE_URL} start "$n" dagq-scheduler --poll-interval-ms 250 "$@"
}
start_worker() {
    local n=$1
    shift
    DAGQ_DATABASE_URL=${T_WORKER_DB_URL:-$DAGQ_DATABASE_URL} start "$n" dagq-worker --name "$n" --heartbeat-interval 1 "$@"
}

# stop NAME: SIGTERM and wait (a program that does not exit in 30 s is a failure)
stop() {
    local name=$1 pid=${P_PID[$1]:-}
    [ -n "$pid" ] || return 0
    kill -CONT "$pid" 2>/dev/null # one a case stopped (SIGSTOP) cannot hear SIGTERM
    kill -TERM "$pid" 2>/dev/null
    local i
    for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        fail "$name did not stop within 30 s of SIGTERM"
        kill -9 "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    local rc=$?
    unset "P_PID[$name]"
    if [ "$rc" -ne 0 ]; then fail "$name exited with status $rc"; fi
}

# alive PID: the process exists and is not a zombie waiting to be reaped
alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case "$st" in Z*) return 1 ;; esac
    [ -n "$st" ]
}

kill9() {
    local pid=${P_PID[$1]:-}
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "P_PID[$1]"
}

stop_all() {
    local n
    for n in "${!P_PID[@]}"; do stop "$n"; done
}

# expect_log_errors REGEX [NAME...]: the case provokes errors on purpose;
# `level=error` lines matching the extended REGEX are expected, in the logs
# $T_CASE/NAME.log given, or in any log of the case without a NAME. Declare
# each error the case causes (a killed PostgreSQL, a junk message) as
# narrowly as it can be named: any other error line fails the case.
expect_log_errors() {
    local re=$1 n
    shift
    if [ $# -eq 0 ]; then
        T_EXPECTED_ERRORS+=("*"$'\t'"$re")
    else
        for n in "$@"; do T_EXPECTED_ERRORS+=("$n"$'\t'"$re"); done
    fi
}

# Fails the case for a sanitizer or valgrind report in any of its logs, or
# for a `level=error` line no expect_log_errors declared.
check_logs() {
    local f name lines e
    for f in "$T_CASE"/*.log; do
        [ -f "$f" ] || continue
        name=$(basename "$f" .log)
        if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f"; then
            fail "sanitizer report in $name.log:"
            grep -E -A25 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" | head -60 >&2
        fi
        # TEST_PREFIX="valgrind -q" prints nothing but its reports
        if grep -qE '^==[0-9]+== ' "$f"; then
            fail "valgrind report in $name.log:"
            grep -E '^==[0-9]+== ' "$f" | head -60 >&2
        fi
        lines=$(grep -E '(^| )level=error( |$)' "$f")
        for e in "${T_EXPECTED_ERRORS[@]}"; do
            [ -n "$lines" ] || break
            case ${e%%$'\t'*} in "*" | "$name") ;; *) continue ;; esac
            lines=$(grep -vE -- "${e#*$'\t'}" <<<"$lines")
        done
        if [ -n "$lines" ]; then
            fail "unexpected level=error in $name.log ($(wc -l <<<"$lines") lines; expect_log_errors declares the expected ones):"
            head -10 <<<"$lines" | sed 's/^/      /' >&2
        fi
        # through a transaction pooler, a session's leftovers meet another
        # client: a prepared statement that exists, or not, where it should not
        if [ -n "${T_PGBOUNCER:-}" ] && grep -qE 'prepared statement .*(already exists|does not exist)' "$f"; then
            fail "session state met another client through PgBouncer in $name.log:"
            grep -E 'prepared statement' "$f" | head -5 >&2
        fi
        # every password of the run is made of $T_SECRET: none may be logged
        if [ -n "${T_SECRET:-}" ] && grep -qF -- "$T_SECRET" "$f"; then
            fail "a password is in $name.log:"
            grep -nF -- "$T_SECRET" "$f" | head -5 | sed "s/$T_SECRET/<the secret>/g" >&2
        fi
    done
}

# wait_until TIMEOUT_S SQL EXPECTED: polls until SQL returns EXPECTED
wait_until() {
    local timeout=$1 q=$2 want=$3 got=""
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        got=$(sql "$q" 2>/dev/null)
        [ "$got" = "$want" ] && return 0
        sleep 0.2
    done
    fail "waited ${timeout}s for [$q] = [$want], last [$got]"
    return 1
}

# wait_log NAME REGEX TIMEOUT_S: until NAME's log has a line matching REGEX
wait_log() {
    local deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        grep -qE "$2" "$T_CASE/$1.log" 2>/dev/null && return 0
        sleep 0.2
    done
    fail "waited ${3}s for [$2] in $1.log"
    return 1
}

# wait_run RUN_ID [TIMEOUT_S]: until the run has finished; prints its state
wait_run() {
    local run=$1 timeout=${2:-60} st=""
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        st=$(sql "SELECT state FROM dagq.dag_run WHERE run_id = $run")
        case "$st" in success | failed) echo "$st"; return 0 ;; esac
        sleep 0.2
    done
    echo "timeout($st)"
    return 1
}

ti_state() { sql "SELECT state FROM dagq.task_instance WHERE run_id = $1 AND task_id = '$2'"; }

# Everything that moves: one scheduler and N workers with the case's broker.
start_stack() {
    local workers=${1:-1}
    start_scheduler sched --heartbeat-timeout "${T_HEARTBEAT_TIMEOUT:-30}"
    local i
    for i in $(seq "$workers"); do start_worker "w$i" --slots "${T_SLOTS:-4}"; done
}
