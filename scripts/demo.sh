#!/usr/bin/env bash
# make demo: starts a private PostgreSQL and Redis, migrates, loads the
# example ETL DAG with SQL, runs a scheduler and two workers, triggers the
# DAG, prints the finished run, starts dagq-web and prints its URL and a
# viewer token, and tears everything down (after Enter, when run from a
# terminal, so the UI can be looked at first).
set -euo pipefail
cd "$(dirname "$0")/.."
export T_BIN="$PWD/bin"
. tests/lib.sh
trap t_cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting a private PostgreSQL and Redis"
pg_start
redis_start
DAGQ_DATABASE_URL=$(pg_new_db demo)
export DAGQ_DATABASE_URL DAGQ_BROKER_URL=$REDIS_URL
echo "DAGQ_DATABASE_URL=$DAGQ_DATABASE_URL"
echo "DAGQ_BROKER_URL=${DAGQ_BROKER_URL/$REDIS_PASSWORD/***}"

say "dagq db migrate"
bin/dagq db migrate

say "loading examples/etl_daily.sql with psql"
psql -X -q -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" -f examples/etl_daily.sql
psql -X -q -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" \
    -c "UPDATE dagq.dag SET params = params || jsonb_build_object('workdir', '$T_ROOT/work'), owner = NULL WHERE dag_id = 'etl_daily'"
bin/dagq dags

say "login roles for the programs, each with only what it needs (README: Security)"
# (pg_login_roles makes t_scheduler, t_worker, ... for the tests; the demo
# shows the statements an operator would run)
for r in scheduler:dagq_scheduler worker:dagq_worker web:dagq_web; do
    psql -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_${r%%:*}') THEN
            CREATE ROLE demo_${r%%:*} LOGIN IN ROLE ${r#*:}; END IF; END \$\$;
        ALTER ROLE demo_${r%%:*} PASSWORD 'demo-${r%%:*}-$T_SECRET'" >/dev/null
    echo "CREATE ROLE demo_${r%%:*} LOGIN PASSWORD '...' IN ROLE ${r#*:};"
done
as_url() { echo "${DAGQ_DATABASE_URL/\/\/dagq@/\/\/demo_$1:demo-$1-$T_SECRET@}"; }

say "starting dagq-scheduler and two dagq-workers"
LOGS=$T_ROOT/logs
mkdir -p "$LOGS"
DAGQ_DATABASE_URL=$(as_url scheduler) bin/dagq-scheduler >"$LOGS/scheduler.log" 2>&1 &
T_PIDS+=($!)
DAGQ_DATABASE_URL=$(as_url worker) bin/dagq-worker --name worker-1 --slots 2 >"$LOGS/worker-1.log" 2>&1 &
T_PIDS+=($!)
DAGQ_DATABASE_URL=$(as_url worker) bin/dagq-worker --name worker-2 --slots 2 >"$LOGS/worker-2.log" 2>&1 &
T_PIDS+=($!)

say "starting dagq-web (the UI and the REST API)"
WEB_PORT=$(t_free_port)
DAGQ_DATABASE_URL=$(as_url web) bin/dagq-web --http-port "$WEB_PORT" \
    >"$LOGS/web.log" 2>&1 &
T_PIDS+=($!)
T_WAIT=20 t_wait_for curl -sf "http://127.0.0.1:$WEB_PORT/api/v1/health" || { cat "$LOGS/web.log"; exit 1; }
VIEWER=$(bin/dagq tokens create --name demo-viewer --role viewer --expires 1d | tail -1)
OPERATOR=$(bin/dagq tokens create --name demo-operator --role operator --expires 1d | tail -1)

say "dagq trigger etl_daily"
RUN=$(bin/dagq trigger etl_daily --logical-date 2024-06-01T00:00:00Z)
echo "run $RUN"
for _ in $(seq 600); do
    st=$(psql -X -At "$DAGQ_DATABASE_URL" -c "SELECT state FROM dagq.dag_run WHERE run_id = $RUN")
    case $st in success | failed) break ;; esac
    sleep 0.1
done

say "dagq runs"
bin/dagq runs
say "dagq tasks $RUN"
bin/dagq tasks "$RUN"
say "dagq logs $RUN report"
bin/dagq logs "$RUN" report
say "dagq workers"
bin/dagq workers
say "dagq-web"
curl -sf -H "Authorization: Bearer $VIEWER" "http://127.0.0.1:$WEB_PORT/api/v1/dags/etl_daily/grid" >/dev/null &&
    echo "the grid of etl_daily is served"
echo "web UI: http://127.0.0.1:$WEB_PORT/"
echo "viewer token: $VIEWER"
echo "operator token: $OPERATOR"
if [ -t 0 ]; then read -r -p "press Enter to stop the demo " _ || true; fi

for p in "${T_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${T_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
T_PIDS=()
[ "$st" = success ] || { echo "the run ended $st; logs in $LOGS"; T_KEEP=1; exit 1; }
say "the run succeeded; logs were in $LOGS (removed now)"
