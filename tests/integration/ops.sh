# Operating dagq: /healthz and /metrics of both daemons, `dagq queues` and
# dagq.worker_group_backlog, scaling a worker pool in under load, and the
# docker-compose stack checked statically and run as plain processes.

# psql with the case folder as :'T', SQL from stdin
sqlf() { psql -X -q -At -v ON_ERROR_STOP=1 -v T="$T_CASE" "$DAGQ_DATABASE_URL" -f -; }

# metric PORT 'name{labels}': the sample's value, empty when absent
metric() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k { print $2 }'
}

# wait_metric TIMEOUT PORT 'name{labels}' VALUE
wait_metric() {
    local deadline=$((SECONDS + $1)) got=""
    while ((SECONDS < deadline)); do
        got=$(metric "$2" "$3")
        [ "$got" = "$4" ] && return 0
        sleep 0.2
    done
    fail "waited $1s for $3 = $4 on port $2, last [$got]"
    return 1
}

# http_status PORT PATH: the status code
http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$1$2"; }

# wait_status TIMEOUT PORT PATH CODE
wait_status() {
    local deadline=$((SECONDS + $1)) got=""
    while ((SECONDS < deadline)); do
        got=$(http_status "$2" "$3")
        [ "$got" = "$4" ] && return 0
        sleep 0.2
    done
    fail "waited $1s for GET $3 on port $2 to answer $4, last [$got]"
    return 1
}

case_metrics_move_while_a_dag_runs() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('wide');
INSERT INTO dagq.task (dag_id, task_id, command)
SELECT 'wide', 't' || i, 'sleep 0.5' FROM generate_series(1, 6) i;
SQL
    local sp wp
    sp=$(t_free_port)
    wp=$(t_free_port)
    start_scheduler sched --http-port "$sp"
    wait_status 20 "$sp" /healthz 200
    assert_eq 404 "$(http_status "$sp" /nothing)" "unknown path"
    local run
    run=$(sql "SELECT dagq.trigger_dag('wide')")
    # no worker yet: the backlog builds up on both sides
    wait_metric 20 "$sp" 'dagq_queue_backlog{group="default"}' 6
    wait_metric 10 "$sp" 'dagq_tries_queued{group="default"}' 6
    assert_eq 6 "$(metric "$sp" 'dagq_task_instances_total{group="default",state="queued"}')" \
        "queued counted by group"
    assert_eq "default|6|0|0|0" "$(sql "SELECT worker_group, queued, running, live_workers,
        free_slots FROM dagq.worker_group_backlog")" "the view while nothing consumes"
    local out
    out=$(env -u DAGQ_BROKER_URL "$T_BIN/dagq" queues)
    assert_contains "$out" "GROUP" "dagq queues header"
    assert_eq "default 6 0 - 0 0 0" "$(echo "$out" | awk 'NR == 2 { print $1, $2, $3, $4, $5, $6, $7 }')" \
        "dagq queues without a broker"
    out=$(env -u DAGQ_BROKER_URL "$T_BIN/dagq" queues --broker-url "$DAGQ_BROKER_URL")
    assert_eq "default 6 0 6 0 0 0" "$(echo "$out" | awk 'NR == 2 { print $1, $2, $3, $4, $5, $6, $7 }')" \
        "dagq queues with the broker's backlog"
    sleep 1.2
    local age
    age=$(metric "$sp" 'dagq_oldest_queued_try_age_seconds{group="default"}')
    assert_eq 1 "$(awk -v a="$age" 'BEGIN { print (a >= 1) }')" "oldest queued try ages ($age)"

    start_worker w1 --slots 2 --http-port "$wp"
    local busy=0 b deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        b=$(metric "$wp" 'dagq_worker_slots{state="busy"}')
        [ -n "$b" ] && [ "$b" -gt "$busy" ] && busy=$b
        case $(sql "SELECT state FROM dagq.dag_run WHERE run_id = $run") in success | failed) break ;; esac
        sleep 0.1
    done
    assert_eq success "$(wait_run "$run" 5)" "run state"
    assert_eq 2 "$busy" "busy slots reached the worker's slots"
    wait_metric 10 "$sp" 'dagq_queue_backlog{group="default"}' 0
    wait_metric 10 "$sp" 'dagq_tries_queued{group="default"}' 0
    wait_metric 10 "$sp" 'dagq_runs_finished_total{state="success"}' 1
    assert_eq 6 "$(metric "$wp" 'dagq_task_instances_total{group="default",state="running"}')" \
        "worker counted the claims"
    assert_eq 6 "$(metric "$wp" 'dagq_task_instances_total{group="default",state="success"}')" \
        "worker counted the successes"
    wait_metric 5 "$wp" 'dagq_worker_slots{state="free"}' 2
    wait_metric 5 "$sp" 'dagq_group_live_workers{group="default"}' 1
    local n page
    page=$(curl -s --max-time 5 "http://127.0.0.1:$sp/metrics") # one scrape: passes go on
    n=$(awk '$1 == "dagq_scheduler_loop_duration_seconds_count" { print $2 }' <<<"$page")
    assert_eq 1 "$([ -n "$n" ] && [ "$n" -gt 0 ] && echo 1)" "loop duration observed ($n passes)"
    assert_eq "$n" "$(awk '$1 == "dagq_scheduler_loop_duration_seconds_bucket{le=\"+Inf\"}" { print $2 }' <<<"$page")" \
        "histogram +Inf bucket equals its count"
    assert_eq 1 "$(metric "$wp" 'dagq_up{server="broker"}')" "worker reaches the broker"
    assert_eq 1 "$(metric "$sp" 'dagq_up{server="database"}')" "scheduler reaches the database"
    assert_contains "$(curl -s "http://127.0.0.1:$sp/metrics")" \
        "# TYPE dagq_scheduler_loop_duration_seconds histogram" "type lines"
}

case_healthz_fails_without_postgres_and_recovers() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('after');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('after', 'one', 'true');
SQL
    local sp wp
    sp=$(t_free_port)
    wp=$(t_free_port)
    start_scheduler sched --http-port "$sp" --health-timeout 2
    start_worker w1 --http-port "$wp" --health-timeout 2
    wait_status 20 "$sp" /healthz 200
    wait_status 20 "$wp" /healthz 200
    DAGQ_HTTP_PORT=$wp bash "$T_REPO/docker/healthcheck.sh" || fail "image health check: healthy worker"
    pg_kill
    wait_status 30 "$sp" /healthz 503
    wait_status 30 "$wp" /healthz 503
    assert_contains "$(curl -s "http://127.0.0.1:$sp/healthz")" "database unreachable" \
        "scheduler says why"
    assert_contains "$(curl -s "http://127.0.0.1:$wp/healthz")" "database unreachable" \
        "worker says why"
    # through PgBouncer the worker's connection stays up: its call waits in
    # PgBouncer's queue, and /healthz fails on that wait instead
    if [ -z "${T_PGBOUNCER:-}" ]; then
        assert_eq 0 "$(metric "$wp" 'dagq_up{server="database"}')" "worker: database down"
    fi
    DAGQ_HTTP_PORT=$wp bash "$T_REPO/docker/healthcheck.sh" && fail "image health check passes a 503"
    pg_restart || fail "PostgreSQL did not restart"
    wait_status 60 "$sp" /healthz 200
    wait_status 60 "$wp" /healthz 200
    wait_metric 10 "$sp" 'dagq_reconnects_total{server="database"}' 1
    [ -n "${T_PGBOUNCER:-}" ] || wait_metric 10 "$wp" 'dagq_reconnects_total{server="database"}' 1
    local run
    run=$(sql "SELECT dagq.trigger_dag('after')")
    assert_eq success "$(wait_run "$run" 60)" "a run after the outage"
}

case_healthz_fails_without_the_broker() {
    # a broker address nothing answers on: the shared broker stays untouched
    local dead sp wp url
    dead=$(t_free_port)
    sp=$(t_free_port)
    wp=$(t_free_port)
    if [ "$T_BROKER" = redis ]; then url="redis://127.0.0.1:$dead/0"; else url="kafka://127.0.0.1:$dead"; fi
    start_scheduler sched --http-port "$sp" --health-timeout 1 --broker-url "$url"
    start_worker w1 --http-port "$wp" --health-timeout 1 --broker-url "$url"
    wait_status 30 "$sp" /healthz 503
    wait_status 30 "$wp" /healthz 503
    assert_contains "$(curl -s "http://127.0.0.1:$sp/healthz")" "broker unreachable" "scheduler says why"
    assert_contains "$(curl -s "http://127.0.0.1:$wp/healthz")" "broker unreachable" "worker says why"
    assert_eq 1 "$(metric "$wp" 'dagq_up{server="database"}')" "worker still reaches the database"
    assert_eq 0 "$(metric "$wp" 'dagq_up{server="broker"}')" "worker: broker down"
}

case_scaling_in_a_worker_under_load_loses_no_try_and_runs_none_twice() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('load', 32);
INSERT INTO dagq.task (dag_id, task_id, command)
SELECT 'load', 't' || i,
       'echo "$DAGQ_TASK_ID $DAGQ_TRY_NUMBER $DAGQ_WORKER" >> ' || :'T' || '/started; sleep 1.5; '
       || 'echo "$DAGQ_TASK_ID" >> ' || :'T' || '/done'
  FROM generate_series(1, 24) i;
SQL
    start_scheduler sched --queued-timeout 5
    start_worker w1 --slots 4 --drain-timeout 30
    start_worker w2 --slots 4 --reclaim-idle-ms 2000
    local run
    run=$(sql "SELECT dagq.trigger_dag('load')")
    wait_until 30 "SELECT count(*) > 0 FROM dagq.task_instance WHERE worker_id = 'w1' AND state = 'running'" t
    stop w1 # SIGTERM: drains, exits 0 (checked by stop)
    assert_eq gone "$(sql "SELECT state FROM dagq.worker WHERE worker_id = 'w1'")" "w1 said goodbye"
    assert_eq success "$(wait_run "$run" 120)" "run state"
    assert_eq 24 "$(sort -u "$T_CASE/done" | wc -l)" "every task finished"
    assert_eq 24 "$(wc -l <"$T_CASE/done")" "no task finished twice"
    assert_eq 24 "$(wc -l <"$T_CASE/started")" "no task started twice"
    assert_eq "24|24" "$(sql "SELECT count(*), count(*) FILTER (WHERE t.state = 'success')
        FROM dagq.task_try t JOIN dagq.task_instance i USING (ti_id) WHERE i.run_id = $run")" \
        "one successful try per task"
    local w1n
    w1n=$(grep -c ' w1$' "$T_CASE/started")
    assert_eq 1 "$([ "$w1n" -gt 0 ] && [ "$w1n" -lt 24 ] && echo 1)" "both workers ran tasks (w1: $w1n)"
    assert_contains "$(cat "$T_CASE/w1.log")" "draining" "w1 drained"
}

# ---- the docker-compose stack, without a Docker engine ---------------------------

T_COMPOSE="$T_REPO/docker/docker-compose.yml"

# compose_query SERVICE WHAT: from the resolved compose file (docker-compose
# config, the case's own DAGQ_* variables kept out of the substitution; made
# once a case), WHAT = env: KEY=VALUE lines; command: one word a line; dagq:
# the services built from the dagq image, one a line.
compose_query() {
    [ -s "$T_CASE/compose.resolved" ] ||
        env -u DAGQ_BROKER_URL -u DAGQ_DATABASE_URL -u DAGQ_SECRETS -u BROKER \
            docker-compose -f "$T_COMPOSE" --profile kafka config >"$T_CASE/compose.resolved" || return 1
    python3 -c '
import sys, yaml
svc, what = sys.argv[1], sys.argv[2]
services = yaml.safe_load(sys.stdin)["services"]
if what == "dagq":
    for name, s in services.items():
        if "build" in s:
            print(name)
    sys.exit(0)
s = services[svc]
if what == "env":
    env = s.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    for k, v in env.items():
        print("%s=%s" % (k, v))
elif what == "command":
    cmd = s.get("command") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    print("\n".join(cmd))
else:
    print(s.get(what, ""))
' "$1" "$2" <"$T_CASE/compose.resolved"
}

case_compose_file_parses_and_uses_only_known_settings() {
    docker-compose -f "$T_COMPOSE" config -q 2>"$T_CASE/compose.err" ||
        fail "docker-compose config: $(cat "$T_CASE/compose.err")"
    docker-compose -f "$T_COMPOSE" --profile kafka config -q 2>"$T_CASE/compose.err" ||
        fail "docker-compose --profile kafka config: $(cat "$T_CASE/compose.err")"
    assert_eq "kafka postgres redis" "$(env -u DAGQ_BROKER_URL docker-compose -f "$T_COMPOSE" \
        --profile kafka config --services | grep -xE 'postgres|redis|kafka' | sort | xargs)" \
        "servers of the stack"
    assert_eq "['kafka']" "$(compose_query kafka profiles)" "kafka only under its profile"
    local services svc checked=0 prog help key
    services=$(compose_query - dagq)
    assert_eq "admin cli migrate scheduler-1 scheduler-2 web worker" "$(echo "$services" | sort | xargs)" \
        "dagq services"
    for svc in $services; do
        mapfile -t cmd < <(compose_query "$svc" command)
        prog=${cmd[0]}
        case $prog in dagq | dagq-scheduler | dagq-worker | dagq-web) ;; *)
            fail "$svc runs \"$prog\", not a dagq program"; continue ;;
        esac
        help=$("$T_BIN/$prog" --help) || fail "$prog --help failed"
        if [ "$prog" = dagq ]; then
            # the command words must be a command the CLI lists
            echo "$help" | grep -qE "^  ${cmd[*]:1}( |$)" ||
                fail "$svc: \"dagq ${cmd[*]:1}\" is not a dagq command"
        elif [ ${#cmd[@]} -gt 1 ]; then
            fail "$svc passes arguments to $prog; the stack configures by environment only"
        fi
        while IFS= read -r key; do
            key=${key%%=*}
            case $key in DAGQ_*) ;; *) continue ;; esac
            checked=$((checked + 1))
            # (a secret's file form: "...; or read from a file: --x-file PATH, env DAGQ_X_FILE)")
            echo "$help" | grep -qE "[( ]env $key[,;)]" ||
                fail "$svc sets $key, which $prog does not read"
        done < <(compose_query "$svc" env)
    done
    assert_le 20 "$checked" "DAGQ_* variables checked ($checked)"
    # the checker itself: a variable no program reads is caught
    "$T_BIN/dagq-worker" --help | grep -q "(env DAGQ_NO_SUCH_SETTING[,)]" &&
        fail "the --help check accepts anything"
    # a worker replica must not pin a name or a host port, and must be given
    # time to drain before it is killed
    assert_eq "" "$(compose_query worker container_name)" "worker has no container_name"
    assert_eq "" "$(compose_query worker ports)" "worker publishes no fixed port"
    local grace drain
    grace=$(compose_query worker stop_grace_period | tr -dc 0-9)
    drain=$(compose_query worker env | sed -n 's/^DAGQ_DRAIN_TIMEOUT=//p')
    assert_le "$((drain + 1))" "$grace" "stop_grace_period exceeds DAGQ_DRAIN_TIMEOUT"
    assert_contains "$(compose_query scheduler-1 depends_on)" "service_completed_successfully" \
        "schedulers start after the migration"
    # every library the release programs link comes from a package the
    # runtime stage installs (libc6 is in the base image)
    local runtime lib path pkg prog_path
    runtime=$(sed -n '/^FROM .* AS runtime/,$p' "$T_REPO/docker/Dockerfile")
    for prog_path in "$T_REPO"/bin/dagq "$T_REPO"/bin/dagq-scheduler "$T_REPO"/bin/dagq-worker "$T_REPO"/bin/dagq-web; do
        [ -x "$prog_path" ] || { fail "$prog_path not built (make all)"; continue; }
        for lib in $(readelf -d "$prog_path" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            path=$(ldd "$prog_path" | awk -v l="$lib" '$1 == l { print $3 }')
            pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
            case $pkg in libc6 | "") continue ;; esac
            echo "$runtime" | grep -qw -- "$pkg" ||
                fail "$(basename "$prog_path") needs $lib from $pkg, not installed in the runtime image"
        done
    done
    assert_contains "$(cat "$T_REPO/docker/Dockerfile")" "USER dagq" "image runs as non-root"
    assert_contains "$(cat "$T_REPO/docker/Dockerfile")" "HEALTHCHECK" "image has a health check"
}

# compose_secrets_check CONFIG WHAT: the resolved compose file CONFIG has
# every database and broker URL and every password in a secret the service
# mounts (its _FILE), none in an environment, and every secret's file exists.
compose_secrets_check() {
    assert_eq "" "$(echo "$1" | python3 -c '
import os, sys, yaml
c = yaml.safe_load(sys.stdin)
for name, s in c["services"].items():
    env = s.get("environment") or {}
    mounted = {x["source"] if isinstance(x, dict) else x for x in s.get("secrets") or []}
    dagq = "build" in s
    for k, v in env.items():
        if k.endswith("_FILE"):
            sec = str(v).removeprefix("/run/secrets/")
            if sec not in mounted or "/" in sec:
                print("%s: %s=%s is no secret it mounts" % (name, k, v))
        elif k.endswith("_URL") and k != "DAGQ_BASE_URL" or "PASSWORD" in k:
            print("%s: %s in the environment" % (name, k))
    if dagq and "DAGQ_DATABASE_URL_FILE" not in env:
        print("%s: no DAGQ_DATABASE_URL_FILE" % name)
    if s.get("command", [""])[0] in ("dagq-scheduler", "dagq-worker") and "DAGQ_BROKER_URL_FILE" not in env:
        print("%s: no DAGQ_BROKER_URL_FILE" % name)
for name, sec in c["secrets"].items():
    if not os.path.isfile(sec["file"]):
        print("secret %s: no file %s" % (name, sec["file"]))
' 2>&1)" "$2: every database and broker URL a file of a mounted secret, every secret's example there"
}

# Secrets reach the stack as files: every dagq service reads its database
# URL (and the daemons their broker URL) from a compose secret, none has one
# in its environment; each _FILE variable names a secret the service mounts;
# the secrets' files exist in docker/secrets.example, and
# docker/make-secrets.sh makes exactly those files.
case_compose_secrets_are_files() {
    local cfg broker
    for broker in redis kafka; do # (BROKER picks the broker URL's secret file)
        cfg=$(env -u DAGQ_SECRETS BROKER=$broker docker-compose -f "$T_COMPOSE" --profile kafka config) ||
            { fail "docker-compose config (BROKER=$broker)"; return; }
        compose_secrets_check "$cfg" "BROKER=$broker"
    done
    local made="$T_CASE/secrets"
    sh "$T_REPO/docker/make-secrets.sh" "$made" >/dev/null || fail "docker/make-secrets.sh failed"
    assert_eq "$(cd "$T_REPO/docker/secrets.example" && ls | grep -vx README | xargs)" "$(cd "$made" && ls | xargs)" \
        "docker/make-secrets.sh makes the files of docker/secrets.example"
    assert_eq "700" "$(stat -c %a "$made")" "its directory is its owner's only"
    local f same=""
    for f in "$made"/*; do
        [ "${f##*/}" = kafka_broker_url ] && continue # (no password)
        cmp -s "$f" "$T_REPO/docker/secrets.example/${f##*/}" && same="$same ${f##*/}"
    done
    assert_eq "" "$same" "with new passwords"
    # (as compose reads them: the password of the broker URL is Redis's)
    assert_eq "redis://:$(cat "$made/redis_password")@redis:6379/0" "$(cat "$made/redis_broker_url")" \
        "the broker URL holds Redis's password"
}

# start_service NAME SERVICE HTTP_PORT: the compose service as a process, with
# the compose file's environment only, except the addresses of the case's
# PostgreSQL, broker and HTTP port (and its private queue prefix)
start_service() {
    local name=$1 svc=$2 port=$3
    local -a envs cmd
    mapfile -t cmd < <(compose_query "$svc" command)
    mapfile -t envs < <(compose_query "$svc" env | grep -vE '^DAGQ_(DATABASE_URL|BROKER_URL)(_FILE)?=|^DAGQ_HTTP_PORT=')
    [ -n "$port" ] && envs+=("DAGQ_HTTP_PORT=$port")
    local url=$DAGQ_DATABASE_URL # the migrate job owns the schema; the daemons run as their roles
    case $svc in scheduler*) url=$T_SCHED_DB_URL ;; worker*) url=$T_WORKER_DB_URL ;; esac
    envs+=("DAGQ_DATABASE_URL=$url" "DAGQ_BROKER_URL=$DAGQ_BROKER_URL"
        "DAGQ_REDIS_PREFIX=$DAGQ_REDIS_PREFIX" "DAGQ_KAFKA_TOPIC_PREFIX=$DAGQ_KAFKA_TOPIC_PREFIX")
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" ASAN_OPTIONS="$ASAN_OPTIONS" \
        UBSAN_OPTIONS="$UBSAN_OPTIONS" LSAN_OPTIONS="$LSAN_OPTIONS" "${envs[@]}" \
        ${TEST_PREFIX:-} "$T_BIN/${cmd[0]}" "${cmd[@]:1}" >>"$T_CASE/$name.log" 2>&1 &
    P_PID[$name]=$!
    T_PIDS+=($!)
}

case_compose_services_run_as_plain_processes() {
    start_service migrate migrate ""
    wait "${P_PID[migrate]}" || fail "the migrate service failed: $(cat "$T_CASE/migrate.log")"
    unset "P_PID[migrate]"
    psql -X -q -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" -f "$T_REPO/docker/example_dag.sql" \
        >"$T_CASE/example.log" 2>&1 || fail "example DAG: $(cat "$T_CASE/example.log")"
    # loading it again changes nothing (the service may run on every `up`)
    psql -X -q -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" -f "$T_REPO/docker/example_dag.sql" \
        >>"$T_CASE/example.log" 2>&1 || fail "example DAG twice: $(cat "$T_CASE/example.log")"
    local p1 p2 w1 w2
    p1=$(t_free_port); p2=$(t_free_port); w1=$(t_free_port); w2=$(t_free_port)
    start_service scheduler-1 scheduler-1 "$p1"
    start_service scheduler-2 scheduler-2 "$p2"
    start_service worker-1 worker "$w1" # --scale worker=2
    start_service worker-2 worker "$w2"
    local p
    for p in "$p1" "$p2" "$w1" "$w2"; do wait_status 30 "$p" /healthz 200; done
    local run
    run=$(sql "SELECT dagq.trigger_dag('example_etl')")
    assert_eq success "$(wait_run "$run" 90)" "example run state"
    assert_eq 4 "$(sql "SELECT count(*) FROM dagq.task_instance WHERE run_id = $run AND state = 'success'")" \
        "example tasks succeeded"
    wait_until 10 "SELECT count(*) FROM dagq.worker WHERE state = 'up' AND slots = 4" 2
    assert_contains "$("$T_BIN/dagq" logs "$run" load)" "loaded by" "a task's output"
    assert_contains "$(cat "$T_CASE/scheduler-1.log")" "name=scheduler-1" "scheduler name from the compose env"
}

case_trigger_rule_and_zombie_verdicts_are_counted() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('verdicts');
INSERT INTO dagq.task (dag_id, task_id, command, trigger_rule, retries, retry_delay) VALUES
  ('verdicts', 'bad', 'exit 1', 'all_success', 0, '0'),
  ('verdicts', 'after_bad', 'true', 'all_success', 0, '0'),
  ('verdicts', 'after_after', 'true', 'all_success', 0, '0'),
  ('verdicts', 'on_failure_only', 'true', 'one_failed', 0, '0'),
  ('verdicts', 'ok', 'true', 'all_success', 0, '0'),
  ('verdicts', 'hang', 'sleep 30', 'all_success', 1, '0');
INSERT INTO dagq.task_dependency VALUES
  ('verdicts', 'after_bad', 'bad'), ('verdicts', 'after_after', 'after_bad'),
  ('verdicts', 'on_failure_only', 'ok');
SQL
    local sp
    sp=$(t_free_port)
    start_scheduler sched --http-port "$sp" --heartbeat-timeout 3
    start_worker w1 --slots 4
    local run
    run=$(sql "SELECT dagq.trigger_dag('verdicts')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $run AND task_id = 'hang'" running
    # 'bad' and 'ok' have ended (killed before, they too would be zombies)
    wait_until 30 "SELECT string_agg(task_id || '=' || state, ',' ORDER BY task_id) FROM dagq.task_instance
        WHERE run_id = $run AND task_id IN ('bad', 'ok')" "bad=failed,ok=success"
    kill9 w1 # 'hang' becomes a zombie, then a retry
    wait_metric 30 "$sp" 'dagq_task_instances_total{group="default",state="upstream_failed"}' 2
    wait_metric 30 "$sp" 'dagq_task_instances_total{group="default",state="skipped"}' 1
    wait_metric 30 "$sp" 'dagq_task_instances_total{group="default",state="up_for_retry"}' 1
    assert_eq upstream_failed "$(ti_state "$run" after_after)" "propagated"
    assert_eq skipped "$(ti_state "$run" on_failure_only)" "one_failed skipped"
}
