#!/usr/bin/env bash
# Kafka broker restart: check_kafka's broker_restart check, with this script
# killing the broker (kill -9) and starting it again on the same port and data
# while the check's producer and consumer stay open. Messages pushed before
# the crash and during the outage all reach the consumer afterwards; a flush
# during the outage is QUEUE_ECONN; nothing crashes.
#
#   bash tests/kafka_restart_check.sh        (after make build/san/tests/check_kafka)
# CHECK_KAFKA names another binary; TEST_PREFIX wraps it (e.g. "valgrind -q").
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap t_cleanup EXIT

check=${CHECK_KAFKA:-$T_REPO/build/san/tests/check_kafka}
[ -x "$check" ] || { echo "kafka_restart_check: $check not built" >&2; exit 1; }
kafka_start || exit 1

sync_dir="$T_ROOT/restart-sync"
mkdir -p "$sync_dir"
# shellcheck disable=SC2086
DAGQ_BROKER_URL=$KAFKA_URL DAGQ_CHECK_KAFKA_SYNC_DIR=$sync_dir DAGQ_CHECK_KAFKA_ONLY=broker_restart \
    ${TEST_PREFIX:-} "$check" >"$T_ROOT/check.out" 2>&1 &
pid=$!

step() { # waits for the check to write $1, unless it ended
    local deadline=$((SECONDS + 120))
    until [ -e "$sync_dir/$1" ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < deadline)) || { echo "kafka_restart_check: no $1 from the check" >&2; return 1; }
        sleep 0.1
    done
}

if step ready; then
    kafka_kill
    t_log "kafka: broker killed (kill -9)"
    touch "$sync_dir/killed"
    if step down-checked; then
        t0=$SECONDS
        kafka_restart || { kill "$pid"; exit 1; }
        t_log "kafka: broker restarted in $((SECONDS - t0)) s"
        touch "$sync_dir/restarted"
    fi
fi
wait "$pid"
rc=$?
cat "$T_ROOT/check.out"
# a check that did not run is no pass (DAGQ_CHECK_KAFKA_ONLY names it)
grep -q '^ok.* broker_restart ' "$T_ROOT/check.out" || { echo "kafka_restart_check: broker_restart did not pass" >&2; rc=1; }
exit $rc
