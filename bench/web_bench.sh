#!/usr/bin/env bash
# bench/web_bench.sh — dagq-web at size (run by `make bench` via bench/run.sh):
# a DAG of $WEB_TASKS tasks with $WEB_RUNS finished runs, $WEB_HIST_TI
# finished task instances of history in all (each with its try), inserted
# set-based. Measures the grid endpoint (time, size), the runs-list and
# task-list endpoints (p50/p99 over $WEB_REQS requests each) and the time
# until the grid is rendered in headless Chromium (tests/web/browser.py).
# The release dagq-web in bin/, 8 threads. Prints a markdown table.
set -u
B_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$B_DIR/.." && pwd)
export T_BIN="${T_BIN:-$REPO/bin}"
# shellcheck source=../tests/lib.sh
. "$REPO/tests/lib.sh"
: "${WEB_TASKS:=2000}" "${WEB_RUNS:=25}" "${WEB_HIST_TI:=1000000}" "${WEB_REQS:=200}"
trap t_cleanup EXIT
trap 'exit 130' INT TERM
[ -x "$T_BIN/dagq-web" ] || { echo "web_bench: $T_BIN/dagq-web missing (make all)" >&2; exit 1; }
PY=$(bash "$REPO/tests/web/setup.sh") || exit 1

pg_start || exit 1
DB=$(pg_new_db webbench) || exit 1
"$T_BIN/dagq" --database-url "$DB" db migrate >/dev/null || exit 1
psql -X -q "$PG_ADMIN_URL" -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dagq_web_login')
    THEN CREATE ROLE dagq_web_login LOGIN IN ROLE dagq_web; END IF; END \$\$" \
    -c "ALTER ROLE dagq_web_login PASSWORD 'web-bench'" >/dev/null # roles other than dagq log in with one
runs_total=$(( WEB_HIST_TI / WEB_TASKS ))
[ "$runs_total" -ge "$WEB_RUNS" ] || runs_total=$WEB_RUNS
t_log "web bench: $WEB_TASKS tasks, $runs_total finished runs ($((runs_total * WEB_TASKS)) task instances, each with a try)"
t0=$SECONDS
psql -X -q -v ON_ERROR_STOP=1 -v n="$WEB_TASKS" -v runs="$runs_total" "$DB" -f "$B_DIR/web_history.sql" >/dev/null || exit 1
t_log "web bench: history inserted in $((SECONDS - t0)) s"
TOKEN=$("$T_BIN/dagq" --database-url "$DB" tokens create --name bench --role viewer | tail -1)
PORT=$(t_free_port)
"$T_BIN/dagq-web" --database-url "${DB/\/\/dagq@/\/\/dagq_web_login:web-bench@}" --http-port "$PORT" --log-level warn \
    >"$T_ROOT/web.log" 2>&1 &
T_PIDS+=($!)
T_WAIT=20 t_wait_for curl -sf "http://127.0.0.1:$PORT/api/v1/health" || { cat "$T_ROOT/web.log"; exit 1; }
RUN=$(psql -X -At "$DB" -c "SELECT max(run_id) FROM dagq.dag_run")
WEB_URL="http://127.0.0.1:$PORT/" TOKEN_VIEWER=$TOKEN RUN_ID=$RUN WEB_REQS=$WEB_REQS WEB_RUNS=$WEB_RUNS \
    HIST="$((runs_total * WEB_TASKS))" TASKS=$WEB_TASKS PYTHONPATH="$REPO/tests/web" "$PY" "$B_DIR/web_bench.py"
rc=$?
kill -TERM "${T_PIDS[-1]}" 2>/dev/null
wait "${T_PIDS[-1]}" 2>/dev/null
T_PIDS=()
exit $rc
