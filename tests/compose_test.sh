#!/usr/bin/env bash
# tests/compose_test.sh [FILTER...] — docker/docker-compose.yml run for real,
# on each broker of DAGQ_TEST_BROKERS (default "redis kafka"): the cases of
# tests/compose/cases.sh (those whose name "compose/BROKER/CASE" contains a
# FILTER, when given), each on the real compose file with real images or,
# where no registry answers, stand-ins built under their names
# (tests/compose/images.sh), on podman as root (tests/compose/engine.sh;
# DAGQ_COMPOSE_ENGINE=docker for a Docker engine instead).
#
# Prints "ok"/"FAIL" per case, with the failures' details, then
# "N passed, N failed"; exits 0 only when every case passed. A machine where
# the engine cannot run fails here, saying why. The stack, the podman API
# service and every container are torn down at the end, on failure or
# Ctrl-C too; images and layers stay in the cache ($DAGQ_COMPOSE_CACHE,
# default /var/tmp/dagq-compose-cache), with the logs of the containers of
# the last run's failed cases under its logs/ (DAGQ_COMPOSE_KEEP=1 keeps
# the run's own directory as well).
set -u
T_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ce_log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
. "$T_REPO/tests/compose/engine.sh"
. "$T_REPO/tests/compose/images.sh"
. "$T_REPO/tests/compose/stack.sh"
. "$T_REPO/tests/compose/cases.sh"

brokers=${DAGQ_TEST_BROKERS:-redis kafka}

# ---- inside the namespaces --------------------------------------------------

# The stacks of the brokers run side by side (DAGQ_COMPOSE_PARALLEL=0: one
# after the other), each its own compose project, the schedulers of the
# n-th published on 9090 + 10000 n and 9092 + 10000 n, its dagq-web on
# 8080 + 10000 n; both use the secrets cs_secrets made for the run.
cs_use_broker() { # BROKER
    local i=0 b
    for b in $brokers; do
        [ "$b" = "$1" ] && break
        i=$((i + 1))
    done
    export DAGQ_COMPOSE_LEDGER="$CE_RUN/ledger-$1"
    cs_use "$1" "${DAGQ_COMPOSE_PROJECT:-dagqtest}_$1" $((9090 + 10000 * i)) $((9092 + 10000 * i)) \
        $((8080 + 10000 * i))
}

stack_teardown() {
    trap '' INT TERM
    ce_pump_stop
    if [ -n "${CE_COMPOSE:-}" ]; then
        local b pids=()
        for b in $brokers; do
            (
                cs_use_broker "$b"
                cs_use kafka "$CS_PROJECT" "$CS_PORT1" "$CS_PORT2" "$CS_WEB_PORT" # the profile naming every service
                cs_down || ce_log "compose down ($b) failed: $(tail -3 "$CE_RUN/compose.log")"
            ) &
            pids+=($!)
        done
        wait "${pids[@]}"
    fi
    ce_forget
    ce_service_stop
}

# run_broker BROKER FILTER...: the cases on BROKER's stack. Prints a line
# per case; the failures' details go to $CE_RUN/details-BROKER, the counts
# to $CE_RUN/counts-BROKER.
run_broker() {
    local b=$1 cases c name m p rc t0 out passed=0 failed=0
    shift
    cs_use_broker "$b"
    mkdir -p "$DAGQ_COMPOSE_LEDGER"
    chmod 1777 "$DAGQ_COMPOSE_LEDGER" # the workers run as the image's user dagq
    : >"$CE_RUN/details-$b"
    cases=$(grep -oE '^case_[A-Za-z0-9_]+\(\)' "$T_REPO/tests/compose/cases.sh" | tr -d '()')
    for c in $cases; do
        name="compose/$b/${c#case_}"
        if [ $# -gt 0 ]; then
            m=0
            for p in "$@"; do case $name in *$p*) m=1 ;; esac; done
            [ $m -eq 1 ] || continue
        fi
        out="$CE_RUN/cases/$b-${c#case_}.out"
        t0=$SECONDS
        (
            CS_FAILS=0
            "$c"
            exit $((CS_FAILS > 0))
        ) >"$out" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            passed=$((passed + 1))
            echo "ok   $name ($((SECONDS - t0))s)"
        else
            failed=$((failed + 1))
            echo "FAIL $name ($((SECONDS - t0))s)"
            cs_save_logs "$CE_CACHE/logs/$b-${c#case_}"
            {
                echo "FAIL $name:"
                sed 's/^/    /' "$out" | tail -25
                echo "    (the containers' logs: $CE_CACHE/logs/$b-${c#case_}/)"
            } >>"$CE_RUN/details-$b"
        fi
    done
    cs_down || ce_log "compose down ($b) failed: $(tail -3 "$CE_RUN/compose.log")"
    echo "$passed $failed" >"$CE_RUN/counts-$b"
}

# run_cases FILTER...: every case on every broker.
run_cases() {
    trap stack_teardown EXIT
    trap 'exit 130' INT TERM
    rm -rf "$CE_CACHE/logs"
    ce_forget
    ce_service_start || exit 1
    ce_pump_start
    cs_secrets || { echo "docker/make-secrets.sh failed" >&2; exit 1; }
    mkdir -p "$CE_RUN/cases"
    local b pids=()
    for b in $brokers; do
        if [ "${DAGQ_COMPOSE_PARALLEL:-1}" = 0 ]; then
            run_broker "$b" "$@"
        else
            run_broker "$b" "$@" &
            pids+=($!)
        fi
    done
    [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
    for b in $brokers; do cat "$CE_RUN/details-$b" 2>/dev/null; done
}

case ${1:-} in
__images) ci_prepare "$2"; exit ;;
__run) shift 2; run_cases "$@"; exit ;;
esac

# ---- on the host ------------------------------------------------------------

summary() { # PASSED FAILED
    echo
    echo "$1 passed, $2 failed"
}

t0=$SECONDS
ce_drive "$T_REPO/tests/compose_test.sh" "$brokers" "$@"
rc=$?
case $rc in
2) echo "FAIL compose: the compose tests cannot run on this machine (above)" ;;
3) echo "FAIL compose: the images (above)" ;;
130) exit 130 ;;
esac
passed=0
failed=0
for b in $brokers; do
    if [ -n "${CE_RUN:-}" ] && read -r p f 2>/dev/null <"$CE_RUN/counts-$b"; then
        passed=$((passed + p))
        failed=$((failed + f))
    else
        [ $rc -eq 2 ] || [ $rc -eq 3 ] ||
            echo "FAIL compose/$b: its cases did not all run (the stack's namespace ended with status $rc)"
        failed=$((failed + 1))
    fi
done
ce_log "compose: $((SECONDS - t0)) s in all"
summary "$passed" "$failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
