# tests/kafka.sh — a real Apache Kafka broker for the tests, sourced by
# tests/lib.sh (which defines T_REPO, T_ROOT, t_free_port, t_log).
#
#   kafka_fetch    downloads the pinned broker (tests/kafka/pom.xml: the
#                  org.apache.kafka:kafka_2.13 jar, its runtime dependencies
#                  and an slf4j 1.7 binding) from Maven Central into the
#                  git-ignored tests/.kafka/; does nothing when already there
#   kafka_start    formats and starts a single-node KRaft broker+controller on
#                  free loopback ports, data and logs under $T_ROOT/kafka;
#                  exports KAFKA_URL=kafka://127.0.0.1:PORT, KAFKA_PORT,
#                  KAFKA_PID, KAFKA_DIR
#   kafka_stop     clean shutdown (SIGTERM, SIGKILL after 30 s)
#   kafka_kill     kill -9, data kept
#   kafka_restart  kill -9 (if running) and start again: same port, same data
#                  (any of these may run in a subshell: the broker is found by
#                  the pid file $KAFKA_DIR/kafka.pid)
#
# Nothing of the broker is committed. The broker logs to
# $KAFKA_DIR/server.log, never to the terminal. Readiness is polled with
# kcat (metadata naming the broker), never slept for.

KAFKA_JARS="$T_REPO/tests/.kafka"
: "${KAFKA_HEAP:=-Xmx512m -Xms128m}"

kafka__version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$T_REPO/tests/kafka/pom.xml"
}

kafka__mvn() {
    mvn -q -B -ntp -Dstyle.color=never -f "$1" dependency:copy-dependencies >"$KAFKA_JARS/fetch.log" 2>&1
}

kafka_fetch() {
    local pom="$T_REPO/tests/kafka/pom.xml" v fd rc=0
    v=$(kafka__version)
    mkdir -p "$KAFKA_JARS" || return 1
    # One fetch at a time, even when several test scripts start together.
    exec {fd}>"$KAFKA_JARS/.lock"
    flock "$fd"
    # The stamp is the pom the jars came from: a new pin fetches afresh.
    if ! { [ -f "$KAFKA_JARS/kafka_2.13-$v.jar" ] && cmp -s "$KAFKA_JARS/.fetched" "$pom"; }; then
        if ! command -v mvn >/dev/null 2>&1; then
            echo "kafka_fetch: maven is not installed (make deps)" >&2
            rc=1
        else
            t_log "kafka: fetching Apache Kafka $v from Maven Central into tests/.kafka"
            rm -f "$KAFKA_JARS"/*.jar "$KAFKA_JARS/.fetched"
            # a second try for a network hiccup
            if { kafka__mvn "$pom" || kafka__mvn "$pom"; } && [ -f "$KAFKA_JARS/kafka_2.13-$v.jar" ]; then
                cp "$pom" "$KAFKA_JARS/.fetched"
            else
                cat "$KAFKA_JARS/fetch.log" >&2
                echo "kafka_fetch: could not fetch Apache Kafka $v" >&2
                rc=1
            fi
        fi
    fi
    exec {fd}>&-
    return $rc
}

# Sets KAFKA__JVM (an array) to the JVM command line with the broker's class
# path, heap and logging.
kafka__jvm() {
    # shellcheck disable=SC2206
    KAFKA__JVM=("${JAVA:-java}" $KAFKA_HEAP -XX:+UseSerialGC -XX:TieredStopAtLevel=1
        -XX:-UsePerfData -Djava.awt.headless=true -Dkafka.logs.dir="$KAFKA_DIR"
        -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" -cp "$KAFKA_JARS/*")
}

# True while the process runs (not a zombie).
kafka__alive() {
    local st
    st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# The pid of this test run's broker (from $KAFKA_DIR/kafka.pid, checked
# against its command line), or nothing and false.
kafka__pid() {
    local pid
    [ -n "${KAFKA_DIR:-}" ] && pid=$(cat "$KAFKA_DIR/kafka.pid" 2>/dev/null) || return 1
    kafka__alive "$pid" &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $KAFKA_DIR/server.properties" &&
        echo "$pid"
}

kafka__ready() {
    kcat -L -b "127.0.0.1:$KAFKA_PORT" -m 1 2>/dev/null | grep -q "broker 1 at 127.0.0.1:$KAFKA_PORT"
}

# Starts the JVM in a session of its own, not as a job of this shell: a test
# may call kafka_restart in a subshell, and the broker must still be found
# (by its pid file) and stopped by the shell that started the first one,
# which must not report "Killed" for a broker a subshell killed.
kafka__launch() {
    kafka__jvm
    rm -f "$KAFKA_DIR/kafka.pid"
    setsid -f bash -c 'echo $$ >"$0/kafka.pid" && exec "$@"' "$KAFKA_DIR" \
        "${KAFKA__JVM[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" \
        >>"$KAFKA_DIR/stdout.log" 2>&1 </dev/null
    local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-90}))
    until KAFKA_PID=$(kafka__pid); do
        if ((SECONDS >= deadline)); then
            echo "kafka: the broker did not start; $KAFKA_DIR/stdout.log says:" >&2
            tail -30 "$KAFKA_DIR/stdout.log" >&2
            return 1
        fi
        sleep 0.05
    done
    export KAFKA_PID
    until kafka__ready; do
        if ! kafka__alive "$KAFKA_PID"; then
            echo "kafka: the broker exited during startup; $KAFKA_DIR/server.log says:" >&2
            tail -30 "$KAFKA_DIR/server.log" "$KAFKA_DIR/stdout.log" >&2
            KAFKA_PID=""
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "kafka: the broker was not ready within ${KAFKA_START_TIMEOUT:-90} s" >&2
            tail -30 "$KAFKA_DIR/server.log" >&2
            return 1
        fi
        sleep 0.1
    done
}

kafka_start() {
    local t0=$SECONDS id
    if kafka__pid >/dev/null; then
        echo "kafka_start: a broker runs already (pid $KAFKA_PID); kafka_stop first" >&2
        return 1
    fi
    kafka_fetch || return 1
    command -v "${JAVA:-java}" >/dev/null 2>&1 || { echo "kafka: java is not installed (make deps)" >&2; return 1; }
    command -v kcat >/dev/null 2>&1 || { echo "kafka: kcat is not installed (make deps)" >&2; return 1; }
    KAFKA_DIR="$T_ROOT/kafka"
    mkdir -p "$KAFKA_DIR/data"
    KAFKA_PORT=$(t_free_port)
    KAFKA_CONTROLLER_PORT=$(t_free_port)
    while [ "$KAFKA_CONTROLLER_PORT" = "$KAFKA_PORT" ]; do KAFKA_CONTROLLER_PORT=$(t_free_port); done
    sed -e "s|@PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@DATA_DIR@|$KAFKA_DIR/data|g" \
        "$T_REPO/tests/kafka/server.properties" >"$KAFKA_DIR/server.properties"
    cp "$T_REPO/tests/kafka/log4j.properties" "$KAFKA_DIR/log4j.properties"
    # A cluster id is a base64url UUID without padding, as StorageTool
    # random-uuid prints, and like Kafka's own never one that starts with
    # "-": the tool would take it for an option (1 start in 64 failed so).
    id=$(python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        break
print(s)')
    kafka__jvm
    "${KAFKA__JVM[@]}" kafka.tools.StorageTool format -t "$id" -c "$KAFKA_DIR/server.properties" \
        --ignore-formatted >"$KAFKA_DIR/format.log" 2>&1 ||
        { cat "$KAFKA_DIR/format.log" >&2; return 1; }
    export KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_DIR
    kafka__launch || return 1
    export KAFKA_URL="kafka://127.0.0.1:$KAFKA_PORT"
    t_log "kafka: broker $(kafka__version) ready on 127.0.0.1:$KAFKA_PORT in $((SECONDS - t0)) s (pid $KAFKA_PID)"
}

kafka_stop() {
    local pid
    if pid=$(kafka__pid); then
        kill -TERM "$pid" 2>/dev/null
        local deadline=$((SECONDS + 30))
        while kafka__alive "$pid"; do
            if ((SECONDS >= deadline)); then
                kill -9 "$pid" 2>/dev/null
                break
            fi
            sleep 0.1
        done
    fi
    KAFKA_PID=""
    return 0
}

kafka_kill() {
    local pid
    if pid=$(kafka__pid); then
        kill -9 "$pid" 2>/dev/null
        while kafka__alive "$pid"; do sleep 0.05; done
    fi
    KAFKA_PID=""
    return 0
}

kafka_restart() {
    [ -n "${KAFKA_DIR:-}" ] && [ -f "$KAFKA_DIR/server.properties" ] ||
        { echo "kafka_restart: no broker was started" >&2; return 1; }
    kafka_kill
    kafka__launch
}
