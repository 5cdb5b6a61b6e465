# Kafka-specific behaviour of the queue (tests/broker/check_kafka.c): topic
# creation with the configured partitions, property pass-through, paused
# partitions of a busy worker keeping its group membership, a joining
# consumer taking partitions at once, dead letters with their reason.
# brokers: kafka

case_kafka_checks() {
    # every check: DAGQ_CHECK_KAFKA_ONLY would run one and pass with the
    # others unrun (broker_restart is tests/kafka_restart_check.sh's)
    env -u DAGQ_CHECK_KAFKA_ONLY -u DAGQ_CHECK_KAFKA_SYNC_DIR "$T_REPO/build/san/tests/check_kafka" \
        >"$T_CASE/check.log" 2>&1 || { tail -30 "$T_CASE/check.log"; fail "check_kafka"; }
    tail -1 "$T_CASE/check.log"
    grep -qE '^[1-9][0-9]* passed, 0 failed$' "$T_CASE/check.log" || fail "check_kafka ran no check"
}
