# shellcheck shell=bash
# tests/compose/cases.sh — what the compose stack must do, on each broker.
# Sourced by tests/compose_test.sh after stack.sh. A case is a function
# case_NAME, run in this file's order on a stack that the cases share (the
# first one starts it from nothing; each later one first brings back with
# cs_up whatever an earlier case stopped or killed). A case fails when it
# called fail (the assert_* helpers do). To add one, write a case_ function:
# the runner finds it.
#
# What is asserted comes from the metastore (run states, one successful try
# per task, who ran what) and from the ledger, the file each test task
# appends to (cs_ledger_cmd): a task whose process started twice shows there
# even if the metastore had been fooled.
#
# A new service whose image no registry serves here gets a stand-in in
# tests/compose/images/ and a ci_standin line in images.sh (ci_prepare).

# Settings the cases are judged by, as the compose file gives them.
cs_setting() { # SERVICE KEY: an environment variable's value, or stop_grace_period in s
    cs_compose config 2>/dev/null | python3 -c '
import re, sys, yaml
svc = yaml.safe_load(sys.stdin)["services"][sys.argv[1]]
if sys.argv[2] == "stop_grace_period":
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(svc.get("stop_grace_period", "10s")))
    print(int(m.group(1) or 0) * 60 + int(m.group(2) or 0))
else:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    print(env.get(sys.argv[2], ""))
' "$1" "$2"
}

# cs_define_dag DAG N COMMAND [EXTRA]: a DAG of N independent tasks t1..tN
# running COMMAND; EXTRA is more SQL in the same transaction.
cs_define_dag() {
    cs_sqlf <<SQL
BEGIN;
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('$1', 64);
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay)
SELECT '$1', 't' || i, \$cmd\$$3\$cmd\$, 1, '0' FROM generate_series(1, $2) i;
${4:-}
COMMIT;
SQL
}

# cs_running_on RUN TASK TIMEOUT: waits until the task instance runs; prints
# the host name of the container running it.
cs_running_on() {
    cs_wait "$3" "SELECT state FROM dagq.task_instance WHERE run_id = $1 AND task_id = '$2'" running ||
        { fail "waited $3 s for $2 to run, last state [$CS_GOT]"; return 1; }
    cs_sql "SELECT hostname FROM dagq.task_instance WHERE run_id = $1 AND task_id = '$2'"
}

case_up_from_nothing_runs_the_example() {
    cs_down || fail "compose down -v: $(tail -3 "$CE_RUN/compose.log")"
    assert_eq "" "$(ce_engine volume ls -q | grep "^${CS_PROJECT}_")" "no volume left before up"
    local t0=$SECONDS
    if ! cs_compose up -d --scale worker=3 >>"$CE_RUN/compose.log" 2>&1; then
        fail "compose up -d --scale worker=3 from nothing: $(tail -5 "$CE_RUN/compose.log")"
        return
    fi
    echo "  up -d --scale worker=3 returned in $((SECONDS - t0)) s"
    local svc id st
    for svc in migrate roles example-dag; do
        id=$(cs_ids "$svc")
        [ -n "$id" ] || { fail "no $svc container"; continue; }
        local deadline=$((SECONDS + 60))
        while st=$(ce_engine inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$id" 2>&1) &&
            [ "${st%% *}" = running ] && ((SECONDS < deadline)); do sleep 1; done
        # (podman says "stopped" for an exited container once its cleanup ran)
        assert_eq "exited 0" "${st/#stopped/exited}" "the one-shot $svc service ran and exited 0"
    done
    assert_eq "example_etl|etl_team|4" "$(cs_sql "SELECT d.dag_id, d.owner, count(*) FROM dagq.dag d
        JOIN dagq.task t USING (dag_id) GROUP BY d.dag_id, d.owner")" "docker/example_dag.sql loaded, owned by the team"
    cs_wait 90 "SELECT count(*) FROM dagq.worker WHERE state = 'up' AND slots = 4" 3 ||
        fail "waited for 3 workers of 4 slots, last [$CS_GOT]"
    cs_wait_http 60 "$CS_PORT1" /healthz 200
    cs_wait_http 60 "$CS_PORT2" /healthz 200
    echo "  stack up in $((SECONDS - t0)) s"

    # what the README tells a user to do: trigger the example with dagq, as
    # the team's operator (the cli service)
    local run
    run=$(cs_dagq trigger example_etl)
    case $run in '' | *[!0-9]*) fail "dagq trigger example_etl in the cli service: [$run]"; return ;; esac
    assert_eq success "$(cs_wait_run "$run" 90)" "the example run"
    cs_one_try_each "$run" 4 "the example run"
    assert_contains "$(cs_dagq logs "$run" load)" "loaded by" "the load task's output through dagq logs"
    assert_contains "$(cs_dagq runs example_etl)" "success" "dagq runs shows it"

    # work spreads over the three workers
    cs_define_dag spread 48 "$(cs_ledger_cmd 1)"
    run=$(cs_trigger spread)
    assert_eq success "$(cs_wait_run "$run" 90)" "a run of 48 one-second tasks"
    cs_one_try_each "$run" 48 "the spread run"
    cs_ledger_once "$run" 48 "the spread run"
    local hosts ids h ok=0
    hosts=$(cs_sql "SELECT DISTINCT hostname FROM dagq.task_instance WHERE run_id = $run ORDER BY 1")
    ids=" $(cs_ids worker | tr '\n' ' ')"
    for h in $hosts; do
        case $ids in *" $h"*) ok=$((ok + 1)) ;; esac
    done
    assert_eq "3 3" "$(echo "$hosts" | grep -c .) $ok" "tasks ran on all three worker containers (and only on them)"
}

# The programs and people of the stack, each as its own login (the roles
# service, from the secrets' URLs), each a member of its group role only:
# the running programs are connected as them, none is a superuser, and
# what a role must not do, PostgreSQL refuses it.
case_each_program_logs_in_as_its_own_least_privileged_role() {
    cs_up 3 || return
    local sched worker web author operator admin owner
    sched=$(cs_secret_login scheduler_database_url)
    worker=$(cs_secret_login worker_database_url)
    web=$(cs_secret_login web_database_url)
    author=$(cs_secret_login author_database_url)
    operator=$(cs_secret_login operator_database_url)
    admin=$(cs_secret_login admin_database_url)
    owner=$(cs_secret_login migrate_database_url)
    # (dagq-web connects when it serves a request)
    cs_wait_http 60 "$CS_WEB_PORT" /api/v1/health 200 || return
    # who the running programs are, by the application name each gives libpq
    cs_wait 30 "SELECT string_agg(DISTINCT application_name || ' as ' || usename, ', ')
                  FROM pg_stat_activity WHERE application_name LIKE 'dagq-%'" \
        "dagq-alert-detect as $sched, dagq-alerts as $sched, dagq-scheduler as $sched, dagq-web as $web, dagq-worker as $worker" ||
        fail "the programs' connections: expected each program as its login, got [$CS_GOT]"
    [ "$CS_GOT" = "dagq-alert-detect as $sched, dagq-alerts as $sched, dagq-scheduler as $sched, dagq-web as $web, dagq-worker as $worker" ] &&
        echo "  ok: connected: $CS_GOT"
    assert_eq 0 "$(cs_sql "SELECT count(*) FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
        WHERE a.application_name LIKE 'dagq-%' AND (r.rolsuper OR r.rolcreaterole OR r.rolbypassrls)")" \
        "no dagq program is connected as a superuser, CREATEROLE or BYPASSRLS role"
    assert_eq "$owner|f|t" "$(cs_sql "SELECT r.rolname, r.rolsuper, r.rolcreaterole FROM pg_namespace n
        JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'dagq'")" \
        "the schema is the migrate job's, a CREATEROLE role that is no superuser"
    local spec login want
    for spec in "$sched:dagq_scheduler" "$worker:dagq_worker" "$web:dagq_web" "$author:dagq_author etl_team" \
        "$operator:dagq_operator etl_team" "$admin:dagq_admin"; do
        login=${spec%%:*} want=${spec#*:}
        assert_eq "$want|f|f|f" "$(cs_sql "SELECT string_agg(g.rolname, ' ' ORDER BY g.rolname),
            bool_or(u.rolsuper), bool_or(u.rolcreaterole), bool_or(u.rolbypassrls)
            FROM pg_roles u JOIN pg_auth_members m ON m.member = u.oid JOIN pg_roles g ON g.oid = m.roleid
            WHERE u.rolname = '$login'")" "the login $login: a member of $want only, no superuser"
    done
    # the logins need their passwords over the network
    assert_contains "$(cs__psql -c 'SELECT 1' "postgresql://$worker:wrong@postgres:5432/dagq" 2>&1 </dev/null)" \
        "password authentication failed" "a wrong password is refused"
    # what each must not do
    cs_define_dag privs 1 true # owned by the superuser, not the team
    assert_contains "$(cs_sql_as worker_database_url "UPDATE dagq.task_instance SET command = 'echo pwned'")" \
        "permission denied for table task_instance" "the workers' login may not rewrite a queued command"
    assert_contains "$(cs_sql_as worker_database_url "SELECT count(*) FROM dagq.dag")" \
        "permission denied for table dag" "the workers' login reads no table"
    assert_contains "$(cs_sql_as worker_database_url "SELECT dagq.trigger_dag('example_etl')")" \
        "permission denied for function trigger_dag" "the workers' login may not trigger"
    assert_contains "$(cs_sql_as scheduler_database_url "UPDATE dagq.task SET command = 'echo pwned'")" \
        "permission denied for table task" "the schedulers' login may not change a DAG"
    assert_contains "$(cs_sql_as web_database_url "SELECT count(*) FROM dagq.dag")" \
        "permission denied for table dag" "dagq-web's login reads nothing itself (its tokens' roles do)"
    assert_contains "$(cs_sql_as operator_database_url "UPDATE dagq.task SET command = 'echo pwned'")" \
        "permission denied for table task" "the operator may not change a DAG"
    assert_contains "$(cs_sql_as operator_database_url "SELECT dagq.trigger_dag('privs')")" \
        "may not act on DAG \"privs\"" "the team's operator may not trigger another owner's DAG"
    assert_contains "$(cs_dagq trigger privs 2>&1)" "may not act on DAG" "nor with dagq trigger in the cli service"
    assert_eq "" "$(cs_sql_as author_database_url "UPDATE dagq.task SET command = 'echo pwned' WHERE dag_id = 'privs'
        RETURNING task_id")" "the team's author updates no task of another owner's DAG (none is its to see for writing)"
    assert_contains "$(cs_sql_as author_database_url "INSERT INTO dagq.task (dag_id, task_id, command)
        VALUES ('privs', 'evil', 'echo pwned')")" "ERROR" "nor adds one to it"
    assert_eq 0 "$(cs_sql "SELECT (SELECT count(*) FROM dagq.task WHERE command LIKE '%pwned%')
        + (SELECT count(*) FROM dagq.task_instance WHERE command LIKE '%pwned%')")" "no command was changed"
    if [ "$CS_BROKER" = redis ]; then
        assert_contains "$(CS_TIMEOUT=30 cs_compose exec -T redis redis-cli ping 2>&1)" "NOAUTH" \
            "Redis refuses a client without its password"
    fi
}

# dagq-web on its published port, as its own login: the public health
# endpoint, then a viewer token made with `dagq tokens create` in the admin
# service, whose grid of the example answers, and which may not write.
case_web_ui_and_a_viewer_token_on_the_published_port() {
    cs_up 3 || return
    local base="http://127.0.0.1:$CS_WEB_PORT"
    cs_wait_http 60 "$CS_WEB_PORT" /api/v1/health 200 || return
    assert_contains "$(curl -s --max-time 5 "$base/api/v1/health")" '"status": "ok"' "GET /api/v1/health"
    assert_contains "$(curl -s --max-time 5 "$base/")" "<html" "the UI's page"
    if [ "$(cs_sql "SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'example_etl' AND state = 'success'")" = 0 ]; then
        local run
        run=$(cs_dagq trigger example_etl)
        assert_eq success "$(cs_wait_run "$run" 90)" "an example run to show"
    fi
    local out token
    out=$(cs_admin tokens create --name "grid-viewer" --role viewer) ||
        { fail "dagq tokens create in the admin service: [$out]"; return; }
    token=$(echo "$out" | tail -1)
    case $token in dagq_*) echo "  ok: a viewer token from dagq tokens create in the admin service" ;; *)
        fail "dagq tokens create printed [$out]"
        return
        ;;
    esac
    echo "$token" >>"$CE_RUN/tokens.words" # a secret too: in no container's log
    assert_eq 401 "$(cs_http_status "$CS_WEB_PORT" /api/v1/dags/example_etl/grid)" "the grid without a token"
    local body
    body=$(curl -s --max-time 5 -H "Authorization: Bearer $token" "$base/api/v1/dags/example_etl/grid")
    assert_eq "clean enrich extract load|ok" "$(echo "$body" | python3 -c '
import json, sys
g = json.load(sys.stdin)
ok = bool(g["runs"]) and all(c == "s" * len(g["tasks"])
                             for r, c in zip(g["runs"], g["cells"]) if r["state"] == "success")
print(" ".join(sorted(g["tasks"])) + "|" + ("ok" if ok else "runs %s cells %s" % (g["runs"], g["cells"])))
' 2>&1)" "the viewer's grid of example_etl: its tasks, its successful runs all green"
    assert_eq 403 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d '{}' "$base/api/v1/dags/example_etl/runs")" \
        "the viewer may not trigger (403)"
    assert_contains "$(cs_admin tokens list)" "grid-viewer" "dagq tokens list shows it"
}

# cs_gateway: the address the stack's containers reach this network
# namespace (or, on Docker, this host) at: their default route's gateway,
# from /proc/net/route in the scheduler-1 container (the images have no ip).
cs_gateway() {
    local h
    h=$(ce_engine exec "$(cs_ids scheduler-1 | head -1)" cat /proc/net/route |
        awk '$2 == "00000000" { print $3; exit }')
    [ ${#h} -eq 8 ] || return 1
    printf '%d.%d.%d.%d\n' "0x${h:6:2}" "0x${h:4:2}" "0x${h:2:2}" "0x${h:0:2}"
}

# The schedulers deliver alerts: a webhook receiver outside the stack, a
# channel and a rule written by the team's author, a failing run triggered
# by its operator: one run_failed, delivered once although two schedulers
# deliver, with the event's id and a link to the run in dagq-web.
case_a_failed_run_alerts_a_webhook_once() {
    cs_up 3 || return
    local dir="$CE_RUN/receiver-$CS_PROJECT" pid
    rm -rf "$dir"
    mkdir -p "$dir"
    python3 "$T_REPO/tests/compose/receiver.py" "$dir" >"$dir/receiver.log" 2>&1 &
    pid=$!
    cs__alert_case "$dir"
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cs__alert_case() {
    local dir=$1 gw port deadline=$((SECONDS + 10))
    until [ -s "$dir/port" ] || ((SECONDS >= deadline)); do sleep 0.1; done
    port=$(cat "$dir/port" 2>/dev/null) || { fail "the receiver did not start: $(cat "$dir/receiver.log")"; return; }
    gw=$(cs_gateway) || { fail "no default route in the scheduler-1 container"; return; }
    echo "  the receiver listens on port $port; the containers reach it at $gw"
    assert_eq "" "$(cs_sql_as author_database_url "BEGIN;
INSERT INTO dagq.dag (dag_id, owner) VALUES ('doomed', 'etl_team');
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay)
VALUES ('doomed', 'fails', 'echo about to fail; exit 3', 0, '0');
INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('receiver', 'webhook', 'http://$gw:$port/dagq');
INSERT INTO dagq.alert_rule (channel, dag_pattern, events) VALUES ('receiver', 'doomed', '{run_failed}');
COMMIT;")" "the team's author writes the DAG, the channel and the rule"
    local run
    run=$(cs_dagq trigger doomed)
    case $run in '' | *[!0-9]*) fail "dagq trigger doomed: [$run]"; return ;; esac
    assert_eq failed "$(cs_wait_run "$run" 60)" "the doomed run"
    local deadline=$((SECONDS + 60))
    until grep -q run_failed "$dir/requests.jsonl" 2>/dev/null || ((SECONDS >= deadline)); do sleep 1; done
    grep -q run_failed "$dir/requests.jsonl" 2>/dev/null || {
        fail "no run_failed reached the receiver in 60 s; dagq alerts says: $(cs_dagq alerts --dag doomed 2>&1)"
        return
    }
    sleep 5 # a second delivery, were there one, would come within this
    local event
    event=$(cs_sql "SELECT event_id FROM dagq.event WHERE run_id = $run AND event = 'run_failed'")
    assert_eq "1 POST /dagq run_failed $run $event $event http://localhost:$CS_WEB_PORT/runs/$run" \
        "$(python3 -c '
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
b = json.loads(reqs[0]["body"])
h = {k.lower(): v for k, v in reqs[0]["headers"].items()}
print(len(reqs), "POST", reqs[0]["path"], b["event"], b["run_id"], b["event_id"], h.get("idempotency-key"), b["url"])
' "$dir/requests.jsonl" 2>&1)" "one request: the run's run_failed, its event id as the idempotency key, a link to the UI"
    assert_contains "$(cs_dagq alerts --dag doomed)" "delivered" "dagq alerts shows it delivered"
    local a b
    a=$(cs_metric "$CS_PORT1" 'dagq_alert_deliveries_total{channel="receiver",result="delivered"}')
    b=$(cs_metric "$CS_PORT2" 'dagq_alert_deliveries_total{channel="receiver",result="delivered"}')
    assert_eq 1 "$((${a:-0} + ${b:-0}))" "deliveries counted over both schedulers ($a + $b)"
}

# The fault cases: a task whose first try sleeps for minutes runs; its
# container is killed or restarted; the dead try must be taken away (for a
# killed container, by a zombie verdict once the scheduler's heartbeat
# timeout has passed) and retried at once (elsewhere, when the container
# stays dead), so the run ends within that timeout plus a margin, the
# downstream task runs once, and the dead try never reports.
cs_worker_fault() { # restart|kill
    cs_up 3 || return
    local dag="victim_$1" hb margin=30
    hb=$(cs_setting scheduler-1 DAGQ_HEARTBEAT_TIMEOUT)
    cs_sqlf <<SQL
BEGIN;
INSERT INTO dagq.dag (dag_id) VALUES ('$dag');
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('$dag', 'victim', \$c\$$(cs_ledger_cmd 1 600)\$c\$, 1, '0'),
  ('$dag', 'after', \$c\$$(cs_ledger_cmd 0)\$c\$, 0, '0');
INSERT INTO dagq.task_dependency VALUES ('$dag', 'after', 'victim');
COMMIT;
SQL
    local run host id st
    run=$(cs_trigger "$dag")
    host=$(cs_running_on "$run" victim 60) || return
    id=$(cs_container "$host") || { fail "no running container has the host name $host"; return; }
    local name
    name=$(cs_sql "SELECT worker_id FROM dagq.task_instance WHERE run_id = $run AND task_id = 'victim'")
    local t0=$SECONDS
    if [ "$1" = restart ]; then
        # (podman says it cannot reach systemd for the health-check timers)
        ce_engine restart -t 0 "$id" >/dev/null 2>"$CE_RUN/restart.err" ||
            fail "restart -t 0 $id: $(cat "$CE_RUN/restart.err")"
        echo "  restarted container $host (worker $name) mid-task"
    else
        ce_engine kill -s KILL "$id" >/dev/null || fail "kill -s KILL $id"
        echo "  killed container $host (worker $name) mid-task"
        sleep 2
        st=$(ce_engine inspect --format '{{.State.Status}}' "$id")
        assert_eq exited "${st/#stopped/exited}" \
            "the killed container stays down (restart: unless-stopped does not bring it back)"
    fi
    st=$(cs_wait_run "$run" $((hb + margin)))
    if [ "$st" != success ]; then
        fail "the run is [$st] $((SECONDS - t0)) s after the $1, not success within the heartbeat timeout ($hb s) + $margin s"
        echo "  task instances: $(cs_sql "SELECT string_agg(task_id || ' ' || state || ' try ' || try_number
            || ' by ' || coalesce(worker_id, '-'), '; ' ORDER BY task_id) FROM dagq.task_instance WHERE run_id = $run")"
        echo "  worker $name: $(cs_sql "SELECT state || ', heartbeat ' || round(extract(epoch FROM
            clock_timestamp() - heartbeat_at)) || ' s ago, started ' || round(extract(epoch FROM clock_timestamp()
            - started_at)) || ' s ago' FROM dagq.worker WHERE worker_id = '$name'")"
        local starts
        starts=$(ce_engine logs "$id" 2>&1 | grep -c "msg=\"worker starting\" worker=$name ")
        if [ "$1" = restart ] && [ "$starts" -ge 2 ]; then
            echo "  the container's log has $starts workers starting as $name: the one started after the" \
                "restart took the dead one's name (host:pid, both the same again), and its heartbeats" \
                "keep the dead try running"
        fi
        return
    fi
    echo "  run succeeded $((SECONDS - t0)) s after the $1"
    assert_eq "1 up_for_retry 2 success" "$(cs_sql "SELECT string_agg(t.try_number || ' ' || t.state, ' '
        ORDER BY t.try_number) FROM dagq.task_try t JOIN dagq.task_instance i USING (ti_id)
        WHERE i.run_id = $run AND i.task_id = 'victim'")" "the victim's first try was taken away, the second succeeded"
    [ "$1" = kill ] && assert_contains "$(cs_sql "SELECT t.note FROM dagq.task_try t
        JOIN dagq.task_instance i USING (ti_id) WHERE i.run_id = $run AND i.task_id = 'victim'
        AND t.try_number = 1")" zombie "as a zombie"
    local l
    l=$(cs_ledger "$run")
    assert_eq "victim 1 $host start|victim 2 start|victim 2 done|after 1 start|after 1 done" \
        "$(echo "$l" | awk '{ print $1, $2, ($1 == "victim" && $2 == 1 ? $3 " " : "") $4 }' | paste -sd '|')" \
        "ledger: the first try started once and never ended, the retry and the downstream task ran once"
    # (a restarted container may well run the retry itself)
    [ "$1" = kill ] && assert_eq 0 "$(echo "$l" | awk -v h="$host" '$1 == "victim" && $2 == 2 && $3 == h' | wc -l)" \
        "the retry ran in another container"
    return 0
}

case_worker_killed_mid_task_is_retried() { cs_worker_fault kill; }

# Fails until a restarted worker stops inheriting its predecessor's tries
# (DESIGN.md: workers have incarnations).
case_worker_restarted_mid_task_is_retried() { cs_worker_fault restart; }

case_scale_in_under_load_drains_and_runs_each_task_once() {
    cs_up 3 || return
    local grace
    grace=$(cs_setting worker stop_grace_period)
    cs_define_dag scale 200 "$(cs_ledger_cmd 0.5)"
    local run
    run=$(cs_trigger scale)
    # scale in while every worker runs tries
    cs_wait 60 "SELECT count(DISTINCT hostname) = 3 AND count(*) FILTER (WHERE state = 'success') >= 20
        FROM dagq.task_instance WHERE run_id = $run AND state IN ('running', 'success')" t ||
        { fail "waited for tasks running on 3 workers, last [$CS_GOT]"; return; }
    local before t0=$SECONDS
    before=$(cs_sql "SELECT count(*) FROM dagq.task_instance WHERE run_id = $run AND state = 'success'")
    local all keep stopped
    all=$(cs_ids worker)
    if ! CS_TIMEOUT=$((grace + 60)) cs_compose up -d --scale worker=1 >>"$CE_RUN/compose.log" 2>&1; then
        fail "compose up -d --scale worker=1: $(tail -5 "$CE_RUN/compose.log")"
        return
    fi
    local took=$((SECONDS - t0))
    keep=$(cs_ids worker)
    stopped=$(comm -23 <(echo "$all" | sort) <(echo "$keep" | sort))
    echo "  scaled in from 3 to 1 workers in $took s with $before of 200 tasks done"
    assert_eq 2 "$(echo "$stopped" | grep -c .)" "two worker containers removed"
    assert_le "$took" "$grace" "the stopped workers drained within stop_grace_period ($grace s)"
    local id names=()
    for id in $stopped; do names+=("'${id:0:12}'"); done
    # (the newest worker of each container: an earlier case may have
    # restarted one)
    assert_eq "gone gone" "$(cs_sql "SELECT string_agg(state, ' ') FROM (SELECT DISTINCT ON (hostname) state
        FROM dagq.worker WHERE hostname IN ($(IFS=,; echo "${names[*]}"))
        ORDER BY hostname, started_at DESC) w")" "both stopped workers said goodbye (state gone)"
    assert_eq success "$(cs_wait_run "$run" 180)" "the run, finished by the one worker left"
    cs_one_try_each "$run" 200 "the scale-in run"
    cs_ledger_once "$run" 200 "the scale-in run"
    local n
    for id in $stopped; do
        n=$(cs_ledger "$run" | awk -v h="${id:0:12}" '$3 == h && $4 == "done"' | wc -l)
        assert_le 1 "$n" "the stopped container ${id:0:12} had run tasks ($n)"
    done
}

# A chain of tasks needs a scheduler after each one; one is taken away
# mid-run, the other must carry the run to its end.
cs_chain_survives() { # DAG HOW VICTIM
    local run
    run=$(cs_trigger "$1")
    cs_wait 60 "SELECT state FROM dagq.task_instance WHERE run_id = $run AND task_id = 't2'" success ||
        { fail "waited for t2 of $1, last [$CS_GOT]"; return; }
    local t0=$SECONDS
    if [ "$2" = kill ]; then
        ce_engine kill -s KILL "$(cs_ids "$3")" >/dev/null || fail "kill -s KILL $3"
    else
        CS_TIMEOUT=60 cs_compose stop "$3" >>"$CE_RUN/compose.log" 2>&1 || fail "compose stop $3"
        echo "  compose stop $3 took $((SECONDS - t0)) s"
    fi
    local st
    st=$(ce_engine inspect --format '{{.State.Status}}' "$(cs_ids "$3")")
    assert_eq exited "${st/#stopped/exited}" "$3 is down"
    assert_eq success "$(cs_wait_run "$run" 90)" "the chain run after $3 was ${2}ed"
    cs_one_try_each "$run" 8 "the chain run ($3 ${2}ed)"
    cs_ledger_once "$run" 8 "the chain run ($3 ${2}ed)"
}

case_one_scheduler_killed_or_stopped_the_other_carries_on() {
    cs_up 3 || return
    local i deps=""
    for i in $(seq 2 8); do deps="$deps('chain', 't$i', 't$((i - 1))'),"; done
    cs_define_dag chain 8 "$(cs_ledger_cmd 1)" "INSERT INTO dagq.task_dependency VALUES ${deps%,};"
    cs_chain_survives chain kill scheduler-1
    cs_up 3 || return # scheduler-1 back
    cs_chain_survives chain stop scheduler-2
}

# cs_redis_cli ARGS...: redis-cli in the redis container, with the password
# of its secret (REDISCLI_AUTH: on no command line)
cs_redis_cli() {
    CS_TIMEOUT=30 cs_compose exec -T redis sh -c 'export REDISCLI_AUTH="$(cat /run/secrets/redis_password)"; exec redis-cli "$@"' \
        redis-cli "$@"
}

# cs_broker_data [MARK]: what the broker keeps on its volume, as seen from
# its container. Redis: the key dagqtest:volume (set to MARK first, when
# given). Kafka: the identity of its log directory (meta.properties'
# directory.id, made when the storage is formatted) and how many partitions
# of dagq's topics it holds. Empty when there is none.
cs_broker_data() {
    if [ "$CS_BROKER" = redis ]; then
        [ -n "${1:-}" ] && { cs_redis_cli SET dagqtest:volume "$1" >/dev/null || return; }
        cs_redis_cli GET dagqtest:volume 2>/dev/null
    else
        CS_TIMEOUT=30 cs_compose exec -T kafka sh -c 'd=/var/lib/kafka/data
            id=$(grep "^directory.id=" "$d/meta.properties") || exit 1
            n=$(ls "$d" | grep -c "^dagq\.")
            [ "$n" -gt 0 ] && echo "$id, $n partitions of dagq topics"' 2>/dev/null
    fi
}

case_postgres_and_broker_restarted_mid_run_lose_nothing() {
    cs_up 3 || return
    local broker=$CS_BROKER
    cs_define_dag outage 60 "$(cs_ledger_cmd 2)"
    local run t0
    run=$(cs_trigger outage)
    cs_wait 60 "SELECT count(*) >= 8 FROM dagq.task_instance WHERE run_id = $run AND state = 'success'" t ||
        { fail "waited for 8 tasks done, last [$CS_GOT]"; return; }
    t0=$SECONDS
    CS_TIMEOUT=120 cs_compose restart postgres >>"$CE_RUN/compose.log" 2>&1 || fail "compose restart postgres"
    echo "  postgres restarted in $((SECONDS - t0)) s"
    cs_wait 90 "SELECT count(*) >= 24 FROM dagq.task_instance WHERE run_id = $run AND state = 'success'" t ||
        { fail "waited for 24 tasks done after the postgres restart, last [$CS_GOT]"; return; }
    # a new container on the same volume: the broker's data must be there
    local before after
    before=$(cs_broker_data "$run")
    [ -n "$before" ] || fail "no data of $broker on its volume before the recreate"
    t0=$SECONDS
    CS_TIMEOUT=120 cs_compose up -d --no-deps --force-recreate "$broker" >>"$CE_RUN/compose.log" 2>&1 ||
        fail "compose up --force-recreate $broker"
    echo "  $broker recreated on its volume in $((SECONDS - t0)) s"
    local deadline=$((SECONDS + 60))
    until after=$(cs_broker_data) && [ -n "$after" ] || ((SECONDS >= deadline)); do sleep 1; done
    [ -n "$before" ] && assert_eq "$before" "$after" "the new $broker container found the old one's data on the volume"
    assert_eq success "$(cs_wait_run "$run" 180)" "the run through both outages"
    cs_one_try_each "$run" 60 "the outage run"
    cs_ledger_once "$run" 60 "the outage run"
    # the workers and schedulers are still the ones that started
    assert_eq 3 "$(cs_sql "SELECT count(*) FROM dagq.worker
        WHERE state = 'up' AND heartbeat_at > clock_timestamp() - interval '12 seconds'")" "three live workers"
}

case_healthz_and_metrics_on_the_published_ports() {
    cs_up 3 || return
    local p
    for p in "$CS_PORT1" "$CS_PORT2"; do
        assert_eq 200 "$(cs_http_status "$p" /healthz)" "GET /healthz on port $p: status"
        assert_eq ok "$(curl -s --max-time 5 "http://127.0.0.1:$p/healthz")" "GET /healthz on port $p: body"
    done
    local run
    run=$(cs_dagq trigger example_etl)
    assert_eq success "$(cs_wait_run "$run" 90)" "an example run"
    sleep 2 # the per-group gauges are refreshed once a second
    local a b
    a=$(cs_metric "$CS_PORT1" 'dagq_runs_finished_total{state="success"}')
    b=$(cs_metric "$CS_PORT2" 'dagq_runs_finished_total{state="success"}')
    assert_le 1 "$((${a:-0} + ${b:-0}))" "runs finished, summed over both schedulers ($a + $b)"
    # (within the health timeout: an earlier case may have just restarted
    # the servers)
    local ht
    ht=$(cs_setting scheduler-1 DAGQ_HEALTH_TIMEOUT)
    for p in "$CS_PORT1" "$CS_PORT2"; do
        cs_wait_metric "$ht" "$p" 'dagq_up{server="database"}' 1 && echo "  ok: port $p: database up"
        cs_wait_metric "$ht" "$p" 'dagq_up{server="broker"}' 1 && echo "  ok: port $p: broker up"
        cs_wait_metric "$ht" "$p" 'dagq_group_live_workers{group="default"}' 3 &&
            echo "  ok: port $p: three live workers"
    done
    assert_contains "$(curl -s --max-time 5 "http://127.0.0.1:$CS_PORT1/metrics")" \
        "# TYPE dagq_scheduler_loop_duration_seconds histogram" "Prometheus text format"
    # the image's HEALTHCHECK made it into the image and passes, and so do
    # the servers' checks of the compose file
    local svc id want=(postgres scheduler-1 scheduler-2 worker web)
    [ "$CS_BROKER" = kafka ] && want+=(kafka) || want+=(redis)
    local deadline=$((SECONDS + 30)) bad
    while :; do
        bad=""
        for svc in "${want[@]}"; do
            for id in $(cs_ids "$svc"); do
                [ "$(ce_health "$id")" = healthy ] || bad="$bad $svc:${id:0:12}=$(ce_health "$id")"
            done
        done
        [ -z "$bad" ] || ((SECONDS >= deadline)) && break
        sleep 2
    done
    assert_eq "" "$bad" "every container with a health check is healthy"
}

# Last, when everything has run: no password of the run's secrets is in the
# resolved compose file, in any container's environment or log (nor the API
# token made above), or in what the cli and admin services printed (but the
# token they were asked for). The secrets did reach the containers, as files.
case_no_secret_in_the_config_the_environment_or_a_log() {
    local words="$CE_RUN/secrets.words" all="$CE_RUN/all-$CS_PROJECT.words"
    [ -s "$words" ] || { fail "no secrets were made"; return; }
    cat "$words" "$CE_RUN/tokens.words" 2>/dev/null >"$all"
    local cfg
    cfg=$(cs_compose config 2>&1)
    assert_contains "$cfg" "DAGQ_DATABASE_URL_FILE: /run/secrets/scheduler_database_url" "compose config: the file names"
    assert_eq "" "$(echo "$cfg" | grep -oFf "$words" | sort -u | wc -l | grep -vx 0)" \
        "no password in the output of compose config"
    assert_eq "" "$(echo "$cfg" | python3 -c '
import re, sys, yaml
for name, s in yaml.safe_load(sys.stdin)["services"].items():
    env = s.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    for k, v in env.items():
        if (k.endswith("_URL") and k != "DAGQ_BASE_URL" or "PASSWORD" in k and not k.endswith("_FILE")
                or re.search(r"://[^/]*@", str(v))):
            print(name, k)
')" "no service's environment holds a URL or password (only the _FILE names of secrets)"
    assert_eq 1 "$(ce_engine exec "$(cs_ids scheduler-1 | head -1)" cat /run/secrets/scheduler_database_url |
        grep -cFf "$words")" "the schedulers' secret reached their container, as a file"
    local id name n=0 hits bad=""
    for id in $(cs_ids); do
        name=$(ce_engine inspect --format '{{.Name}}' "$id" 2>/dev/null | tr -d /)
        hits=$(ce_engine inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$id" | grep -cFf "$all")
        [ "$hits" = 0 ] || bad="$bad $name:environment"
        hits=$(ce_engine logs "$id" 2>&1 | grep -cFf "$all")
        [ "$hits" = 0 ] || bad="$bad $name:log($hits lines)"
        n=$((n + 1))
    done
    assert_eq "" "$bad" "no password or token in the environment or the log of any of the $n containers"
    assert_le 10 "$n" "containers searched"
    assert_eq 0 "$(grep -cFf "$words" "$CE_RUN/tools-$CS_PROJECT.log")" \
        "nor in what $(grep -c '^== ' "$CE_RUN/tools-$CS_PROJECT.log") runs of the cli and admin services printed"
}
