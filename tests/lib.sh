# tests/lib.sh — shared by every integration test and by the demo.
# Starts real PostgreSQL, Redis and Kafka servers on private ports and data
# directories under $T_ROOT, and tears them down (hiredis's test.sh habit).
# Source it from bash. Set TEST_PREFIX (e.g. "valgrind -q") to wrap every
# dagq program the tests start.

T_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# ASan binaries cannot run under valgrind: with a TEST_PREFIX that names
# valgrind, the release build's programs (bin/, make all) are the ones tested.
case ${TEST_PREFIX:-} in *valgrind*) : "${T_BIN:=$T_REPO/bin}" ;; esac
: "${T_BIN:=$T_REPO/build/san/bin}"
: "${T_ROOT:=$(mktemp -d /tmp/dagq-test.XXXXXX)}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$T_REPO/tests/lsan.supp:print_suppressions=0}"
T_PIDS=()

t_log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# A TCP port nothing listens on. Inside a lane of tests/run.sh (T_PORT_FILE,
# T_PORT_BASE and T_PORT_SPAN set) ports are handed out in turn from the
# lane's own block, below the kernel's ephemeral range: no other lane, and no
# client socket the kernel binds meanwhile, gets the same port before its
# server has bound it. Elsewhere the kernel picks one.
t_free_port() {
    if [ -n "${T_PORT_FILE:-}" ]; then
        python3 - "$T_PORT_FILE" "$T_PORT_BASE" "$T_PORT_SPAN" <<'PY'
import fcntl, socket, sys
path, base, span = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    n = int(f.read().strip() or 0)
    for i in range(span):
        port = base + (n + i) % span
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        f.seek(0)
        f.truncate()
        f.write("%d\n" % (n + i + 1))
        print(port)
        sys.exit(0)
sys.exit("t_free_port: no free port in %d-%d" % (base, base + span - 1))
PY
        return
    fi
    python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

# Waits until "$@" succeeds, up to $T_WAIT seconds (default 30).
t_wait_for() {
    local deadline=$((SECONDS + ${T_WAIT:-30}))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then return 1; fi
        sleep 0.1
    done
}

pg_bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && echo "$d"; done | sort -V | tail -1
}

# PostgreSQL refuses to run as root: run it as the postgres system user then.
pg_as() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# PG_DURABILITY=stock (the benchmarks' default) keeps PostgreSQL's own
# durability (fsync, full_page_writes, synchronous_commit on) and its
# max_connections (100); the tests' default, off, turns fsync and full page
# writes off and allows 200 connections: they test behaviour, not speed.
pg_start() {
    local bin; bin=$(pg_bindir)
    local durability="fsync = off
full_page_writes = off
max_connections = 200"
    [ "${PG_DURABILITY:-off}" = stock ] && durability="# stock durability and max_connections"
    [ -n "$bin" ] || { echo "PostgreSQL server not installed (make deps)" >&2; return 1; }
    PG_PORT=$(t_free_port)
    PG_DIR="$T_ROOT/pg"
    mkdir -p "$PG_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres "$T_ROOT" "$PG_DIR" && chmod 755 "$T_ROOT"
    pg_as "$bin/initdb" -D "$PG_DIR/data" -U dagq -A trust -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; return 1; }
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
$durability
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
CONF
    # the superuser the tests set up with needs no password; every other
    # role (the programs' login roles) authenticates with one
    cat >"$PG_DIR/data/pg_hba.conf" <<HBA
local all all trust
host all dagq 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
HBA
    pg_as "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null ||
        { cat "$PG_DIR/server.log" >&2; return 1; }
    PG_BIN=$bin
    : "${T_SECRET:=$(t_secret)}"
    export PG_PORT PG_DIR PG_BIN T_SECRET
    export PG_ADMIN_URL="postgresql://dagq@127.0.0.1:$PG_PORT/postgres"
}

# A random word the passwords of a test run are made of (every log is
# searched for it at the end of each case: no secret may reach a log).
t_secret() { python3 -c 'import secrets; print("pw" + secrets.token_hex(10))'; }

# The login roles the programs use, one per program, each a member of its
# dagq_* group role only (created by `dagq db migrate`, cluster-wide), with
# passwords made of $T_SECRET. Idempotent.
pg_login_roles() {
    psql -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" >/dev/null <<SQL
DO \$\$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES ('t_scheduler', 'dagq_scheduler'), ('t_worker', 'dagq_worker'),
                                   ('t_operator', 'dagq_operator'), ('t_viewer', 'dagq_viewer'),
                                   ('t_author', 'dagq_author')) AS x(login, grp) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.login) THEN
            EXECUTE format('CREATE ROLE %I LOGIN IN ROLE %I', r.login, r.grp);
        END IF;
        EXECUTE format('ALTER ROLE %I PASSWORD %L', r.login, r.login || '-$T_SECRET');
    END LOOP;
END
\$\$;
SQL
}

# role_url ROLE URL: the superuser URL of a database as the login role
# t_ROLE with its password
role_url() {
    local role=$1 url=$2
    echo "${url/\/\/dagq@/\/\/t_$role:t_$role-$T_SECRET@}"
}

pg_stop() {
    [ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/data/postmaster.pid" ] &&
        pg_as "${PG_BIN:-$(pg_bindir)}/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
}

# Stops and starts the same server (the data survives), for fault tests.
pg_kill() { pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1; }
pg_restart() {
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null
}

# A new empty database; prints its URL.
pg_new_db() {
    local name=$1
    psql -X -q "$PG_ADMIN_URL" -c "CREATE DATABASE \"$name\"" >/dev/null || return 1
    echo "postgresql://dagq@127.0.0.1:$PG_PORT/$name"
}

# PgBouncer in transaction pooling mode in front of this run's PostgreSQL
# ($PG_PORT), on a port of its own ($PGB_PORT): every database, the login
# roles of pg_login_roles with their passwords (auth_file, scram-sha-256),
# at most PGB_POOL_SIZE (default 20) server connections per database and
# role. PGB_DIR (default $T_ROOT/pgbouncer) holds its settings, log and pid.
# It refuses to run as root: as the postgres system user then.
pgbouncer_start() {
    command -v pgbouncer >/dev/null || { echo "pgbouncer not installed (make deps)" >&2; return 1; }
    : "${PGB_DIR:=$T_ROOT/pgbouncer}"
    PGB_PORT=$(t_free_port) || return 1
    mkdir -p "$PGB_DIR"
    local r
    # dagq, the superuser the tests and benchmarks set up with, is only of
    # use with PGB_AUTH_TYPE=trust (the benchmark's PgBouncer)
    printf '"dagq" ""\n' >"$PGB_DIR/userlist.txt"
    for r in scheduler worker operator viewer author; do
        printf '"t_%s" "t_%s-%s"\n' "$r" "$r" "$T_SECRET" >>"$PGB_DIR/userlist.txt"
    done
    cat >"$PGB_DIR/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$PG_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = ${PGB_AUTH_TYPE:-scram-sha-256}
auth_file = $PGB_DIR/userlist.txt
pool_mode = transaction
default_pool_size = ${PGB_POOL_SIZE:-20}
max_client_conn = 2000
max_db_connections = 0
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_DIR/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
INI
    chmod 600 "$PGB_DIR/userlist.txt"
    [ "$(id -u)" -eq 0 ] && chown -R postgres "$PGB_DIR"
    pg_as pgbouncer -d "$PGB_DIR/pgbouncer.ini" >>"$PGB_DIR/start.log" 2>&1 ||
        { cat "$PGB_DIR/start.log" "$PGB_DIR/pgbouncer.log" >&2 2>/dev/null; return 1; }
    T_WAIT=10 t_wait_for pgbouncer_ping || { cat "$PGB_DIR/pgbouncer.log" >&2; return 1; }
    export PGB_PORT PGB_DIR
}

# Does PgBouncer answer (it only answers once its port is bound)?
pgbouncer_ping() { python3 -c "import socket; socket.create_connection(('127.0.0.1', $PGB_PORT), 1)"; }

# pgbouncer_url URL: the same database and role, through PgBouncer
pgbouncer_url() { sed -E "s/@127\.0\.0\.1:$PG_PORT\//@127.0.0.1:$PGB_PORT\//" <<<"$1"; }

pgbouncer_stop() {
    local pid
    [ -n "${PGB_DIR:-}" ] && pid=$(cat "$PGB_DIR/pgbouncer.pid" 2>/dev/null) && [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null
    local i
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$PGB_DIR/pgbouncer.pid"
}

# Redis runs in a session of its own (setsid), as Kafka does: a test may
# kill and restart it from a subshell, and the shell that started the first
# one must neither report "Killed" for it nor lose track of the new one (its
# pid is in $REDIS_DIR/pid, written by the process itself before it execs).
redis__launch() {
    rm -f "$REDIS_DIR/pid"
    setsid -f bash -c 'echo $$ >"$0/pid" && exec "$@"' "$REDIS_DIR" \
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --save '' \
        --appendonly yes --appendfsync everysec --daemonize no --requirepass "$REDIS_PASSWORD" \
        >>"$REDIS_DIR/server.log" 2>&1 </dev/null
    t_wait_for test -s "$REDIS_DIR/pid" || return 1
    REDIS_PID=$(cat "$REDIS_DIR/pid")
    t_wait_for redis_cli ping || { cat "$REDIS_DIR/server.log" >&2; return 1; }
}

# redis_cli ARGS...: redis-cli on the test run's Redis, with its password
# (REDIS_CLI_PORT: another port, a proxy's)
redis_cli() {
    REDISCLI_AUTH=$REDIS_PASSWORD redis-cli --no-auth-warning -p "${REDIS_CLI_PORT:-$REDIS_PORT}" "$@"
}

redis_start() {
    REDIS_PORT=$(t_free_port) || return 1
    REDIS_DIR="$T_ROOT/redis"
    mkdir -p "$REDIS_DIR"
    : "${T_SECRET:=$(t_secret)}"
    REDIS_PASSWORD="redis-$T_SECRET"
    export REDIS_PORT REDIS_DIR REDIS_PASSWORD T_SECRET
    redis__launch || return 1
    export REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0"
}

# The pid of this test run's Redis, checked against the process's working
# directory (Redis changes into --dir; a pid file may outlive its process
# and the pid be reused).
redis_pid() {
    local pid
    [ -n "${REDIS_DIR:-}" ] && pid=$(cat "$REDIS_DIR/pid" 2>/dev/null) && [ -n "$pid" ] || return 1
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$(readlink -f "$REDIS_DIR")" ] || return 1
    echo "$pid"
}

redis_stop() {
    local pid i
    if pid=$(redis_pid); then
        kill "$pid" 2>/dev/null || true
        for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "${REDIS_DIR:-/nonexistent}/pid"
}

# Kills Redis hard and starts it again on the same port and data (AOF).
redis_restart() {
    local pid
    if pid=$(redis_pid); then
        kill -9 "$pid" 2>/dev/null
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
    redis__launch
}

# Kafka: kafka_start / kafka_stop / kafka_restart live in tests/kafka.sh.
if [ -f "$T_REPO/tests/kafka.sh" ]; then
    # shellcheck source=kafka.sh
    . "$T_REPO/tests/kafka.sh"
fi

# Stops what the script started and removes $T_ROOT (unless T_KEEP is set).
# Safe under `set -e` (scripts/demo.sh): a server that is already gone is
# not an error.
t_cleanup() {
    local p
    for p in "${T_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if type kafka_stop >/dev/null 2>&1; then kafka_stop; fi
    redis_stop
    pgbouncer_stop
    pg_stop
    if [ -z "${T_KEEP:-}" ]; then rm -rf "$T_ROOT"; else echo "kept $T_ROOT" >&2; fi
}

# t_sweep DIR: stops every server of these helpers whose data lies under DIR
# (PostgreSQL, Redis, Kafka), found by their pid files: what a lane or a
# script that was killed before its own cleanup left running.
t_sweep() {
    local f
    [ -d "$1" ] || return 0
    while IFS= read -r f; do
        (PG_DIR=${f%/data/postmaster.pid} && pg_stop)
    done < <(find "$1" -path '*/pg/data/postmaster.pid' 2>/dev/null)
    while IFS= read -r f; do
        (REDIS_DIR=${f%/pid} && redis_stop)
    done < <(find "$1" -path '*/redis/pid' 2>/dev/null)
    while IFS= read -r f; do
        (PGB_DIR=${f%/pgbouncer.pid} && pgbouncer_stop)
    done < <(find "$1" -name pgbouncer.pid 2>/dev/null)
    while IFS= read -r f; do
        (KAFKA_DIR=${f%/kafka.pid} && kafka_kill)
    done < <(find "$1" -path '*/kafka/kafka.pid' 2>/dev/null)
}
