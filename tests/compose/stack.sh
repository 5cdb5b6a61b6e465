# shellcheck shell=bash
# tests/compose/stack.sh — driving docker/docker-compose.yml, sourced after
# tests/compose/engine.sh by tests/compose_test.sh and scripts/compose-demo.sh.
#
# cs_use BROKER PROJECT [PORT1 PORT2 WEB_PORT] selects the stack: the
# compose project PROJECT on redis (the file's default) or kafka (BROKER=kafka
# and --profile kafka, as the README says), with the schedulers' ports
# published on PORT1 and PORT2 and dagq-web's on WEB_PORT (the file's
# SCHEDULER_1_PORT, SCHEDULER_2_PORT and WEB_PORT; default 9090, 9092 and
# 8080), its secrets those cs_secrets made (DAGQ_SECRETS).
# cs_compose runs the compose command on the real file, with one layer on
# top, tests/compose/ledger.yml, that only mounts a directory of the test
# run into the workers as /ledger (cs_ledger_cmd). Everything else is read
# from the metastore, with psql in the postgres container as its superuser
# (cs_sql, the tests' setup and checks) or as one of the stack's logins
# (cs_sql_as), and with the dagq CLI in the stack's cli and admin services
# (cs_dagq, cs_admin), as a user would.

CS_FILE="$T_REPO/docker/docker-compose.yml"
CS_FAILS=0

cs_use() {
    CS_BROKER=$1
    CS_PROJECT=$2
    CS_PORT1=${3:-9090}
    CS_PORT2=${4:-9092}
    CS_WEB_PORT=${5:-8080}
    export SCHEDULER_1_PORT=$CS_PORT1 SCHEDULER_2_PORT=$CS_PORT2 WEB_PORT=$CS_WEB_PORT
    CS_ARGS=(-p "$CS_PROJECT" -f "$CS_FILE")
    [ -n "${DAGQ_COMPOSE_LEDGER:-}" ] && CS_ARGS+=(-f "$T_REPO/tests/compose/ledger.yml")
    if [ "$1" = kafka ]; then
        export BROKER=kafka
        CS_ARGS+=(--profile kafka)
    else
        unset BROKER
    fi
}

# cs_secrets: new secrets for the stacks of this run, made by
# docker/make-secrets.sh in $CE_RUN/secrets (DAGQ_SECRETS), as a user
# replaces the examples; every password of them is a line of
# $CE_RUN/secrets.words (what no output may show, cs_secret_words).
cs_secrets() {
    export DAGQ_SECRETS="$CE_RUN/secrets"
    sh "$T_REPO/docker/make-secrets.sh" "$DAGQ_SECRETS" >/dev/null || return 1
    local f
    for f in "$DAGQ_SECRETS"/*; do
        case $f in
        *_password) cat "$f" ;;
        *_url) sed -n 's|^[a-z]*://[^:@/]*:\([^@]*\)@.*|\1|p' "$f" ;;
        esac
    done | grep . >"$CE_RUN/secrets.words"
}

# cs_secret_login NAME: the user name in the secret NAME (a database URL)
cs_secret_login() { sed -n 's|^[a-z]*://\([^:@/]*\):.*|\1|p' "$DAGQ_SECRETS/$1"; }

# cs_compose ARGS...: the compose command on the stack, bounded in time
# (CS_TIMEOUT seconds, default 300), reading nothing (timeout runs it in a
# process group of its own: one that read a terminal, make compose-demo's,
# would be stopped).
cs_compose() {
    timeout "${CS_TIMEOUT:-300}" "${CE_COMPOSE[@]}" "${CS_ARGS[@]}" "$@" </dev/null
}

# cs_sql QUERY: psql in the postgres container as the superuser, unaligned,
# one row a line. cs_sqlf: the same with the SQL on stdin. These are what
# the tests poll with, so they go through the engine's exec on the
# container compose made (docker-compose, a Python program, costs a second
# of CPU a call). cs_sql_as NAME QUERY: the same as the login whose URL is
# the secret NAME (scheduler_database_url, ...), over TCP with its password;
# PostgreSQL's error, if any, on stdout.
cs_sql() { cs__psql -U postgres -d dagq -c "$1" </dev/null; }
cs_sqlf() { cs__psql -U postgres -d dagq -f -; }
cs_sql_as() { cs__psql -c "$2" "$(cat "$DAGQ_SECRETS/$1")" 2>&1 </dev/null; }
cs__psql() {
    local memo="$CE_RUN/postgres-of-$CS_PROJECT" pg rc
    pg=$(cat "$memo" 2>/dev/null)
    if [ -z "$pg" ]; then
        pg=$(cs_ids postgres)
        [ -n "$pg" ] || { echo "no postgres container" >&2; return 1; }
        echo "$pg" >"$memo"
    fi
    timeout 60 "$(ce_engine_cmd)" exec -i "$pg" psql -X -q -At -v ON_ERROR_STOP=1 "$@"
    rc=$?
    [ $rc -lt 125 ] || rm -f "$memo" # no such container (any more): look it up again next time
    return $rc
}

# cs_dagq ARGS...: the dagq CLI as the stack's operator, as a user runs it
# (`compose run --rm cli dagq ...`); cs_admin ARGS...: as its administrator
# (the admin service). The command's stdout; its stderr, and compose's own
# words, go to $CE_RUN/tools-$CS_PROJECT.log (searched for secrets at the
# end, as the containers' logs are) and, when it failed, to stderr.
cs_dagq() { cs__tool cli "$@"; }
cs_admin() { cs__tool admin "$@"; }
cs__tool() {
    local svc=$1 out="$CE_RUN/tool-$CS_PROJECT.out" err="$CE_RUN/tool-$CS_PROJECT.err" rc
    shift
    CS_TIMEOUT=60 cs_compose run --rm -T "$svc" dagq "$@" >"$out" 2>"$err" </dev/null
    rc=$?
    cat "$out"
    { echo "== $svc: dagq $* (exit $rc)"; cat "$out" "$err"; } >>"$CE_RUN/tools-$CS_PROJECT.log"
    [ $rc -eq 0 ] || sed "s/^/$svc: /" "$err" >&2
    return $rc
}

# cs_ids [SERVICE]: the full ids of the project's containers (of SERVICE),
# running or not, by the labels compose gives them.
cs_ids() {
    local f=(--filter "label=com.docker.compose.project=$CS_PROJECT")
    [ -n "${1:-}" ] && f+=(--filter "label=com.docker.compose.service=$1")
    timeout 60 "$(ce_engine_cmd)" ps -a -q --no-trunc "${f[@]}" 2>/dev/null
}

# cs_container HOSTNAME: the container whose host name it is (a container's
# host name is its id's first 12 characters).
cs_container() {
    local id
    for id in $(cs_ids); do
        case $id in "$1"*) echo "$id"; return 0 ;; esac
    done
    return 1
}

# ---- assertions -----------------------------------------------------------

fail() {
    echo "FAIL: $*"
    CS_FAILS=$((CS_FAILS + 1))
}

assert_eq() { # EXPECTED ACTUAL WHAT
    if [ "$1" != "$2" ]; then fail "$3: expected [$1], got [$2]"; else echo "  ok: $3"; fi
}

assert_le() { # A B WHAT: A <= B
    if [ -n "$1" ] && [ -n "$2" ] && [ "$1" -le "$2" ]; then echo "  ok: $3"; else fail "$3: expected $1 <= $2"; fi
}

assert_contains() { # HAYSTACK NEEDLE WHAT
    case $1 in *"$2"*) echo "  ok: $3" ;; *) fail "$3: [$2] not in [$(echo "$1" | head -c 400)]" ;; esac
}

# cs_wait TIMEOUT QUERY EXPECTED: polls the metastore once a second until
# the query returns EXPECTED; false (and the last answer in CS_GOT) after
# TIMEOUT seconds.
cs_wait() {
    local deadline=$((SECONDS + $1))
    while :; do
        CS_GOT=$(cs_sql "$2" 2>&1)
        [ "$CS_GOT" = "$3" ] && return 0
        ((SECONDS >= deadline)) && return 1
        sleep 1
    done
}

# cs_wait_run RUN TIMEOUT: the run's state once it is success or failed, or
# the state it still has after TIMEOUT seconds.
cs_wait_run() {
    cs_wait "$2" "SELECT state IN ('success', 'failed') FROM dagq.dag_run WHERE run_id = $1" t
    cs_sql "SELECT state FROM dagq.dag_run WHERE run_id = $1"
}

# cs_trigger DAG: a manual run through the SQL contract; its id.
cs_trigger() { cs_sql "SELECT dagq.trigger_dag('$1')"; }

# cs_one_try_each RUN N WHAT: the run has N task instances, each with exactly
# one try, and that try succeeded.
cs_one_try_each() {
    assert_eq "$2|$2|$2" "$(cs_sql "SELECT count(DISTINCT i.ti_id), count(t.*),
            count(*) FILTER (WHERE t.state = 'success' AND i.state = 'success' AND i.try_number = 1)
        FROM dagq.task_instance i LEFT JOIN dagq.task_try t USING (ti_id) WHERE i.run_id = $1")" \
        "$3: task instances, tries, first tries that succeeded"
}

# ---- the ledger: what the tasks' processes did ----------------------------

# cs_ledger_cmd SECONDS [FIRST_TRY_SECONDS]: a task command that appends
# "TASK TRY HOST start" to the run's ledger file, sleeps, and appends
# "TASK TRY HOST done" (with FIRST_TRY_SECONDS, its first try sleeps that
# long instead: the victim of a fault).
cs_ledger_cmd() {
    local sleep="sleep $1"
    [ -n "${2:-}" ] && sleep="if [ \"\$DAGQ_TRY_NUMBER\" = 1 ]; then sleep $2; else sleep $1; fi"
    printf '%s' "l=/ledger/\$DAGQ_RUN_ID; h=\$(cat /etc/hostname); "
    printf '%s' "echo \"\$DAGQ_TASK_ID \$DAGQ_TRY_NUMBER \$h start\" >>\$l; $sleep; "
    printf '%s' "echo \"\$DAGQ_TASK_ID \$DAGQ_TRY_NUMBER \$h done\" >>\$l"
}

cs_ledger() { cat "$DAGQ_COMPOSE_LEDGER/$1" 2>/dev/null; }

# cs_ledger_once RUN N WHAT: N tasks started, each once, and each finished.
cs_ledger_once() {
    local l
    l=$(cs_ledger "$1")
    assert_eq "$2 $2 $2 $2" "$(echo "$l" | awk '
        $4 == "start" { s++; st[$1] = 1 } $4 == "done" { d++; dn[$1] = 1 }
        END { printf "%d %d %d %d", s, length(st), d, length(dn) }')" \
        "$3: ledger starts, tasks started, ends, tasks ended"
}

# ---- the stack ------------------------------------------------------------

# cs_up WORKERS: `up -d --scale worker=WORKERS` (what a user types; it also
# brings back whatever an earlier case stopped or killed; skipped when every
# long-running service already runs, WORKERS workers, since all it would do
# is run the idempotent one-shots again), then waits until WORKERS workers
# heartbeat in the metastore and both schedulers answer /healthz 200 on
# their published ports.
cs_up() {
    local t0=$SECONDS
    if cs__intact "$1"; then
        echo "  (the stack runs as it should: no compose up)"
    elif ! cs_compose up -d --scale worker="$1" >>"$CE_RUN/compose.log" 2>&1; then
        fail "compose up -d --scale worker=$1: $(tail -5 "$CE_RUN/compose.log")"
        return 1
    else
        echo "  compose up -d --scale worker=$1 in $((SECONDS - t0)) s"
    fi
    cs_wait 90 "SELECT count(*) FROM dagq.worker
                 WHERE state = 'up' AND heartbeat_at > clock_timestamp() - interval '12 seconds'" "$1" ||
        { fail "waited 90 s for $1 live workers in dagq.worker, last [$CS_GOT]"; return 1; }
    cs_wait_http 60 "$CS_PORT1" /healthz 200 || return 1
    cs_wait_http 60 "$CS_PORT2" /healthz 200 || return 1
}

# cs__intact WORKERS: the services `up` keeps running (postgres, redis, the
# broker when it is kafka, both schedulers, web) run, one container each,
# and WORKERS workers. (By the containers' labels, read with inspect: ps
# --format has them as a map on podman but as a string on Docker.)
cs__intact() {
    local ids running want="postgres redis scheduler-1 scheduler-2 web" n
    [ "$CS_BROKER" = kafka ] && want="$want kafka"
    ids=$(timeout 60 "$(ce_engine_cmd)" ps -q --no-trunc --filter status=running \
        --filter "label=com.docker.compose.project=$CS_PROJECT" 2>/dev/null) || return 1
    [ -n "$ids" ] || return 1
    # shellcheck disable=SC2086 # one id a word
    running=$(timeout 60 "$(ce_engine_cmd)" inspect \
        --format '{{index .Config.Labels "com.docker.compose.service"}}' $ids 2>/dev/null) || return 1
    [ "$(echo "$running" | grep -cx worker)" = "$1" ] || return 1
    for n in $want; do
        [ "$(echo "$running" | grep -cx -- "$n")" = 1 ] || return 1
    done
}

cs_http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$1$2"; }

cs_wait_http() { # TIMEOUT PORT PATH CODE
    local deadline=$((SECONDS + $1)) got
    while :; do
        got=$(cs_http_status "$2" "$3")
        [ "$got" = "$4" ] && return 0
        if ((SECONDS >= deadline)); then
            fail "waited $1 s for GET $3 on port $2 to answer $4, last [$got]"
            return 1
        fi
        sleep 1
    done
}

# cs_metric PORT 'name{labels}': the sample's value from /metrics.
cs_metric() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k { print $2 }'
}

# cs_wait_metric TIMEOUT PORT 'name{labels}' VALUE: polls /metrics.
cs_wait_metric() {
    local deadline=$((SECONDS + $1)) got
    while :; do
        got=$(cs_metric "$2" "$3")
        [ "$got" = "$4" ] && return 0
        if ((SECONDS >= deadline)); then
            fail "waited $1 s for $3 = $4 on port $2, last [$got]"
            return 1
        fi
        sleep 1
    done
}

# cs_down: the whole stack and its volumes, gone.
cs_down() {
    rm -f "$CE_RUN/postgres-of-$CS_PROJECT"
    CS_TIMEOUT=180 cs_compose down -v --remove-orphans -t 10 >>"$CE_RUN/compose.log" 2>&1
}

# cs_save_logs DIR: every container's log (for a failed case).
cs_save_logs() {
    mkdir -p "$1"
    local id name
    for id in $(cs_ids); do
        name=$(ce_engine inspect --format '{{.Name}}' "$id" 2>/dev/null | tr -d /)
        ce_engine logs --timestamps "$id" >"$1/${name:-$id}.log" 2>&1
    done
}
