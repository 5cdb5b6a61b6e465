#!/usr/bin/env bash
# scripts/compose-demo.sh (make compose-demo) — the docker-compose stack
# for a look: brings docker/docker-compose.yml up with two workers and new
# secrets (docker/make-secrets.sh; the images built or pulled as for the
# compose tests, tests/compose/), triggers the example DAG with the dagq CLI
# in the cli service, makes a viewer token in the admin service, prints the
# finished run, its tasks, where the UI is with that token, and where and
# what the schedulers' metrics are. From a terminal it then waits for Enter
# (on podman, whose stack lives in a network namespace of its own,
# forwarding the UI's and the schedulers' ports from this machine's
# 127.0.0.1 into it, tests/compose/forward.py), and tears the stack down.
# DAGQ_COMPOSE_ENGINE=docker runs it on a Docker engine, with the ports on
# the host (8080, 9090 and 9092).
set -u
T_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ce_log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
. "$T_REPO/tests/compose/engine.sh"
. "$T_REPO/tests/compose/images.sh"
. "$T_REPO/tests/compose/stack.sh"

demo() {
    trap 'ce_pump_stop; [ -n "${FWD_PID:-}" ] && kill "$FWD_PID" 2>/dev/null; cs_down; ce_forget; ce_service_stop' EXIT
    trap 'exit 130' INT TERM
    ce_forget
    ce_service_start || exit 1
    ce_pump_start
    cs_secrets || exit 1
    cs_use redis dagqdemo
    ce_log "demo: docker-compose -f docker/docker-compose.yml up -d --scale worker=2 (secrets in $DAGQ_SECRETS)"
    cs_up 2 || exit 1
    local run
    run=$(cs_dagq trigger example_etl) || { echo "dagq trigger failed: $run"; exit 1; }
    ce_log "demo: docker-compose run --rm cli dagq trigger example_etl: run $run; waiting for it"
    local st
    st=$(cs_wait_run "$run" 120)
    echo
    echo "\$ docker-compose run --rm cli dagq runs"
    cs_dagq runs
    echo
    echo "\$ docker-compose run --rm cli dagq tasks $run"
    cs_dagq tasks "$run"
    echo
    echo "\$ docker-compose run --rm cli dagq workers"
    cs_dagq workers
    echo
    local token
    token=$(cs_admin tokens create --name demo-viewer --role viewer | tail -1)
    cs_wait_http 60 "$CS_WEB_PORT" /api/v1/health 200 || exit 1
    echo "The web UI (dagq-web, as its login role web):"
    echo "  http://127.0.0.1:$CS_WEB_PORT/   log in with this viewer token (docker-compose run --rm admin"
    echo "  dagq tokens create --name demo-viewer --role viewer):"
    echo "  $token"
    echo
    echo "Metrics (Prometheus text) and health of the two schedulers:"
    echo "  http://127.0.0.1:$CS_PORT1/metrics  http://127.0.0.1:$CS_PORT1/healthz   (scheduler-1)"
    echo "  http://127.0.0.1:$CS_PORT2/metrics  http://127.0.0.1:$CS_PORT2/healthz   (scheduler-2)"
    echo "Some of what scheduler-1 reports now:"
    curl -s --max-time 5 "http://127.0.0.1:$CS_PORT1/metrics" |
        grep -E '^dagq_(runs_finished_total|task_instances_total|group_live_workers|up)' | sed 's/^/  /'
    echo
    if [ -t 0 ]; then
        if [ "$DAGQ_COMPOSE_ENGINE" = podman ]; then
            python3 "$T_REPO/tests/compose/forward.py" "$CE_HOST_NETNS_FD" \
                "$CS_WEB_PORT" "$CS_PORT1" "$CS_PORT2" >"$CE_RUN/forward.log" 2>&1 &
            FWD_PID=$!
            local deadline=$((SECONDS + 10))
            until grep -q '^forwarding' "$CE_RUN/forward.log" || ((SECONDS >= deadline)); do sleep 0.1; done
            sed 's/^/  podman, whose stack has a network namespace of its own: /' "$CE_RUN/forward.log"
        fi
        read -r -p "press Enter to stop the demo " _ || true
    fi
    ce_log "demo: the run is $st; tearing the stack down"
    [ "$st" = success ]
}

case ${1:-} in
__images) ci_prepare redis; exit ;;
__run) demo; exit ;;
esac

ce_drive "$T_REPO/scripts/compose-demo.sh" redis
rc=$?
case $rc in
0) ce_log "demo: done" ;;
2) echo "compose-demo: this machine cannot run the stack (above)" ;;
3) echo "compose-demo: the images could not be had (above)" ;;
*) echo "compose-demo: failed (status $rc)" ;;
esac
exit $rc
