# The ETL features' SQL side, with no scheduler or broker: the database's
# evaluation of schedules agrees with the scheduler's, definitions that
# cannot work are rejected naming the problem, and operator functions check
# who calls them.
# brokers: redis

sqlf() { psql -X -q -At -v ON_ERROR_STOP=1 -v T="$T_CASE" "$DAGQ_DATABASE_URL" -f -; }

case_sql_schedule_evaluation_agrees_with_cron_next() {
    bash tests/cron_next_check.sh "$DAGQ_DATABASE_URL" || fail "dagq.schedule_next / dagq.cron_fires disagree with cron_next"
}
