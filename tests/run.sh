#!/usr/bin/env bash
# tests/run.sh [unit|integration|all] [NAME...]
#
# Runs the unit tests (every tests/unit/test_*.c, built into build/san/tests/
# by `make san`), then every integration test: each case_* function of
# tests/integration/*.sh on each broker (DAGQ_TEST_BROKERS, default
# "redis kafka"; a file's "# brokers: redis" line limits it to those), and
# the standalone scripts listed below, which start their own servers. NAME
# narrows the integration tests to those whose name (redis/core/diamond_...,
# cli_test) contains one of the NAMEs; a NAME that matches nothing fails.
#
# Integration tests run in DAGQ_TEST_JOBS lanes at once (default 4; 1 runs
# them one after another). Each lane is a tests/lane.sh in a session of its
# own with its own PostgreSQL, Redis and, once it draws a Kafka case, Kafka,
# on private ports and data directories under this run's folder, started
# once and stopped at the end; a case that kills or restarts a server hurts
# only its lane. Lanes draw tests from one queue, longest first: durations
# measured by earlier runs are kept in tests/.run/durations (git-ignored);
# tests/durations.txt is the committed estimate for a fresh clone. Each case
# gets a fresh database and queue prefix, and is stopped after
# DAGQ_TEST_CASE_TIMEOUT seconds (900). Most cases wait more than they
# compute, so lanes beyond the cores still pay: on 2 cores a full run took
# 5m40s one after another, 3m15s in 2 lanes, 2m46s in 3, 1m57s in 4.
#
# Output: one "ok"/"FAIL" line per test with its duration (a failing case's
# last 40 lines above it), "skip" lines for what was not run, and
# "N passed, N failed, N skipped". The run fails when a test fails, when a
# unit test or broker check is not built, when a unit test runs no test,
# when a NAME matches nothing, and when a required broker cannot run: both
# are required unless DAGQ_TEST_BROKERS names fewer, and what that leaves
# out is reported as skipped.
#
# A case fails on a sanitizer or valgrind report, or a `level=error` line,
# in any of its logs ($T_CASE/*.log) that it did not declare with
# expect_log_errors 'REGEX' [NAME...] (see tests/itest.sh). The servers,
# every process a case started and the run's folder are removed on exit,
# on Ctrl-C and on SIGTERM; T_KEEP=1 keeps the folder, T_KEEP_FAILED=1 keeps
# it when a test failed. TEST_PREFIX (e.g. "valgrind -q", which tests the
# release build in bin/) wraps every dagq program the cases start.
set -u
cd "$(dirname "$0")/.."
what=${1:-all}
shift || true
filter=("$@")
case $what in unit | integration | all) ;; *)
    echo "usage: tests/run.sh [unit|integration|all] [NAME...]" >&2
    exit 2
    ;;
esac

# Standalone scripts, BROKER:FILE ("-": needs no broker). They start their
# own servers and exit 0 when every check passed.
standalone=(-:tests/cli_test.sh -:tests/compose_test.sh kafka:tests/kafka_restart_check.sh redis:tests/demo_test.sh redis:tests/redis_tls_check.sh
    kafka:tests/kafka_sasl_check.sh)

all_brokers="redis kafka"
brokers=${DAGQ_TEST_BROKERS:-$all_brokers}
for b in $brokers; do
    case " $all_brokers " in *" $b "*) ;; *)
        echo "DAGQ_TEST_BROKERS: unknown broker \"$b\" (known: $all_brokers)" >&2
        exit 2
        ;;
    esac
done
jobs=${DAGQ_TEST_JOBS:-4}
case $jobs in '' | *[!0-9]* | 0) echo "DAGQ_TEST_JOBS must be a number of lanes, 1 or more" >&2; exit 2 ;; esac

passed=0
failed=0
skipped=0
failed_names=()

record() { # ok|FAIL|skip NAME [COUNT]: prints and counts a result
    case $1 in
    ok) passed=$((passed + 1)) ;;
    FAIL) failed=$((failed + 1)); failed_names+=("$2") ;;
    skip) skipped=$((skipped + ${3:-1})) ;;
    esac
    printf '%-4s %s\n' "$1" "$2"
}

run_units() {
    local srcs bins src t out rc last
    shopt -s nullglob
    srcs=(tests/unit/test_*.c)
    bins=(build/san/tests/test_*)
    shopt -u nullglob
    [ ${#srcs[@]} -gt 0 ] || record FAIL "unit: no tests/unit/test_*.c"
    [ ${#bins[@]} -gt 0 ] || record FAIL "unit: build/san/tests/test_* matches nothing (make san)"
    for src in "${srcs[@]}"; do
        t=build/san/tests/$(basename "$src" .c)
        if [ ! -x "$t" ]; then
            record FAIL "unit/${t##*/} (not built: make san)"
            continue
        fi
        out=$("$t" 2>&1)
        rc=$?
        last=$(tail -1 <<<"$out")
        if [ $rc -eq 0 ] && ! [[ $last =~ ^[1-9][0-9]*\ passed,\ 0\ failed$ ]]; then
            out+=$'\n'"${t##*/} ran no test"
            rc=1
        fi
        if [ $rc -eq 0 ]; then
            record ok "unit/${t##*/} ($last)"
        else
            tail -40 <<<"$out" | sed 's/^/    /'
            record FAIL "unit/${t##*/} ($last)"
        fi
    done
}

declare -A matched=()
# selected NAME [OTHER]: no NAME was given, or one is part of NAME or OTHER
selected() {
    [ ${#filter[@]} -gt 0 ] || return 0
    local p m=1
    for p in "${filter[@]}"; do
        case "$1 ${2:-}" in *"$p"*) matched[$p]=1; m=0 ;; esac
    done
    return $m
}
tests() { if [ "$1" -eq 1 ]; then echo "1 test"; else echo "$1 tests"; fi; }
has_broker() { case " $brokers " in *" $1 "*) return 0 ;; esac; return 1; }

# Fills items (estimate-less lines "kind broker file function name", tab
# separated, "-" for none) and skips[broker].
items=()
declare -A skips=()
add_item() { # kind broker file function name
    if [ "$2" = - ] || has_broker "$2"; then
        items+=("$1"$'\t'"$2"$'\t'"$3"$'\t'"$4"$'\t'"$5")
    else
        skips[$2]=$((${skips[$2]:-0} + 1))
    fi
}
# Through PgBouncer (transaction pooling, every worker's connection):
# DAGQ_TEST_PGBOUNCER=1 runs every case so, named pgbouncer/BROKER/...;
# unset, the cases of the files in DAGQ_TEST_PGBOUNCER_FILES (default
# "core faults state") run so once more, on Redis (the worker's database
# path does not depend on the broker); 0 runs none so.
pgb_mode=${DAGQ_TEST_PGBOUNCER:-}
pgb_files=${DAGQ_TEST_PGBOUNCER_FILES-core faults state}
collect_items() {
    local f cases c b file_brokers s base kind pgb_b
    pgb_b=redis
    has_broker redis || pgb_b=kafka
    for f in tests/integration/*.sh; do
        [ -f "$f" ] || continue
        cases=$(grep -oE '^case_[A-Za-z0-9_]+\(\)' "$f" | tr -d '()')
        file_brokers=$(grep -m1 '^# brokers:' "$f" | sed 's/^# brokers://')
        [ -n "${file_brokers// /}" ] || file_brokers=$all_brokers
        for b in $file_brokers; do
            case " $all_brokers " in *" $b "*) ;; *)
                record FAIL "$f: unknown broker \"$b\" in its # brokers: line"
                continue
                ;;
            esac
            base=$(basename "$f" .sh)
            for c in $cases; do
                if [ "$pgb_mode" = 1 ]; then
                    selected "pgbouncer/$b/$base/${c#case_}" || continue
                    add_item pgbcase "$b" "$f" "$c" "pgbouncer/$b/$base/${c#case_}"
                    continue
                fi
                if selected "$b/$base/${c#case_}"; then
                    add_item case "$b" "$f" "$c" "$b/$base/${c#case_}"
                fi
                case " $pgb_files " in *" $base "*) ;; *) continue ;; esac
                [ "$pgb_mode" != 0 ] && [ "$b" = "$pgb_b" ] || continue
                selected "pgbouncer/$b/$base/${c#case_}" || continue
                add_item pgbcase "$b" "$f" "$c" "pgbouncer/$b/$base/${c#case_}"
            done
        done
    done
    for s in "${standalone[@]}"; do
        selected "$(basename "${s#*:}" .sh)" "${s#*:}" || continue
        add_item script "${s%%:*}" "${s#*:}" - "$(basename "${s#*:}" .sh)"
    done
}

# Removes the items that need BROKER (they cannot run) and counts them skipped.
drop_items() { # broker why
    local i kept=() n=0
    for i in "${items[@]}"; do
        IFS=$'\t' read -r _ b _ <<<"$i"
        if [ "$b" = "$1" ]; then n=$((n + 1)); else kept+=("$i"); fi
    done
    items=("${kept[@]}")
    record FAIL "$1: $2; $(tests "$n") not run"
    skipped=$((skipped + n))
}

# Items need: the dagq programs and broker checks built, PostgreSQL, and
# each broker they use.
preflight() {
    local p src need_redis=0 need_kafka=0 i b why
    for p in dagq dagq-scheduler dagq-worker dagq-web; do
        [ -x "$T_BIN/$p" ] || { record FAIL "$T_BIN/$p not built (make san)"; items=(); }
    done
    shopt -s nullglob
    for src in tests/broker/check_*.c; do
        p=build/san/tests/$(basename "$src" .c)
        [ -x "$p" ] || record FAIL "$p not built (make san)"
    done
    shopt -u nullglob
    [ ${#items[@]} -gt 0 ] || return 0
    if [ -z "$(pg_bindir)" ]; then
        record FAIL "PostgreSQL server not installed (make deps); no integration test was run"
        skipped=$((skipped + ${#items[@]}))
        items=()
        return 0
    fi
    local need_pgb=0 k
    for i in "${items[@]}"; do
        IFS=$'\t' read -r k b _ <<<"$i"
        case $b in redis) need_redis=1 ;; kafka) need_kafka=1 ;; esac
        [ "$k" = pgbcase ] && need_pgb=1
    done
    if [ $need_pgb = 1 ] && ! command -v pgbouncer >/dev/null; then
        record FAIL "pgbouncer not installed (make deps); the cases through PgBouncer cannot run"
    fi
    if [ $need_redis = 1 ] && ! command -v redis-server >/dev/null; then
        drop_items redis "redis-server not installed (make deps)"
    fi
    if [ $need_kafka = 1 ]; then
        why=""
        command -v "${JAVA:-java}" >/dev/null || why="java not installed (make deps)"
        command -v kcat >/dev/null || why="kcat not installed (make deps)"
        [ -n "$why" ] || kafka_fetch >&2 || why="cannot fetch the Kafka broker (tests/.kafka/fetch.log)"
        [ -z "$why" ] || drop_items kafka "$why"
    fi
}

# Orders items longest first: durations of earlier runs, else the committed
# estimate, else 10 s for a test neither knows. Writes $T_RUN/queue.
write_queue() {
    local dur=tests/.run/durations seed=tests/durations.txt
    [ -f "$dur" ] || dur=/dev/null
    [ -f "$seed" ] || seed=/dev/null
    printf '%s\n' "${items[@]}" >"$T_RUN/items"
    awk -F'\t' -v OFS='\t' -v items="$T_RUN/items" '
        FILENAME != items { if ($0 !~ /^#/ && NF == 2) est[$2] = $1; next }
        { print ($5 in est ? est[$5] : 10), FNR, $0 }' "$seed" "$dur" "$T_RUN/items" |
        sort -t$'\t' -k1,1gr -k2,2n | cut -f3- >"$T_RUN/queue"
    echo 0 >"$T_RUN/next"
    : >"$T_RUN/results"
}

# Keeps the measured durations for the next run's order.
save_durations() {
    mkdir -p tests/.run
    awk -F'\t' -v OFS='\t' '
        FILENAME ~ /results$/ { if ($1 != "skip") d[$3] = $2; next }
        NF == 2 { d[$2] = $1 }
        END { for (n in d) print d[n], n }' \
        "$( [ -f tests/.run/durations ] && echo tests/.run/durations || echo /dev/null)" "$T_RUN/results" |
        sort -t$'\t' -k2 >tests/.run/durations.new && mv tests/.run/durations.new tests/.run/durations
}

lane_pids=()
T_RUN=""
run_cleanup() {
    local p deadline
    [ -n "$T_RUN" ] || return 0
    for p in "${lane_pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
    deadline=$((SECONDS + 30))
    for p in "${lane_pids[@]}"; do
        while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    done
    for p in "${lane_pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
    t_sweep "$T_RUN"
    if [ -n "${T_KEEP:-}" ] || { [ -n "${T_KEEP_FAILED:-}" ] && [ "$failed" -gt 0 ]; }; then
        echo "kept $T_RUN" >&2
    else
        rm -rf "$T_RUN"
    fi
}

run_integration() {
    local i n lane base span=400 nblocks=55 first nres
    T_RUN=$(mktemp -d /tmp/dagq-test.XXXXXX) || exit 1
    chmod 755 "$T_RUN" # PostgreSQL runs as postgres when we are root
    trap run_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    T_ROOT=$T_RUN . tests/lib.sh
    collect_items
    for p in "${filter[@]}"; do
        [ -n "${matched[$p]:-}" ] || record FAIL "no test matches \"$p\""
    done
    [ ${#filter[@]} -gt 0 ] || [ ${#items[@]} -gt 0 ] || [ ${#skips[@]} -gt 0 ] ||
        record FAIL "no integration test found in tests/integration/*.sh"
    for b in $all_brokers; do
        [ "${skips[$b]:-0}" -gt 0 ] &&
            record skip "$b: $(tests "${skips[$b]}") not run (DAGQ_TEST_BROKERS=\"$brokers\")" "${skips[$b]}"
    done
    preflight
    n=${#items[@]}
    [ "$n" -gt 0 ] || return 0
    write_queue
    lane=$((jobs < n ? jobs : n))
    echo "integration: $(tests "$n") in $lane lane$([ "$lane" -eq 1 ] || echo s) (DAGQ_TEST_JOBS=$jobs)"
    # each lane's ports: a block of its own below the ephemeral range (32768)
    first=$((RANDOM % nblocks))
    for i in $(seq "$lane"); do
        base=$((10000 + (first + i - 1) % nblocks * span))
        T_RUN=$T_RUN T_RUN_PID=$$ T_PORT_BASE=$base T_PORT_SPAN=$span \
            setsid bash tests/lane.sh "$i" 2>>"$T_RUN/lane$i.log" &
        lane_pids+=($!)
    done
    for i in "${lane_pids[@]}"; do wait "$i"; done
    # count what the lanes reported
    while IFS=$'\t' read -r st _ name; do
        case $st in
        ok) passed=$((passed + 1)) ;;
        *) failed=$((failed + 1)); failed_names+=("$name") ;;
        esac
    done <"$T_RUN/results"
    nres=$(wc -l <"$T_RUN/results")
    if [ "$nres" -ne "$n" ]; then
        record FAIL "$((n - nres)) of $n integration tests reported no result (a lane died?)"
        tail -n 20 "$T_RUN"/lane*.log | sed 's/^/    /'
    fi
    save_durations
}

if [ "$what" = unit ] || [ "$what" = all ]; then run_units; fi
if [ "$what" = integration ] || [ "$what" = all ]; then run_integration; fi

echo
if [ $failed -gt 0 ]; then printf 'failed: %s\n' "${failed_names[@]}"; fi
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
