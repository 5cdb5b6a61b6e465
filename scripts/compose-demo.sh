#!/usr/bin/env bash
# scripts/compose-demo.sh (make compose-demo) — the docker-compose stack
# for a look: brings docker/docker-compose.yml up with two workers (the
# images built or pulled as for the compose tests, tests/compose/), triggers
# the example DAG with the dagq CLI in the scheduler-1 container, prints the
# finished run, its tasks, and where and what the schedulers' metrics are,
# then tears the stack down. On podman (the default) the stack lives in a
# network namespace of its own, gone with it; DAGQ_COMPOSE_ENGINE=docker
# runs it on a Docker engine, with the metrics on the host's ports
# 9090 and 9092.
set -u
T_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ce_log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
. "$T_REPO/tests/compose/engine.sh"
. "$T_REPO/tests/compose/images.sh"
. "$T_REPO/tests/compose/stack.sh"

demo() {
    trap 'ce_pump_stop; cs_down; ce_forget; ce_service_stop' EXIT
    trap 'exit 130' INT TERM
    ce_forget
    ce_service_start || exit 1
    ce_pump_start
    cs_use redis dagqdemo
    ce_log "demo: docker-compose -f docker/docker-compose.yml up -d --scale worker=2"
    cs_up 2 || exit 1
    local run
    run=$(cs_dagq trigger example_etl) || { echo "dagq trigger failed: $run"; exit 1; }
    ce_log "demo: dagq trigger example_etl: run $run; waiting for it"
    local st
    st=$(cs_wait_run "$run" 120)
    echo
    echo "\$ docker-compose exec scheduler-1 dagq runs"
    cs_dagq runs
    echo
    echo "\$ docker-compose exec scheduler-1 dagq tasks $run"
    cs_dagq tasks "$run"
    echo
    echo "\$ docker-compose exec scheduler-1 dagq workers"
    cs_dagq workers
    echo
    echo "Metrics (Prometheus text) and health of the two schedulers:"
    echo "  http://127.0.0.1:$CS_PORT1/metrics  http://127.0.0.1:$CS_PORT1/healthz   (scheduler-1)"
    echo "  http://127.0.0.1:$CS_PORT2/metrics  http://127.0.0.1:$CS_PORT2/healthz   (scheduler-2)"
    [ "$DAGQ_COMPOSE_ENGINE" = podman ] &&
        echo "  (published in the demo's own network namespace; with Docker, on this host)"
    echo "Some of what scheduler-1 reports now:"
    curl -s --max-time 5 "http://127.0.0.1:$CS_PORT1/metrics" |
        grep -E '^dagq_(runs_finished_total|task_instances_total|group_live_workers|up)' | sed 's/^/  /'
    echo
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
