#!/usr/bin/env bash
# tests/run.sh [unit|integration|all] [CASE...]
# Runs the unit tests, then every integration case against real PostgreSQL
# and each broker (DAGQ_TEST_BROKERS, default "redis kafka"). Servers are
# started once on private ports and torn down at the end; each case gets a
# fresh database and queue prefix. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
what=${1:-all}
shift || true
filter=("$@")
passed=0
failed=0
failed_names=()

record() { # name rc
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1)); echo "ok   $1"
    else
        failed=$((failed + 1)); failed_names+=("$1"); echo "FAIL $1"
    fi
}

if [ "$what" = unit ] || [ "$what" = all ]; then
    for t in build/san/tests/test_*; do
        [ -x "$t" ] || continue
        out=$("$t" 2>&1); rc=$?
        echo "$out" | grep -E '^(FAIL|.*:[0-9]+: )' || true
        record "unit/$(basename "$t") ($(echo "$out" | tail -1))" $rc
    done
fi

if [ "$what" = integration ] || [ "$what" = all ]; then
    . tests/lib.sh
    . tests/itest.sh
    trap t_cleanup EXIT
    trap "exit 130" INT TERM
    pg_start || { echo "cannot start PostgreSQL"; exit 1; }
    brokers=${DAGQ_TEST_BROKERS:-redis kafka}
    for b in $brokers; do
        case $b in
        redis) redis_start || { echo "cannot start Redis"; exit 1; } ;;
        kafka) kafka_fetch && kafka_start || { echo "cannot start Kafka"; exit 1; } ;;
        esac
    done
    # cases: functions named case_* in tests/integration/*.sh; a file may
    # declare BROKERS="redis" when it is about one broker only
    n=0
    for f in tests/integration/*.sh; do
        cases=$(grep -oE '^case_[A-Za-z0-9_]+\(\)' "$f" | tr -d '()' || true)
        file_brokers=$(grep -m1 '^# brokers:' "$f" | sed 's/^# brokers://')
        for b in $brokers; do
            if [ -n "$file_brokers" ] && ! echo " $file_brokers " | grep -q " $b "; then continue; fi
            for c in $cases; do
                name="$b/$(basename "$f" .sh)/${c#case_}"
                if [ ${#filter[@]} -gt 0 ]; then
                    m=0; for p in "${filter[@]}"; do case $name in *$p*) m=1 ;; esac; done
                    [ $m -eq 1 ] || continue
                fi
                n=$((n + 1))
                export T_CASE="$T_ROOT/cases/$n-${c#case_}-$b"
                mkdir -p "$T_CASE"
                db=$(pg_new_db "t$n") || { record "$name" 1; continue; }
                start_s=$SECONDS
                (
                    trap 'for p in "${P_PID[@]}"; do kill -9 "$p" 2>/dev/null; done' EXIT
                    export DAGQ_DATABASE_URL=$db T_BROKER=$b
                    export DAGQ_REDIS_PREFIX="t$n:" DAGQ_KAFKA_TOPIC_PREFIX="t$n."
                    if [ "$b" = redis ]; then export DAGQ_BROKER_URL=$REDIS_URL; else export DAGQ_BROKER_URL=$KAFKA_URL; fi
                    "$T_BIN/dagq" db migrate >"$T_CASE/migrate.log" 2>&1 || { cat "$T_CASE/migrate.log"; exit 1; }
                    . "$f"
                    "$c"
                    stop_all
                    check_logs
                    exit $((T_FAILS > 0))
                ) >"$T_CASE/case.out" 2>&1
                rc=$?
                [ $rc -ne 0 ] && sed 's/^/    /' "$T_CASE/case.out" | tail -40
                record "$name ($((SECONDS - start_s))s)" $rc
                if [ $rc -ne 0 ] && [ -n "${T_KEEP_FAILED:-}" ]; then T_KEEP=1; fi
            done
        done
    done
fi

# Standalone test scripts start their own servers.
if [ "$what" = integration ] || [ "$what" = all ]; then
    standalone=(tests/cli_test.sh tests/compose_test.sh)
    case " ${DAGQ_TEST_BROKERS:-redis kafka} " in *" kafka "*) standalone+=(tests/kafka_restart_check.sh) ;; esac
    for t in "${standalone[@]}"; do
        if [ ${#filter[@]} -gt 0 ]; then
            m=0; for p in "${filter[@]}"; do case $t in *$p*) m=1 ;; esac; done
            [ $m -eq 1 ] || continue
        fi
        start_s=$SECONDS
        out=$(env -u T_ROOT -u REDIS_PORT -u REDIS_DIR -u PG_PORT -u PG_DIR bash "$t" 2>&1); rc=$?
        [ $rc -ne 0 ] && echo "$out" | tail -40 | sed 's/^/    /'
        record "$(basename "$t" .sh) ($((SECONDS - start_s))s)" $rc
    done
fi

echo
if [ $failed -gt 0 ]; then printf 'failed: %s\n' "${failed_names[@]}"; fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
