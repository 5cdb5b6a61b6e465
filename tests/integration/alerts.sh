# brokers: redis
# Alerts (issue #12): events of the outbox delivered to real receivers the
# cases start on private ports: an HTTP receiver (tests/alerts/receiver.py)
# and an SMTP server with STARTTLS and login (tests/alerts/smtpd.py, aiosmtpd
# in the private venv of tests/alerts/venv.sh). Channels and rules are
# written, and the CLI run, as least-privilege login roles (dagq_author,
# dagq_operator members); the scheduler and workers connect as the harness
# has them connect (a case checks the alert functions as a dagq_scheduler
# member). Alerts do not depend on the broker: the cases run on Redis only.

sqlf() { psql -X -q -At -v ON_ERROR_STOP=1 -v T="$T_CASE" "$DAGQ_DATABASE_URL" -f -; }

declare -A R_PID=() R_PORT=()

# recv_start NAME [PORT]: an HTTP receiver recording into $T_CASE/NAME
recv_start() {
    local n=$1 port=${2:-${R_PORT[$1]:-}}
    [ -n "$port" ] || port=$(t_free_port)
    mkdir -p "$T_CASE/$n"
    rm -f "$T_CASE/$n/receiver.ready"
    python3 "$T_REPO/tests/alerts/receiver.py" "$T_CASE/$n" "$port" >>"$T_CASE/$n/out" 2>&1 &
    R_PID[$n]=$!
    R_PORT[$n]=$port
    T_WAIT=10 t_wait_for test -s "$T_CASE/$n/receiver.ready" || fail "receiver $n did not start"
}
recv_stop() { kill -9 "${R_PID[$1]}" 2>/dev/null; wait "${R_PID[$1]}" 2>/dev/null; }
recv_url() { echo "http://127.0.0.1:${R_PORT[$1]}/$1"; }
recv_mode() { echo "$2" >"$T_CASE/$1/mode"; }

# recv_py NAME CODE: runs python CODE with reqs (the requests NAME got, in
# order of arrival) and bodies (their JSON bodies)
recv_py() {
    python3 - "$T_CASE/$1/requests.jsonl" "$2" <<'PY'
import json, os, sys
p = sys.argv[1]
reqs = [json.loads(l) for l in open(p)] if os.path.exists(p) else []
bodies = [json.loads(r["body"]) for r in reqs]
exec(sys.argv[2])
PY
}
# recv_events NAME: "event" per request, space-separated
recv_events() { recv_py "$1" 'print(" ".join(b["event"] for b in bodies))'; }
recv_count() { recv_py "$1" 'print(len(reqs))'; }

# wait_recv TIMEOUT NAME N: until NAME got N requests
wait_recv() {
    local deadline=$((SECONDS + $1)) got=""
    while ((SECONDS < deadline)); do
        got=$(recv_count "$2")
        [ "$got" -ge "$3" ] && return 0
        sleep 0.2
    done
    fail "waited $1s for $3 requests at receiver $2, got $got"
    return 1
}

# Login roles for this case's database (the cluster is the lane's): the
# scheduler as a dagq_scheduler member, workers as dagq_worker, the CLI as
# an operator; URLs in SCHED_URL, WORKER_URL, OPER_URL, AUTHOR_URL.
lp_roles() {
    local db=${DAGQ_DATABASE_URL##*/} r
    for r in scheduler worker operator author admin; do
        sql "CREATE ROLE ${db}_$r LOGIN PASSWORD '${db}_$r-$T_SECRET' IN ROLE dagq_$r" >/dev/null
    done
    SCHED_URL=${DAGQ_DATABASE_URL/dagq@/${db}_scheduler:${db}_scheduler-$T_SECRET@}
    WORKER_URL=${DAGQ_DATABASE_URL/dagq@/${db}_worker:${db}_worker-$T_SECRET@}
    OPER_URL=${DAGQ_DATABASE_URL/dagq@/${db}_operator:${db}_operator-$T_SECRET@}
    AUTHOR_URL=${DAGQ_DATABASE_URL/dagq@/${db}_author:${db}_author-$T_SECRET@}
    ADMIN_URL=${DAGQ_DATABASE_URL/dagq@/${db}_admin:${db}_admin-$T_SECRET@}
}

# as URL SQL: psql as another login
as() { psql -X -q -At -v ON_ERROR_STOP=1 "$1" -c "$2"; }

alert_scheduler() { local n=$1; shift; start_scheduler "$n" --name "$n" "$@"; }
alert_worker() { local n=$1; shift; start_worker "$n" --slots 4 "$@"; }

# The payload's fields are a contract (README "Alerts").
PAYLOAD_FIELDS="dag_id data_interval_end data_interval_start event event_id log_tail logical_date note run_id state task_id time try_number url"

case_alert_task_out_of_retries_gives_one_task_failed_and_one_run_failed_per_rule() {
    lp_roles
    recv_start ops
    recv_start team
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id) VALUES ('etl_sales'), ('other');
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('etl_sales', 'load', 'echo "loading sales"; echo "ERROR: table sales is locked" >&2; exit 3', 1, '0'),
  ('other', 'load', 'exit 1', 0, '0');
SQL
    as "$AUTHOR_URL" "INSERT INTO dagq.alert_channel (channel, kind, target) VALUES
        ('ops', 'webhook', '$(recv_url ops)'), ('team', 'webhook', '$(recv_url team)');
      INSERT INTO dagq.alert_rule (channel, dag_pattern, events) VALUES
        ('ops', '*', '{task_failed,run_failed}'),
        ('team', 'etl_*', '{task_retry,task_failed,run_failed}')"
    alert_scheduler sched --base-url http://ui.example/
    alert_worker w1
    local run other
    run=$(sql "SELECT dagq.trigger_dag('etl_sales')")
    assert_eq failed "$(wait_run "$run" 60)" "run state"
    other=$(sql "SELECT dagq.trigger_dag('other')")
    assert_eq failed "$(wait_run "$other" 60)" "other run state"
    wait_recv 30 ops 4
    wait_recv 30 team 3
    sleep 2 # nothing more arrives
    assert_eq "task_failed run_failed task_failed run_failed" "$(recv_events ops)" "ops: one task_failed and one run_failed per run"
    assert_eq "task_retry task_failed run_failed" "$(recv_events team)" "team: etl_* only, retry included"
    assert_eq "$PAYLOAD_FIELDS" "$(recv_py team 'print(" ".join(sorted(bodies[1])))')" "payload fields"
    local eid
    eid=$(sql "SELECT event_id FROM dagq.event WHERE run_id = $run AND event = 'task_failed'")
    assert_eq "$eid|$eid|$eid" "$(recv_py team 'r = reqs[1]; print("%s|%s|%s" % (bodies[1]["event_id"], r["headers"]["Idempotency-Key"], r["headers"]["X-Dagq-Event-Id"]))')" \
        "event_id in the JSON and the Idempotency-Key header"
    assert_eq "etl_sales|$run|load|2|failed|exit code 3|http://ui.example/runs/$run" \
        "$(recv_py team 'b = bodies[1]; print("|".join(str(b[k]) for k in ("dag_id", "run_id", "task_id", "try_number", "state", "note", "url")))')" \
        "payload values"
    assert_contains "$(recv_py team 'print(bodies[1]["log_tail"])')" "ERROR: table sales is locked" "log tail"
    assert_eq "$(sql "SELECT to_char(logical_date AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') FROM dagq.dag_run WHERE run_id = $run")" \
        "$(recv_py team 'print(bodies[2]["logical_date"][:19])')" "logical_date"
    assert_eq "application/json; charset=utf-8" "$(recv_py ops 'print(reqs[0]["headers"]["Content-Type"])')" "content type"
    # the CLI shows every delivery delivered, and the test alert's answer
    local out
    out=$(DAGQ_DATABASE_URL=$OPER_URL "$T_BIN/dagq" alerts --dag etl_sales)
    assert_eq 5 "$(grep -c ' delivered ' <<<"$out")" "dagq alerts: 5 deliveries of etl_sales delivered: $out"
    assert_eq "no undelivered alerts" "$(DAGQ_DATABASE_URL=$OPER_URL "$T_BIN/dagq" alerts --undelivered)" "nothing undelivered"
    out=$(DAGQ_DATABASE_URL=$AUTHOR_URL "$T_BIN/dagq" alert test ops 2>&1)
    assert_contains "$out" "delivered to channel \"ops\" by sched/" "alert test: $out"
    assert_contains "$out" "HTTP 200: ok" "alert test shows the receiver's answer"
    assert_eq test "$(recv_py ops 'print(bodies[-1]["event"])')" "the test event arrived"
}

# The functions a delivering process calls work for a dagq_scheduler member,
# and channels are guarded: an author cannot write a command channel nor
# store a secret in a target.
case_alert_functions_and_guards_under_least_privilege() {
    lp_roles
    recv_start ops
    sql "INSERT INTO dagq.dag (dag_id) VALUES ('d')" >/dev/null
    as "$AUTHOR_URL" "INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('ops', 'webhook', '$(recv_url ops)');
        INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{task_failed}')"
    sql "SELECT dagq.emit('task_failed', 'd', NULL, 't', NULL, 1, 'failed', 'x')" >/dev/null
    assert_eq "1|ops|task_failed" "$(as "$SCHED_URL" "SELECT attempt, channel, event FROM dagq.alert_claim('lp', NULL)")" "claim as a dagq_scheduler member"
    assert_eq retry "$(as "$SCHED_URL" "SELECT dagq.alert_result(d.delivery_id, d.lease, false, NULL, 'e', 'lp') FROM dagq.alert_delivery d")" "result as a dagq_scheduler member"
    assert_eq "run_late|0" "$(as "$SCHED_URL" "SELECT what, n FROM dagq.alert_detect(60) LIMIT 1")" "detect as a dagq_scheduler member"
    assert_contains "$(psql -X -q -At "$AUTHOR_URL" -c "INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('x', 'command', 'id')" 2>&1)" \
        "only members of dagq_admin may write command channels" "author: no command channel"
    assert_eq "" "$(psql -X -q -At "$ADMIN_URL" -c "INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('x', 'command', 'id')" 2>&1)" "admin: command channel"
    as "$AUTHOR_URL" "UPDATE dagq.alert_channel SET target = 'true' WHERE channel = 'x'"
    assert_eq id "$(sql "SELECT target FROM dagq.alert_channel WHERE channel = 'x'")" "author cannot touch the admin's channel"
    assert_contains "$(psql -X -q -At "$AUTHOR_URL" -c "UPDATE dagq.alert_channel SET kind = 'command' WHERE channel = 'ops'" 2>&1)" \
        "only members of dagq_admin" "author: no webhook turned into a command"
    assert_contains "$(sql_err "INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('s', 'webhook', 'https://u:pw@h/x')")" \
        "holds a secret" "no password in a target"
    assert_contains "$(sql_err "INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('s', 'slack', 'https://hooks.slack.com/services/T/B/X')")" \
        "is a secret" "a Slack URL only by reference"
    assert_contains "$(sql_err "INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{task_exploded}')")" \
        'unknown event "task_exploded"' "unknown event named"
    assert_contains "$(psql -X -q -At "$OPER_URL" -c "INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{task_failed}')" 2>&1)" \
        "permission denied" "an operator writes no rules"
    assert_eq 2 "$(as "$OPER_URL" "SELECT count(*) FROM dagq.alert_channel")" "viewers read channels"
}

# kill -9 of the worker under a task: no process of the task's is left to
# say anything, yet the zombie verdict writes zombie and (out of retries)
# task_failed, and they are delivered.
case_alert_worker_killed_under_its_task_gives_zombie_and_task_failed() {
    recv_start ops
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id) VALUES ('crashy');
INSERT INTO dagq.task (dag_id, task_id, command, retries) VALUES ('crashy', 'long', 'sleep 60', 0);
INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('ops', 'webhook', '$(recv_url ops)');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{zombie,task_failed,run_failed}');
SQL
    alert_scheduler sched --heartbeat-timeout 3
    alert_worker w1
    local run
    run=$(sql "SELECT dagq.trigger_dag('crashy')")
    wait_until 30 "SELECT state FROM dagq.task_instance WHERE run_id = $run" running
    kill9 w1
    assert_eq failed "$(wait_run "$run" 60)" "run fails"
    wait_recv 30 ops 3
    sleep 1
    assert_eq "zombie task_failed run_failed" "$(recv_events ops)" "zombie, task_failed, run_failed"
    assert_contains "$(recv_py ops 'print(bodies[1]["note"])')" "zombie: worker w1 sent no heartbeat" "the note says why"
}

# dag.sla: a run that never finishes gets run_late at its deadline, once; a
# run that finished in time gets none; a run that finished late (while no
# detector ran) gets one.
case_alert_run_late_at_the_deadline_of_a_run_that_never_finishes() {
    recv_start ops
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id, sla, default_worker_group) VALUES ('stuck', '3 seconds', 'nobody');
INSERT INTO dagq.dag (dag_id, sla) VALUES ('quick', '1 minute');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('stuck', 't', 'true'), ('quick', 't', 'true');
INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('ops', 'webhook', '$(recv_url ops)');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{run_late}');
SQL
    alert_scheduler sched
    alert_scheduler sched2
    alert_worker w1
    local stuck quick t0
    t0=$(date +%s.%N)
    stuck=$(sql "SELECT dagq.trigger_dag('stuck')")
    quick=$(sql "SELECT dagq.trigger_dag('quick')")
    assert_eq success "$(wait_run "$quick" 30)" "quick run"
    wait_recv 20 ops 1
    local at
    at=$(recv_py ops 'print(reqs[0]["t"])')
    assert_eq t "$(awk -v a="$at" -v b="$t0" 'BEGIN { print (a - b >= 3 && a - b < 8) ? "t" : "f" }')" "run_late between 3 and 8 s after the trigger ($at - $t0)"
    assert_eq "run_late|stuck|$stuck|running" "$(recv_py ops 'b = bodies[0]; print("%s|%s|%s|%s" % (b["event"], b["dag_id"], b["run_id"], b["state"]))')" "run_late of the stuck run"
    sleep 3
    assert_eq 1 "$(recv_count ops)" "fired once, with two detectors"
    assert_eq "t|f" "$(sql "SELECT bool_or(late_at IS NOT NULL) FILTER (WHERE run_id = $stuck), bool_or(late_at IS NOT NULL) FILTER (WHERE run_id = $quick) FROM dagq.dag_run")" "late_at marks the late run only"
    # a run that ended after its deadline before any detector looked
    stop sched
    stop sched2
    local late
    late=$(sql "INSERT INTO dagq.dag_run (dag_id, run_type, logical_date, data_interval_start, data_interval_end, state, ended_at)
                VALUES ('quick', 'manual', now(), now(), now(), 'success', clock_timestamp()) RETURNING run_id" | head -1)
    sql "UPDATE dagq.dag_run SET sla_deadline = clock_timestamp() - interval '1 minute' WHERE run_id = $late" >/dev/null
    alert_scheduler sched3
    wait_recv 20 ops 2
    assert_eq "$late|success" "$(recv_py ops 'print("%s|%s" % (bodies[1]["run_id"], bodies[1]["state"]))')" "a run that ended late is late too"
}

case_alert_run_recovered_after_a_failed_run() {
    recv_start ops
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id) VALUES ('flappy');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('flappy', 't', 'if [ -e ' || :'T' || '/ran ]; then exit 0; fi; touch ' || :'T' || '/ran; exit 1');
INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('ops', 'webhook', '$(recv_url ops)');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{run_failed,run_succeeded,run_recovered}');
SQL
    alert_scheduler sched
    alert_worker w1
    local r1 r2 r3
    r1=$(sql "SELECT dagq.trigger_dag('flappy')")
    assert_eq failed "$(wait_run "$r1" 30)" "first run"
    r2=$(sql "SELECT dagq.trigger_dag('flappy')")
    assert_eq success "$(wait_run "$r2" 30)" "second run"
    r3=$(sql "SELECT dagq.trigger_dag('flappy')")
    assert_eq success "$(wait_run "$r3" 30)" "third run"
    wait_recv 20 ops 4
    sleep 1
    assert_eq "run_failed:$r1 run_succeeded:$r2 run_recovered:$r2 run_succeeded:$r3" \
        "$(recv_py ops 'print(" ".join("%s:%s" % (b["event"], b["run_id"]) for b in bodies))')" "recovered once, after the failure"
}

# A receiver that is down for 10 s: every event is retried with backoff and
# arrives once, in order per run, when it is back.
case_alert_receiver_down_10s_gets_every_event_once_in_order_per_run() {
    recv_start ops
    recv_stop ops
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id) VALUES ('a'), ('b');
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES
  ('a', 'x', 'exit 1', 2, '0'), ('a', 'y', 'exit 1', 0, '0'), ('b', 'x', 'exit 1', 1, '0');
INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('ops', 'webhook', '$(recv_url ops)');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{task_retry,task_failed,run_failed}');
SQL
    alert_scheduler sched
    alert_worker w1
    local ra rb t0=$SECONDS
    ra=$(sql "SELECT dagq.trigger_dag('a')")
    rb=$(sql "SELECT dagq.trigger_dag('b')")
    wait_run "$ra" 30 >/dev/null
    wait_run "$rb" 30 >/dev/null
    wait_until 20 "SELECT max(attempts) >= 1 FROM dagq.alert_delivery" t
    sleep $((10 - (SECONDS - t0)))
    recv_start ops
    local n
    n=$(sql "SELECT count(*) FROM dagq.event WHERE event <> 'test'")
    wait_recv 60 ops "$n"
    sleep 2
    assert_eq "$n" "$(recv_count ops)" "every event once"
    assert_eq "$n" "$(recv_py ops 'print(len({b["event_id"] for b in bodies}))')" "no duplicates"
    assert_eq ok "$(recv_py ops '
runs = {}
for b in bodies: runs.setdefault(b["run_id"], []).append(b["event_id"])
print("ok" if all(v == sorted(v) for v in runs.values()) else runs)')" "in order per run"
    assert_eq "$(sql "SELECT string_agg(event, ' ' ORDER BY event_id) FROM dagq.event WHERE run_id = $ra")" \
        "$(recv_py ops "print(' '.join(b['event'] for b in bodies if b['run_id'] == $ra))")" "run a's events in their order"
    assert_eq t "$(sql "SELECT max(attempts) > 1 FROM dagq.alert_delivery")" "retried"
    assert_eq "0|delivered" "$(sql "SELECT COALESCE((SELECT failures FROM dagq.alert_channel_state), 0), string_agg(DISTINCT state, ',') FROM dagq.alert_delivery")" "all delivered, channel healthy again"
    expect_log_errors 'nothing' sched # failed attempts are warnings, not errors
}

# Two schedulers share the deliveries (a run's go out one after another, in
# order; runs in parallel): each event reaches a healthy, slow receiver
# once, and both schedulers delivered some.
case_alert_two_schedulers_deliver_each_event_once() {
    recv_start ops
    recv_mode ops sleep:0.2
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id, max_active_runs) VALUES ('d', 16);
INSERT INTO dagq.task (dag_id, task_id, command) SELECT 'd', 't' || i, 'exit 1' FROM generate_series(1, 3) i;
INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('ops', 'webhook', '$(recv_url ops)');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{task_failed,run_failed}');
SQL
    alert_scheduler s1 --alert-threads 1
    alert_scheduler s2 --alert-threads 1
    alert_worker w1 --slots 8
    local i runs=()
    for i in 1 2 3 4 5 6; do runs+=("$(sql "SELECT dagq.trigger_dag('d')")"); done
    for i in "${runs[@]}"; do wait_run "$i" 60 >/dev/null; done
    wait_recv 60 ops 24
    sleep 2
    assert_eq 24 "$(recv_count ops)" "24 requests"
    assert_eq 24 "$(recv_py ops 'print(len({b["event_id"] for b in bodies}))')" "each event once"
    assert_eq 2 "$(sql "SELECT count(DISTINCT split_part(delivered_by, '/', 1)) FROM dagq.alert_delivery")" "both schedulers delivered"
}

# A delivering process killed -9 while the receiver holds its request: the
# lease expires, another scheduler sends it again with the same event_id;
# the receiver may see a duplicate, never a loss.
case_alert_delivering_process_killed_mid_delivery_loses_nothing() {
    recv_start ops
    recv_mode ops sleep:30
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id) VALUES ('d');
INSERT INTO dagq.task (dag_id, task_id, command) SELECT 'd', 't' || i, 'exit 1' FROM generate_series(1, 3) i;
INSERT INTO dagq.alert_channel (channel, kind, target, timeout) VALUES ('ops', 'webhook', '$(recv_url ops)', '4 seconds');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{task_failed,run_failed}');
SQL
    alert_scheduler s1 --alert-threads 1
    alert_worker w1
    local run
    run=$(sql "SELECT dagq.trigger_dag('d')")
    wait_run "$run" 30 >/dev/null
    wait_recv 20 ops 1
    local held
    held=$(recv_py ops 'print(bodies[0]["event_id"])')
    kill9 s1
    recv_mode ops ok
    alert_scheduler s2
    wait_until 40 "SELECT count(*) FILTER (WHERE state = 'delivered') = count(*) FROM dagq.alert_delivery" t
    sleep 1
    assert_eq 4 "$(recv_py ops 'print(len({b["event_id"] for b in bodies}))')" "every event arrived"
    assert_eq 2 "$(recv_py ops "print(sum(1 for b in bodies if b['event_id'] == $held))")" "the one in flight twice, with the same event_id"
    assert_eq "s2/" "$(sql "SELECT left(delivered_by, 3) FROM dagq.event e JOIN dagq.alert_delivery d USING (event_id) WHERE e.event_id = $held")" "delivered by the other scheduler"
}

# A receiver that hangs holds the alert threads, never scheduling: the hop
# from a task's end to its downstream's queueing stays fast beside it.
case_alert_hanging_receiver_does_not_delay_task_queueing() {
    recv_start ops
    recv_mode ops hang
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id) VALUES ('noisy'), ('chain');
INSERT INTO dagq.task (dag_id, task_id, command) SELECT 'noisy', 't' || i, 'exit 1' FROM generate_series(1, 6) i;
INSERT INTO dagq.task (dag_id, task_id, command) SELECT 'chain', 'c' || i, 'true' FROM generate_series(1, 6) i;
INSERT INTO dagq.task_dependency (dag_id, task_id, upstream_task_id)
SELECT 'chain', 'c' || i, 'c' || (i - 1) FROM generate_series(2, 6) i;
INSERT INTO dagq.alert_channel (channel, kind, target, timeout) VALUES ('ops', 'webhook', '$(recv_url ops)', '60 seconds');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{task_failed,run_failed,run_succeeded}');
SQL
    alert_scheduler sched
    alert_worker w1
    local noisy chain
    noisy=$(sql "SELECT dagq.trigger_dag('noisy')")
    wait_run "$noisy" 30 >/dev/null
    noisy=$(sql "SELECT dagq.trigger_dag('noisy')")
    wait_run "$noisy" 30 >/dev/null
    wait_until 10 "SELECT count(*) FROM dagq.alert_delivery WHERE lease_until > clock_timestamp()" 2
    chain=$(sql "SELECT dagq.trigger_dag('chain')")
    assert_eq success "$(wait_run "$chain" 30)" "chain run"
    local hop
    hop=$(sql "SELECT round(max(extract(epoch FROM d.queued_at - u.ended_at))::numeric, 3)
                 FROM dagq.task_instance d JOIN dagq.task_instance_dependency e ON e.ti_id = d.ti_id
                 JOIN dagq.task_instance u ON u.ti_id = e.upstream_ti_id WHERE d.run_id = $chain")
    echo "    longest hop: ${hop}s, beside $(sql "SELECT count(*) FROM dagq.alert_delivery WHERE lease_until > clock_timestamp()") deliveries held by the hanging receiver"
    assert_eq t "$(sql "SELECT $hop < 1.0")" "hop latency ${hop}s under 1 s"
    assert_eq 2 "$(sql "SELECT count(*) FROM dagq.alert_delivery WHERE lease_until > clock_timestamp() AND state = 'pending'")" "both alert threads still held"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.alert_delivery WHERE state = 'delivered'")" "nothing delivered meanwhile"
}

# e-mail: through a real SMTP server that requires STARTTLS and a login; the
# message names the DAG, the run and the task in its subject and body; the
# password (from a file) appears in no log and nowhere in the metastore.
case_alert_email_names_the_dag_run_and_task() {
    local py port pw=Sm7p-pa55word
    py=$(bash "$T_REPO/tests/alerts/venv.sh") || { fail "cannot make the aiosmtpd venv"; return; }
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T_CASE/key.pem" -out "$T_CASE/cert.pem" -days 2 \
        -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" >/dev/null 2>&1
    port=$(t_free_port)
    mkdir -p "$T_CASE/smtp"
    "$py" "$T_REPO/tests/alerts/smtpd.py" "$T_CASE/smtp" "$port" "$T_CASE/cert.pem" "$T_CASE/key.pem" alerts "$pw" \
        >>"$T_CASE/smtp/out" 2>&1 &
    T_WAIT=20 t_wait_for test -s "$T_CASE/smtp/smtpd.ready" || { fail "smtpd did not start: $(cat "$T_CASE/smtp/out")"; return; }
    printf '%s\n' "$pw" >"$T_CASE/smtp.pw"
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id) VALUES ('etl_orders');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('etl_orders', 'load_orders', 'echo "déjà: orders table missing"; exit 2');
INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('mail', 'email', 'oncall@example.com, dwh@example.com');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('mail', '{task_failed}');
SQL
    alert_scheduler sched --smtp-url "smtp://127.0.0.1:$port" --smtp-user alerts --smtp-password-file "$T_CASE/smtp.pw" \
        --smtp-from dagq@example.com --alert-ca-file "$T_CASE/cert.pem"
    alert_worker w1
    local run
    run=$(sql "SELECT dagq.trigger_dag('etl_orders')")
    wait_run "$run" 30 >/dev/null
    T_WAIT=30 t_wait_for test -s "$T_CASE/smtp/mail/1.json" || { fail "no mail arrived"; return; }
    local got
    got=$(python3 - "$T_CASE/smtp/mail" <<'PY'
import email, email.policy, json, sys
d = sys.argv[1]
env = json.load(open(d + "/1.json"))
m = email.message_from_bytes(open(d + "/1.eml", "rb").read(), policy=email.policy.default)
print(env["tls"], env["authenticated"], env["from"], ",".join(sorted(env["to"])))
print(m["From"], "|", m["To"])
print(m["Subject"])
print(m.get_content())
PY
)
    assert_contains "$got" "True True dagq@example.com dwh@example.com,oncall@example.com" "over STARTTLS, logged in, to both"
    assert_contains "$got" "dagq@example.com | oncall@example.com, dwh@example.com" "From and To"
    assert_contains "$got" "[dagq] task_failed: DAG etl_orders run $run task load_orders (try 1) - exit code 2" "subject names DAG, run and task"
    assert_contains "$got" "DAG:            etl_orders" "body: DAG"
    assert_contains "$got" "Run:            $run" "body: run"
    assert_contains "$got" "Task:           load_orders (try 1)" "body: task"
    assert_contains "$got" "déjà: orders table missing" "body: the log tail, UTF-8"
    assert_eq 1 "$(ls "$T_CASE/smtp/mail/"*.eml | wc -l)" "one mail"
    if grep -rqF "$pw" "$T_CASE"/*.log; then fail "the SMTP password is in a log"; fi
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.alert_delivery d, dagq.alert_channel c WHERE (d::text || c::text) LIKE '%$pw%'")" "nor in the metastore"
    assert_contains "$(sql "SELECT response FROM dagq.alert_delivery")" "SMTP 250" "the server's answer recorded"
}

# Slack: a body valid for an incoming webhook (text, one mrkdwn section of at
# most 3000 characters, &, < and > escaped), to a URL given by reference;
# a bearer token from headers_from reaches the receiver and nothing else.
case_alert_slack_body_is_valid_for_an_incoming_webhook() {
    recv_start slack
    mkdir -p "$T_CASE/secrets"
    printf 'Authorization: Bearer s3cr3t-t0ken\nX-Team: dwh\n' >"$T_CASE/secrets/slack-headers"
    export DAGQ_ALERT_SLACK_URL="http://127.0.0.1:${R_PORT[slack]}/services/T000/B000/SECRETPATH"
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id) VALUES ('etl_web');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('etl_web', 'scrape', 'echo "got <html> & <script>alert(1)</script>"; exit 1');
INSERT INTO dagq.alert_channel (channel, kind, target, headers_from)
VALUES ('chat', 'slack', 'env:DAGQ_ALERT_SLACK_URL', 'file:slack-headers');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('chat', '{task_failed,run_failed}');
SQL
    alert_scheduler sched --alert-secrets-dir "$T_CASE/secrets" --base-url http://ui.example
    unset DAGQ_ALERT_SLACK_URL
    alert_worker w1
    local run
    run=$(sql "SELECT dagq.trigger_dag('etl_web')")
    wait_run "$run" 30 >/dev/null
    wait_recv 30 slack 2
    assert_eq "/services/T000/B000/SECRETPATH|Bearer s3cr3t-t0ken|dwh" \
        "$(recv_py slack 'print("%s|%s|%s" % (reqs[0]["path"], reqs[0]["headers"]["Authorization"], reqs[0]["headers"]["X-Team"]))')" "URL and headers by reference"
    assert_eq "ok ok" "$(recv_py slack '
import re
out = []
for b in bodies:
    probs = []
    if set(b) - {"text", "blocks"}: probs.append("unknown keys %s" % (set(b) - {"text", "blocks"}))
    if not isinstance(b.get("text"), str) or not b["text"] or len(b["text"]) > 40000: probs.append("text")
    bl = b.get("blocks")
    if not isinstance(bl, list) or not 0 < len(bl) <= 50: probs.append("blocks")
    for x in bl or []:
        t = x.get("text", {})
        if x.get("type") != "section" or t.get("type") != "mrkdwn" or not 0 < len(t.get("text", "")) <= 3000:
            probs.append("section %r" % x)
        for s in (t.get("text", ""), b["text"]):
            bare = re.sub(r"<https?://[^|>]+\|[^>]*>", "", s)
            if "<" in bare or ">" in bare.replace("&gt;", "").replace("\n>", "\n").lstrip(">"):
                probs.append("unescaped < or > in %r" % s)
            if re.search(r"&(?!amp;|lt;|gt;)", s): probs.append("unescaped & in %r" % s)
    out.append("ok" if not probs else "; ".join(probs))
print(" ".join(out))')" "Slack bodies valid"
    assert_contains "$(recv_py slack 'print(bodies[0]["blocks"][0]["text"]["text"])')" "got &lt;html&gt; &amp; &lt;script&gt;" "log tail escaped"
    assert_contains "$(recv_py slack 'print(bodies[0]["text"])')" "task_failed: DAG etl_web run $run task scrape" "the notification line"
    assert_contains "$(recv_py slack 'print(bodies[0]["blocks"][0]["text"]["text"])')" "<http://ui.example/runs/$run|open the run>" "a link to the run"
    local s
    for s in s3cr3t-t0ken SECRETPATH; do
        if grep -rqF "$s" "$T_CASE"/*.log; then fail "$s is in a log"; fi
        assert_eq 0 "$(sql "SELECT count(*) FROM dagq.alert_delivery d, dagq.alert_channel c WHERE (d::text || c::text) LIKE '%$s%'")" "$s not in the metastore"
    done
}

# command: the event on stdin and in the environment, none of this
# process's settings; a note full of shell metacharacters runs nothing.
case_alert_command_gets_the_event_on_stdin_and_in_its_environment_and_runs_nothing_from_it() {
    lp_roles
    as "$ADMIN_URL" "INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('hook', 'command',
        'cat > $T_CASE/in.\$DAGQ_EVENT_ID.json; printf %s \"\$DAGQ_NOTE\" > $T_CASE/note.\$DAGQ_EVENT_ID; env > $T_CASE/env.\$DAGQ_EVENT_ID');
      INSERT INTO dagq.alert_rule (channel, events) VALUES ('hook', '{task_failed}')"
    sql "INSERT INTO dagq.dag (dag_id) VALUES ('d')" >/dev/null
    alert_scheduler sched
    local note eid
    note="x \$(touch $T_CASE/pwned1); touch $T_CASE/pwned2 \`touch $T_CASE/pwned3\` ' \" \\ | & > $T_CASE/pwned4
touch $T_CASE/pwned5 #"
    eid=$(psql -X -q -At -v ON_ERROR_STOP=1 -v note="$note" "$DAGQ_DATABASE_URL" -f - \
        <<<"SELECT dagq.emit('task_failed', 'd', NULL, 't', NULL, 1, 'failed', :'note')")
    T_WAIT=20 t_wait_for test -s "$T_CASE/env.$eid" || { fail "the command did not run"; return; }
    wait_until 10 "SELECT state FROM dagq.alert_delivery" delivered
    assert_eq "$note" "$(cat "$T_CASE/note.$eid")" "DAGQ_NOTE is the note, byte for byte"
    assert_eq "$eid|t|task_failed" "$(python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print("%s|%s|%s" % (b["event_id"], "t" if b["note"] == sys.argv[2] else "f", b["event"]))' "$T_CASE/in.$eid.json" "$note")" "the event JSON on stdin"
    assert_contains "$(cat "$T_CASE/env.$eid")" "DAGQ_DAG_ID=d" "event variables"
    assert_contains "$(cat "$T_CASE/env.$eid")" "DAGQ_EVENT=task_failed" "event variables"
    if grep -q '^DAGQ_DATABASE_URL=\|^DAGQ_BROKER_URL=' "$T_CASE/env.$eid"; then fail "the scheduler's settings reached the command"; fi
    local f
    for f in 1 2 3 4 5; do
        if [ -e "$T_CASE/pwned$f" ]; then fail "pwned$f: a metacharacter of the note ran"; fi
    done
    assert_contains "$(sql "SELECT response FROM dagq.alert_delivery")" "exit 0" "exit status recorded"
}

# batch_window: a run whose 20 tasks fail sends one task_failed message
# (count 20, every task in events), as soon as the run ended, then run_failed.
case_alert_batch_window_sends_one_message_for_a_runs_task_failures() {
    recv_start ops
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id, max_active_tasks) VALUES ('wide', 32);
INSERT INTO dagq.task (dag_id, task_id, command) SELECT 'wide', 't' || i, 'exit 1' FROM generate_series(1, 20) i;
INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('ops', 'webhook', '$(recv_url ops)');
INSERT INTO dagq.alert_rule (channel, events, batch_window) VALUES ('ops', '{task_failed}', '5 minutes');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{run_failed}');
SQL
    alert_scheduler sched
    alert_worker w1 --slots 8
    local run
    run=$(sql "SELECT dagq.trigger_dag('wide')")
    wait_run "$run" 30 >/dev/null
    wait_recv 20 ops 2
    sleep 2
    assert_eq "task_failed run_failed" "$(recv_events ops)" "two messages"
    assert_eq "20|20|20" "$(recv_py ops 'b = bodies[0]; print("%s|%s|%s" % (b["count"], len(b["events"]), len({e["task_id"] for e in b["events"]})))')" "one message for 20 failures"
    assert_eq "$(sql "SELECT min(event_id) FROM dagq.event WHERE event = 'task_failed'")" "$(recv_py ops 'print(reqs[0]["headers"]["Idempotency-Key"])')" "the batch's id is its first event's"
    assert_eq 20 "$(sql "SELECT count(*) FROM dagq.alert_delivery WHERE state = 'delivered' AND event = 'task_failed'")" "each event's delivery delivered"
}

# workers_missing: a worker group with queued tries and no live worker for
# --workers-missing-after seconds gives one event, once per outage.
case_alert_workers_missing_fires_once_per_outage() {
    recv_start ops
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id, default_worker_group) VALUES ('gpu_job', 'gpu');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('gpu_job', 't', 'true');
INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('ops', 'webhook', '$(recv_url ops)');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{workers_missing}');
SQL
    alert_scheduler sched --workers-missing-after 2
    alert_scheduler sched2 --workers-missing-after 2
    local run
    run=$(sql "SELECT dagq.trigger_dag('gpu_job')")
    wait_recv 20 ops 1
    sleep 3
    assert_eq "workers_missing" "$(recv_events ops)" "once"
    assert_contains "$(recv_py ops 'print(bodies[0]["note"])')" 'worker group "gpu" has 1 queued tries of this DAG and no live worker' "the note"
    alert_worker w1 --group gpu
    assert_eq success "$(wait_run "$run" 30)" "the run ends once a worker comes"
    wait_until 10 "SELECT count(*) FROM dagq.workers_missing_state" 0
}

# In order per run while a delivery is in flight: the receiver holds a run's
# first event for 2 s and then fails it; the run's later events wait for its
# retry instead of overtaking it (two alert threads are free meanwhile).
case_alert_a_runs_later_events_wait_for_an_earlier_one_in_flight() {
    recv_start ops
    recv_mode ops slowfail:2
    sqlf <<SQL
INSERT INTO dagq.dag (dag_id) VALUES ('d');
INSERT INTO dagq.task (dag_id, task_id, command, retries, retry_delay) VALUES ('d', 't', 'exit 1', 1, '0');
INSERT INTO dagq.alert_channel (channel, kind, target) VALUES ('ops', 'webhook', '$(recv_url ops)');
INSERT INTO dagq.alert_rule (channel, events) VALUES ('ops', '{task_retry,task_failed,run_failed}');
SQL
    alert_scheduler sched --alert-threads 3
    alert_worker w1
    local run
    run=$(sql "SELECT dagq.trigger_dag('d')")
    wait_run "$run" 30 >/dev/null
    wait_recv 30 ops 4
    sleep 1
    assert_eq "task_retry task_retry task_failed run_failed" "$(recv_events ops)" "the retry of the first before the others"
}
