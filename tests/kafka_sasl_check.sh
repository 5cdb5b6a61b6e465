#!/usr/bin/env bash
# Kafka over SASL_SSL: a real single-node Kafka (tests/kafka.sh's pinned
# broker, KRaft mode) whose only broker listener is SASL_SSL (SASL/PLAIN over
# TLS, for clients and between the broker and itself; the KRaft controller
# listener stays on loopback), with certificates this script makes: a CA with
# openssl, the broker's certificate (for 127.0.0.1 and localhost) signed by
# it, its keystore and truststore with keytool, and a second CA the broker's
# certificate does not chain to. The users and passwords are in a JAAS file
# in the broker's folder.
#
# dagq gets the librdkafka properties the way an operator gives them to the
# daemons, as DAGQ_KAFKA_<PROPERTY> variables (security.protocol, sasl.*,
# ssl.ca.location; kafka_settings.h), and:
#
#   - check_queue (the queue conformance check) passes over SASL_SSL, and a
#     scheduler (properties as --kafka-conf) and a worker (as DAGQ_KAFKA_*)
#     run a two-task DAG over it (with a PostgreSQL of the script's own);
#   - a wrong password fails with the broker's "Authentication failed" and
#     a CA the certificate does not chain to with "certificate verify
#     failed", each named in a warning (what a daemon at its default log
#     level shows); a client without TLS and SASL gets nowhere;
#   - the password appears in no output of dagq's.
#
#   bash tests/kafka_sasl_check.sh        (after make san)
# TEST_PREFIX wraps the checks (e.g. "valgrind -q").
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap t_cleanup EXIT

bin=$T_REPO/build/san/tests
for b in check_queue check_tls; do
    [ -x "$bin/$b" ] || { echo "kafka_sasl_check: $bin/$b not built (make san)" >&2; exit 1; }
done
for c in openssl keytool kcat "${JAVA:-java}"; do
    command -v "$c" >/dev/null || { echo "kafka_sasl_check: $c not installed (make deps)" >&2; exit 1; }
done
kafka_fetch || exit 1

fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

KAFKA_DIR=$T_ROOT/kafka # where tests/kafka.sh's kafka_stop (t_cleanup) finds it
tls=$KAFKA_DIR/tls
mkdir -p "$tls" "$KAFKA_DIR/data"
password="sasl-pw-$RANDOM$RANDOM$RANDOM"
broker_password="broker-pw-$RANDOM$RANDOM"
store_password="store-pw-$RANDOM$RANDOM"

# ---- certificates: openssl makes the keys and certificates, keytool the
# broker's stores
mkca() { # name cn
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/$1.key" -out "$tls/$1.pem" -days 2 \
        -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
mkca ca "dagq test CA" && mkca other-ca "another CA" &&
    openssl req -new -newkey rsa:2048 -nodes -keyout "$tls/broker.key" -subj "/CN=dagq test kafka" \
        -out "$tls/broker.csr" 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
        >"$tls/broker.ext" &&
    openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
        -days 2 -extfile "$tls/broker.ext" -out "$tls/broker.pem" 2>/dev/null &&
    openssl pkcs12 -export -in "$tls/broker.pem" -inkey "$tls/broker.key" -certfile "$tls/ca.pem" \
        -name broker -out "$tls/broker-openssl.p12" -passout "pass:$store_password" &&
    keytool -importkeystore -noprompt -srckeystore "$tls/broker-openssl.p12" -srcstoretype PKCS12 \
        -srcstorepass "$store_password" -destkeystore "$tls/broker.p12" -deststoretype PKCS12 \
        -deststorepass "$store_password" >"$tls/keytool.log" 2>&1 &&
    keytool -importcert -noprompt -alias ca -file "$tls/ca.pem" -keystore "$tls/truststore.p12" \
        -storetype PKCS12 -storepass "$store_password" >>"$tls/keytool.log" 2>&1 ||
    { echo "kafka_sasl_check: could not make the certificates and stores" >&2; cat "$tls/keytool.log" >&2; exit 1; }

# ---- the broker
KAFKA_PORT=$(t_free_port)
KAFKA_CONTROLLER_PORT=$(t_free_port)
while [ "$KAFKA_CONTROLLER_PORT" = "$KAFKA_PORT" ]; do KAFKA_CONTROLLER_PORT=$(t_free_port); done
export KAFKA_DIR KAFKA_PORT KAFKA_CONTROLLER_PORT
# tests/kafka/server.properties with the listeners made SASL_SSL
sed -e "s|@PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@DATA_DIR@|$KAFKA_DIR/data|g" \
    -e "s|^listeners=.*|listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT|" \
    -e "s|^advertised.listeners=.*|advertised.listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT|" \
    -e "s|^inter.broker.listener.name=.*|inter.broker.listener.name=SASL_SSL|" \
    -e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL|" \
    "$T_REPO/tests/kafka/server.properties" >"$KAFKA_DIR/server.properties"
cat >>"$KAFKA_DIR/server.properties" <<PROPS

# SASL/PLAIN over TLS (tests/kafka_sasl_check.sh); users in jaas.conf
sasl.enabled.mechanisms=PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/broker.p12
ssl.keystore.password=$store_password
ssl.key.password=$store_password
ssl.truststore.type=PKCS12
ssl.truststore.location=$tls/truststore.p12
ssl.truststore.password=$store_password
ssl.client.auth=none
ssl.endpoint.identification.algorithm=https
PROPS
cat >"$KAFKA_DIR/jaas.conf" <<JAAS
KafkaServer {
    org.apache.kafka.common.security.plain.PlainLoginModule required
    username="broker"
    password="$broker_password"
    user_broker="$broker_password"
    user_dagq="$password";
};
JAAS
# the readiness probe's client settings, in a file so no password is on a
# command line
cat >"$KAFKA_DIR/kcat.conf" <<KCAT
security.protocol=SASL_SSL
sasl.mechanisms=PLAIN
sasl.username=dagq
sasl.password=$password
ssl.ca.location=$tls/ca.pem
KCAT
chmod 600 "$KAFKA_DIR/jaas.conf" "$KAFKA_DIR/kcat.conf" "$KAFKA_DIR/server.properties"
cp "$T_REPO/tests/kafka/log4j.properties" "$KAFKA_DIR/log4j.properties"

kafka__jvm # tests/kafka.sh's JVM command line, and the JAAS file
jvm=("${KAFKA__JVM[@]}" "-Djava.security.auth.login.config=$KAFKA_DIR/jaas.conf")
cluster=$(python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        break
print(s)')
"${jvm[@]}" kafka.tools.StorageTool format -t "$cluster" -c "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/format.log" 2>&1 || { echo "kafka_sasl_check: format failed" >&2; cat "$KAFKA_DIR/format.log" >&2; exit 1; }
# as tests/kafka.sh starts one: a session of its own, found by its pid file
setsid -f bash -c 'echo $$ >"$0/kafka.pid" && exec "$@"' "$KAFKA_DIR" \
    "${jvm[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" >>"$KAFKA_DIR/stdout.log" 2>&1 </dev/null
t0=$SECONDS
ready=0
while ((SECONDS - t0 < ${KAFKA_START_TIMEOUT:-90})); do
    if kcat -F "$KAFKA_DIR/kcat.conf" -L -b "127.0.0.1:$KAFKA_PORT" -m 2 2>/dev/null |
        grep -q "broker 1 at 127.0.0.1:$KAFKA_PORT"; then
        ready=1
        break
    fi
    pid=$(cat "$KAFKA_DIR/kafka.pid" 2>/dev/null) && ! kafka__alive "$pid" && break
    sleep 0.5
done
if [ $ready = 0 ]; then
    echo "kafka_sasl_check: the SASL_SSL broker did not come up; its logs say:" >&2
    tail -30 "$KAFKA_DIR/server.log" "$KAFKA_DIR/stdout.log" >&2
    exit 1
fi
t_log "kafka: SASL_SSL broker $(kafka__version) ready on 127.0.0.1:$KAFKA_PORT in $((SECONDS - t0)) s"

url="kafka://127.0.0.1:$KAFKA_PORT"
props=(DAGQ_KAFKA_SECURITY_PROTOCOL=SASL_SSL DAGQ_KAFKA_SASL_MECHANISMS=PLAIN
    DAGQ_KAFKA_SASL_USERNAME=dagq "DAGQ_KAFKA_SASL_PASSWORD=$password"
    "DAGQ_KAFKA_SSL_CA_LOCATION=$tls/ca.pem")
out=$T_ROOT/out
mkdir -p "$out"

# run NAME [VAR=VALUE...] -- CMD...: output (stdout and stderr) in $out/NAME
run() {
    local name=$1
    shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    # shellcheck disable=SC2086
    env "${envs[@]}" ${TEST_PREFIX:-} "$@" >"$out/$name" 2>&1
}

if run conformance DAGQ_BROKER_URL="$url" "${props[@]}" -- "$bin/check_queue" &&
    grep -q '^[1-9][0-9]* passed, 0 failed$' "$out/conformance"; then
    ok "check_queue over SASL_SSL: $(tail -1 "$out/conformance")"
else
    bad "check_queue over SASL_SSL"
    tail -20 "$out/conformance"
fi

# expect_fail NAME WORDS [VAR=VALUE...]: check_tls (one round trip) fails,
# and a line it logs at warn level or above (what a daemon shows at its
# default level, info) says WORDS (an extended regular expression)
expect_fail() {
    local name=$1 words=$2 line
    shift 2
    if run "$name" DAGQ_BROKER_URL="$url" "${props[@]}" "$@" -- timeout 120 "$bin/check_tls"; then
        bad "$name: succeeded"
    elif line=$(grep -E 'level=(warn|error) ' "$out/$name" | grep -m1 -oE "$words"); then
        ok "$name: \"$line\" ($(grep -m1 '^FAIL' "$out/$name" | cut -c1-110))"
    else
        bad "$name: no warning says \"$words\":"
        tail -5 "$out/$name"
    fi
}

if run round_trip DAGQ_BROKER_URL="$url" "${props[@]}" -- "$bin/check_tls"; then
    ok "one round trip over SASL_SSL"
else
    bad "one round trip over SASL_SSL: $(grep -m1 '^FAIL' "$out/round_trip")"
fi
expect_fail wrong_password "Authentication failed[^\"]*" "DAGQ_KAFKA_SASL_PASSWORD=not-$password"
expect_fail wrong_ca "certificate verify failed[^\"]*" "DAGQ_KAFKA_SSL_CA_LOCATION=$tls/other-ca.pem"
# neither TLS nor SASL: the broker's listener speaks neither to it
if run plaintext DAGQ_BROKER_URL="$url" -- timeout 120 "$bin/check_tls"; then
    bad "a client without TLS and SASL made a round trip"
else
    ok "a client without TLS and SASL gets nowhere ($(grep -m1 '^FAIL' "$out/plaintext" | cut -c1-100))"
fi

# ---- the daemons, configured as an operator configures them: the
# properties as --kafka-conf options for the scheduler (the password, which a
# command line would show to every user of the machine, in its environment),
# as DAGQ_KAFKA_* variables for the worker; one run of a DAG over SASL_SSL
daemons() {
    pg_start >"$out/pg" 2>&1 || { bad "PostgreSQL did not start: $(tail -3 "$out/pg")"; return; }
    DAGQ_DATABASE_URL=$(pg_new_db sasl) || { bad "no database"; return; }
    export DAGQ_DATABASE_URL
    run migrate -- "$T_BIN/dagq" db migrate || { bad "dagq db migrate: $(tail -3 "$out/migrate")"; return; }
    psql -X -q -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" >"$out/dag" 2>&1 <<'SQL' || { bad "the DAG"; return; }
INSERT INTO dagq.dag (dag_id) VALUES ('over_sasl');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('over_sasl', 'a', 'echo a-ran'), ('over_sasl', 'b', 'echo b-ran');
INSERT INTO dagq.task_dependency VALUES ('over_sasl', 'b', 'a');
SQL
    local prefix="sasl$RANDOM."
    # shellcheck disable=SC2086
    env DAGQ_BROKER_URL="$url" DAGQ_KAFKA_TOPIC_PREFIX="$prefix" DAGQ_KAFKA_SASL_PASSWORD="$password" \
        ${TEST_PREFIX:-} "$T_BIN/dagq-scheduler" --poll-interval-ms 250 \
        --kafka-conf security.protocol=SASL_SSL --kafka-conf sasl.mechanisms=PLAIN \
        --kafka-conf sasl.username=dagq --kafka-conf "ssl.ca.location=$tls/ca.pem" \
        >"$out/scheduler" 2>&1 &
    local sp=$!
    T_PIDS+=("$sp")
    # shellcheck disable=SC2086
    env DAGQ_BROKER_URL="$url" DAGQ_KAFKA_TOPIC_PREFIX="$prefix" "${props[@]}" \
        ${TEST_PREFIX:-} "$T_BIN/dagq-worker" --name sasl-worker --slots 2 --heartbeat-interval 1 \
        >"$out/worker" 2>&1 &
    local wp=$!
    T_PIDS+=("$wp")
    local run st="" deadline=$((SECONDS + 120))
    run=$(psql -X -q -At "$DAGQ_DATABASE_URL" -c "SELECT dagq.trigger_dag('over_sasl')")
    while ((SECONDS < deadline)); do
        st=$(psql -X -q -At "$DAGQ_DATABASE_URL" -c "SELECT state FROM dagq.dag_run WHERE run_id = $run")
        case $st in success | failed) break ;; esac
        sleep 0.5
    done
    local logs
    logs=$(psql -X -q -At "$DAGQ_DATABASE_URL" -c "SELECT string_agg(output, '' ORDER BY ti_id)
        FROM dagq.task_log")
    if [ "$st" = success ] && [[ $logs == *a-ran*b-ran* ]]; then
        ok "a scheduler (--kafka-conf) and a worker (DAGQ_KAFKA_*) ran a DAG over SASL_SSL"
    else
        bad "the run over SASL_SSL: state [$st], output [$logs]"
        tail -5 "$out/scheduler" "$out/worker"
    fi
    kill -TERM "$sp" "$wp" 2>/dev/null
    wait "$sp" "$wp" 2>/dev/null
    local errs
    errs=$(grep -hE '(^| )level=error( |$)' "$out/scheduler" "$out/worker")
    [ -z "$errs" ] || bad "the daemons logged errors: $(head -3 <<<"$errs")"

    # a worker with a wrong password: it keeps trying, says why in a
    # warning, and its /healthz fails once --health-timeout has passed
    local hp body="" said
    hp=$(t_free_port)
    # shellcheck disable=SC2086
    env DAGQ_BROKER_URL="$url" DAGQ_KAFKA_TOPIC_PREFIX="$prefix" "${props[@]}" \
        DAGQ_KAFKA_SASL_PASSWORD="not-$password" ${TEST_PREFIX:-} "$T_BIN/dagq-worker" \
        --name sasl-wrong --http-port "$hp" --http-bind 127.0.0.1 --health-timeout 2 \
        >"$out/worker_wrong_password" 2>&1 &
    wp=$!
    T_PIDS+=("$wp")
    deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        body=$(curl -s --max-time 2 "http://127.0.0.1:$hp/healthz")
        said=$(grep -E 'level=warn .*err=_AUTHENTICATION' "$out/worker_wrong_password" |
            grep -m1 -oE 'Authentication failed: [^"(]*')
        [[ $body == *"broker unreachable"* ]] && [ -n "$said" ] && break
        sleep 0.5
    done
    if [[ $body == *"broker unreachable"* ]] && [ -n "$said" ] && kill -0 "$wp" 2>/dev/null; then
        ok "a worker with a wrong password keeps trying, warns \"$said\", /healthz: ${body%%$'\n'*}"
    else
        bad "a worker with a wrong password: /healthz [$body], warning [$said]"
        tail -5 "$out/worker_wrong_password"
    fi
    kill -TERM "$wp" 2>/dev/null
    wait "$wp" 2>/dev/null
}
daemons

if grep -l -F -- "$password" "$out"/* >/dev/null 2>&1; then
    bad "the password appears in: $(grep -l -F -- "$password" "$out"/* | xargs -n1 basename | xargs)"
else
    ok "the password appears in no output ($(ls "$out" | wc -l) runs)"
fi
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out"/*; then
    bad "sanitizer report: $(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out"/* | xargs)"
fi

echo "kafka_sasl_check: $fails failed"
[ "$fails" -eq 0 ]
