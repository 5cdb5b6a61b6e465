# shellcheck shell=bash
# tests/compose/engine.sh — the container engine the compose tests drive,
# sourced by tests/compose_test.sh and scripts/compose-demo.sh (which define
# T_REPO and ce_log).
#
# DAGQ_COMPOSE_ENGINE=podman (the default, what `make test` runs): Debian's
# podman as root with runc, every piece of its state private to the test run:
#   - storage (images, layers, volumes, the container database) in the cache,
#     $DAGQ_COMPOSE_CACHE (default /var/tmp/dagq-compose-cache), kept between
#     runs; runtime state (run root, tmp dir, networks) under the private
#     /run of the namespaces below, gone with them (fixed paths: podman's
#     database pins the ones it was created with); configuration, logs and
#     the API socket in $CE_RUN, a fresh directory removed at the end;
#   - every podman process runs in namespaces of its own (ce_ns): a mount
#     namespace with its own /run and /dev/shm (and /var/lib read-only), a
#     pid namespace (when its first process ends, the kernel kills whatever
#     is left in it: conmon, containers, the API service), and, while the
#     stack runs, a network namespace of its own, so bridges, firewall rules
#     and the published ports never touch the host's network;
#   - the Docker API comes from `podman system service` on $CE_RUN/podman.sock
#     (DOCKER_HOST), for Debian's docker-compose 1.29;
#   - podman runs health checks only through systemd timers, which this
#     machine has not: ce_pump_start runs `podman healthcheck run` on every
#     container that has one, every 2 s while it is not healthy, every 10 s
#     once it is (docker-compose waits on them for depends_on conditions).
# The machine needs no registry: tests/compose/images.sh builds what cannot
# be pulled.
#
# DAGQ_COMPOSE_ENGINE=docker: a Docker engine the machine already runs (its
# daemon, its health checks, `docker compose` or docker-compose); nothing of
# the above is set up, images are pulled as usual, and the published ports
# (9090, 9092 and, for the second stack, 19090, 19092) must be free on the host.

: "${DAGQ_COMPOSE_ENGINE:=podman}"
: "${DAGQ_COMPOSE_CACHE:=/var/tmp/dagq-compose-cache}"
CE_CACHE=$DAGQ_COMPOSE_CACHE

# ce_require: every program the engine needs, or the reason it cannot run
# (printed, false). Never a skip: a machine without them fails the tests.
ce_require() {
    local missing=() p progs
    case $DAGQ_COMPOSE_ENGINE in
    podman) progs="podman runc conmon netavark docker-compose debootstrap unshare ip curl flock" ;;
    docker) progs="docker curl" ;;
    *)
        echo "DAGQ_COMPOSE_ENGINE=$DAGQ_COMPOSE_ENGINE: expected podman or docker" >&2
        return 1
        ;;
    esac
    for p in $progs; do
        command -v "$p" >/dev/null 2>&1 || [ -x "/usr/lib/podman/$p" ] || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "the compose tests need ${missing[*]} (make deps installs them)" >&2
        return 1
    fi
    if [ "$DAGQ_COMPOSE_ENGINE" = podman ] && [ "$(id -u)" -ne 0 ]; then
        echo "the compose tests run podman as root (make test does, as CI does)" >&2
        return 1
    fi
    if [ "$DAGQ_COMPOSE_ENGINE" = docker ] && ! docker info >/dev/null 2>&1; then
        echo "DAGQ_COMPOSE_ENGINE=docker, but no Docker engine answers: $(docker info 2>&1 | tail -1)" >&2
        return 1
    fi
}

# ce_configure RUN_DIR: podman's configuration for this run, exported
# through CONTAINERS_CONF, CONTAINERS_STORAGE_CONF and
# CONTAINERS_REGISTRIES_CONF (each replaces the machine's own file).
ce_configure() {
    CE_RUN=$1
    export CE_RUN
    [ "$DAGQ_COMPOSE_ENGINE" = podman ] || return 0
    mkdir -p "$CE_CACHE/storage"
    # Podman's default ulimits (nofile and nproc 1048576) are above what
    # this sandbox lets a process raise them to. crun 1.8 refuses this
    # host's hybrid cgroup v1/v2 layout; runc runs, with cgroupfs (there is
    # no systemd). An exec session's conmon lingers exit_command_delay
    # seconds (default 300) for the API to read its status: with a health
    # check every few seconds, that is hundreds of them.
    cat >"$CE_RUN/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[network]
network_backend = "netavark"
network_config_dir = "/run/containers/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$CE_RUN/events.log"
tmp_dir = "/run/libpod"
exit_command_delay = 10
EOF
    cat >"$CE_RUN/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$CE_CACHE/storage"
runroot = "/run/containers/storage"
EOF
    # image names as Docker reads them: postgres:16-bookworm is
    # docker.io/library/postgres:16-bookworm
    cat >"$CE_RUN/registries.conf" <<EOF
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
    export CONTAINERS_CONF="$CE_RUN/containers.conf"
    export CONTAINERS_STORAGE_CONF="$CE_RUN/storage.conf"
    export CONTAINERS_REGISTRIES_CONF="$CE_RUN/registries.conf"
}

# ce_ns [--net] COMMAND...: runs COMMAND in private mount and pid namespaces
# (and a network namespace of its own, with only loopback, given --net),
# with a private /run and /dev/shm, and /var/lib read-only (podman's image
# library keeps a blob cache in /var/lib/containers when it can, and works
# without). When COMMAND ends, or unshare is killed, everything it left
# running in there is killed with it. A no-op wrapper with
# DAGQ_COMPOSE_ENGINE=docker.
ce_ns() {
    local net=()
    if [ "${1:-}" = --net ]; then
        net=(--net)
        shift
    fi
    if [ "$DAGQ_COMPOSE_ENGINE" != podman ]; then
        "$@"
        return
    fi
    unshare "${net[@]}" --mount --pid --fork --mount-proc --propagation private --kill-child \
        bash -c '
            lo=$1
            shift
            mount -t tmpfs -o mode=0755 tmpfs /run &&
                mount -t tmpfs -o mode=1777 tmpfs /dev/shm &&
                mount --bind /var/lib /var/lib && mount -o remount,bind,ro /var/lib &&
                { [ "$lo" = 0 ] || ip link set lo up; } &&
                exec "$@"' ce_ns "${#net[@]}" "$@"
}

# ce_engine ARGS...: the engine's own CLI (podman inside ce_ns, or docker);
# ce_engine_cmd: its name.
ce_engine_cmd() { if [ "$DAGQ_COMPOSE_ENGINE" = podman ]; then echo podman; else echo docker; fi; }
ce_engine() { "$(ce_engine_cmd)" "$@"; }

# ce_service_start: the Docker API for docker-compose (podman: the API
# service on $CE_RUN/podman.sock, in its own session so a Ctrl-C reaches
# only the tests, which then tear the stack down through it). Sets
# DOCKER_HOST and CE_COMPOSE (the compose command, an array).
ce_service_start() {
    if [ "$DAGQ_COMPOSE_ENGINE" = docker ]; then
        if docker compose version >/dev/null 2>&1; then CE_COMPOSE=(docker compose); else CE_COMPOSE=(docker-compose); fi
        return 0
    fi
    CE_COMPOSE=(docker-compose)
    local sock="$CE_RUN/podman.sock" deadline=$((SECONDS + 30))
    setsid podman system service --time=0 "unix://$sock" >>"$CE_RUN/service.log" 2>&1 </dev/null &
    CE_SERVICE_PID=$!
    export DOCKER_HOST="unix://$sock"
    until curl -sf --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; do
        if ! kill -0 "$CE_SERVICE_PID" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "podman system service did not start; $CE_RUN/service.log says:" >&2
            tail -20 "$CE_RUN/service.log" >&2
            return 1
        fi
        sleep 0.1
    done
    ce_log "engine: podman $(podman version --format '{{.Client.Version}}') API on $sock"
}

ce_service_stop() {
    [ -n "${CE_SERVICE_PID:-}" ] || return 0
    kill -TERM "$CE_SERVICE_PID" 2>/dev/null
    local deadline=$((SECONDS + 10))
    while kill -0 "$CE_SERVICE_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$CE_SERVICE_PID" 2>/dev/null
    wait "$CE_SERVICE_PID" 2>/dev/null
    CE_SERVICE_PID=""
}

# The health-check pump (podman only; see the top of this file).
ce__pump() {
    local n=0 c
    while :; do
        for c in $(podman ps -q --filter health=starting --filter health=unhealthy 2>/dev/null); do
            podman healthcheck run "$c" >/dev/null 2>&1
        done
        if ((n % 5 == 0)); then
            for c in $(podman ps -q --filter health=healthy 2>/dev/null); do
                podman healthcheck run "$c" >/dev/null 2>&1
            done
        fi
        n=$((n + 1))
        sleep 2
    done
}

ce_pump_start() {
    [ "$DAGQ_COMPOSE_ENGINE" = podman ] || return 0
    setsid bash -c "$(declare -f ce__pump); ce__pump" >/dev/null 2>&1 </dev/null &
    CE_PUMP_PID=$!
}

ce_pump_stop() {
    [ -n "${CE_PUMP_PID:-}" ] || return 0
    kill -TERM "$CE_PUMP_PID" 2>/dev/null
    wait "$CE_PUMP_PID" 2>/dev/null
    CE_PUMP_PID=""
}

# ce_health CONTAINER: its health status (starting, healthy, unhealthy), or
# nothing when it has no health check.
ce_health() {
    ce_engine inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" 2>/dev/null
}

# ce_forget: removes every container and volume podman's storage in the
# cache still holds from an earlier run that was killed before its own
# teardown (only this test's containers live there).
ce_forget() {
    [ "$DAGQ_COMPOSE_ENGINE" = podman ] || return 0
    local left
    left=$(podman ps -aq 2>/dev/null | wc -l)
    if [ "$left" -gt 0 ]; then
        ce_log "engine: removing $left containers left by an earlier run"
        podman rm -af -t 0 >/dev/null 2>&1
    fi
    podman volume prune -f >/dev/null 2>&1
    podman network prune -f >/dev/null 2>&1
    return 0
}

# ce_host_cleanup (on the host, after the namespaces are gone): cgroups runc
# made under libpod_parent for containers that were killed with their
# namespace rather than removed. Only empty ones go (rmdir refuses others).
ce_host_cleanup() {
    [ "$DAGQ_COMPOSE_ENGINE" = podman ] || return 0
    local d
    for d in /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/libpod_parent; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    return 0
}

# ce_drive SCRIPT BROKERS ARGS... (on the host): what a compose test or
# demo script does around its own work. Checks the machine, fetches the
# Kafka jars when BROKERS has kafka, takes the cache's lock (one run at a
# time: podman's storage is shared), makes the run directory, then runs
# `bash SCRIPT __images BROKERS` in ce_ns and `bash SCRIPT __run BROKERS
# ARGS...` in ce_ns --net (with CE_HOST_NETNS_FD, an open descriptor of the
# host's network namespace); the caller reads what __run left in $CE_RUN
# before it exits (an EXIT trap removes $CE_RUN and stray cgroups; with
# DAGQ_COMPOSE_KEEP=1 the directory stays). Returns __run's status, or
# 2 (the machine cannot run it, said why), 3 (the images failed), 130
# (interrupted: Ctrl-C reaches the namespaces too, which tear themselves
# down, and is waited for).
ce_drive() {
    local script=$1 brokers=$2 rc
    shift 2
    ce_require || return 2
    case " $brokers " in *" kafka "*)
        t_log() { ce_log "$@"; }
        # shellcheck source=../kafka.sh
        . "$T_REPO/tests/kafka.sh"
        kafka_fetch || { echo "the Kafka jars (tests/.kafka) for the kafka stand-in could not be fetched" >&2; return 2; }
        ;;
    esac
    mkdir -p "$CE_CACHE" || return 2
    exec {CE_LOCK}>"$CE_CACHE/lock"
    if ! flock -n "$CE_LOCK"; then
        ce_log "engine: another run holds $CE_CACHE; waiting for it"
        flock -w 1800 "$CE_LOCK" || { echo "$CE_CACHE stayed locked for 30 minutes" >&2; return 2; }
    fi
    ce_configure "$(mktemp -d /tmp/dagq-compose.XXXXXX)"
    trap ce__drive_cleanup EXIT
    CE_INTERRUPTED=0
    trap 'CE_INTERRUPTED=1' INT TERM
    local t0=$SECONDS
    ce_ns bash "$script" __images "$brokers"
    rc=$?
    [ "$CE_INTERRUPTED" = 1 ] && return 130
    [ $rc -eq 0 ] || return 3
    ce_log "engine: images ready in $((SECONDS - t0)) s"
    # (an open descriptor of this network namespace, for what must reach
    # into it from the stack's: make compose-demo's port forwarder)
    exec {CE_HOST_NETNS_FD}</proc/self/ns/net
    export CE_HOST_NETNS_FD
    ce_ns --net bash "$script" __run "$brokers" "$@"
    rc=$?
    [ "$CE_INTERRUPTED" = 1 ] && return 130
    return $rc
}

ce__drive_cleanup() {
    ce_host_cleanup
    if [ -n "${DAGQ_COMPOSE_KEEP:-}" ]; then
        ce_log "engine: kept $CE_RUN"
    else
        rm -rf "$CE_RUN"
    fi
}
