# tests/etl_lib.sh — helpers of the ETL feature cases (tests/integration/
# backfill.sh, deps.sh, actions.sh, schedules.sh, etl_sql.sh), sourced by
# them after tests/itest.sh.

# psql with the case folder as :'T', SQL from stdin
sqlf() { psql -X -q -At -v ON_ERROR_STOP=1 -v T="$T_CASE" "$DAGQ_DATABASE_URL" -f -; }

# hold NAME SECONDS SQL: runs SQL in its own session inside BEGIN ... COMMIT,
# pausing SECONDS before the COMMIT; returns once the session sits in that
# pause (its locks held). Its pid is in HOLD_PID, its output in NAME.out.
# (tests/integration/state.sh's, for interleaving two sessions.)
hold() {
    local name=$1 secs=$2 q=$3
    PGAPPNAME=$name psql -X -q -At -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" \
        -c "BEGIN; $q; SELECT pg_sleep($secs); COMMIT;" >"$T_CASE/$name.out" 2>&1 &
    HOLD_PID=$!
    wait_until 10 "SELECT count(*) FROM pg_stat_activity
        WHERE application_name = '$name' AND wait_event = 'PgSleep'" 1
}

# max_overlap 'WHERE clause on dagq.dag_run r': the most runs that were
# running at one instant, from the database's own timestamps (at each
# start, the runs whose [started_at, ended_at) covers it)
max_overlap() {
    sql "SELECT COALESCE(max(n), 0) FROM (SELECT (SELECT count(*) FROM dagq.dag_run o
            WHERE o.run_id IN (SELECT r.run_id FROM dagq.dag_run r $1)
              AND o.started_at <= t.started_at AND COALESCE(o.ended_at, 'infinity') > t.started_at) AS n
          FROM dagq.dag_run t WHERE t.run_id IN (SELECT r.run_id FROM dagq.dag_run r $1)
            AND t.started_at IS NOT NULL) x"
}

# wait_backfill ID [TIMEOUT_S]: until the backfill is no longer running;
# prints its state
wait_backfill() {
    local id=$1 timeout=${2:-120} st=""
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        st=$(sql "SELECT state FROM dagq.backfill WHERE backfill_id = $id")
        [ "$st" = running ] || { echo "$st"; return 0; }
        sleep 0.3
    done
    echo "timeout($st)"
    return 1
}

# login_url ROLE: the case's database as a login role of login_role
login_url() { echo "postgresql://$1:$1-$T_SECRET@127.0.0.1:$PG_PORT/${DAGQ_DATABASE_URL##*/}"; }

# as_role ROLE SQL...: psql as a login role of the case's cluster
as_role() {
    local role=$1
    shift
    psql -X -q -At -v ON_ERROR_STOP=1 "$(login_url "$role")" "$@"
}

# login_role NAME GROUP...: a login role (created once per cluster, its
# password NAME-$T_SECRET) in the groups
login_role() {
    local name=$1 g
    shift
    sql "DO \$\$ BEGIN CREATE ROLE \"$name\" LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" >/dev/null
    sql "ALTER ROLE \"$name\" PASSWORD '$name-$T_SECRET'" >/dev/null
    for g in "$@"; do sql "GRANT \"$g\" TO \"$name\"" >/dev/null; done
}
