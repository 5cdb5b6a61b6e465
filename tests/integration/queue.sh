# The queue interface itself against the live broker (tests/broker/check_queue.c).

case_queue_conformance() {
    env -u DAGQ_CHECK_RESTART "$T_REPO/build/san/tests/check_queue" >"$T_CASE/check.log" 2>&1 || { tail -30 "$T_CASE/check.log"; fail "check_queue"; }
    tail -1 "$T_CASE/check.log"
    grep -qE '^[1-9][0-9]* passed, 0 failed$' "$T_CASE/check.log" || fail "check_queue ran no check"
}

# The same producer and consumer survive a broker killed with -9 and
# restarted: errors meanwhile are only "unreachable", nothing flushed is lost.
case_queue_survives_broker_restart() {
    DAGQ_CHECK_RESTART=$T_CASE/restarted "$T_REPO/build/san/tests/check_queue" >"$T_CASE/restart.log" 2>&1 &
    local pid=$!
    T_WAIT=60 t_wait_for grep -q '^restart now' "$T_CASE/restart.log" || fail "check never got ready"
    if [ "$T_BROKER" = redis ]; then redis_restart; else kafka_restart; fi || fail "broker restart"
    touch "$T_CASE/restarted"
    wait $pid || { tail -20 "$T_CASE/restart.log"; fail "check_queue restart mode"; }
    grep -q '^ok.* survives_broker_restart' "$T_CASE/restart.log" || fail "check_queue did not check the restart"
}
