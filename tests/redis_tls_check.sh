#!/usr/bin/env bash
# rediss:// against a real TLS redis-server this script starts on a private
# port, with certificates it makes with openssl: a CA, a server certificate
# for 127.0.0.1 and localhost, a client certificate (the server requires
# one), and a second CA the server's certificate does not chain to.
#
#   - check_queue (the queue conformance check) passes over TLS, the files
#     given as URL parameters, and so does its restart mode (the server
#     killed and started again while a producer and a consumer stay open);
#   - a round trip (check_tls) passes with the files given the daemons' way
#     (DAGQ_REDIS_TLS_*, queue_conf) and the host named localhost;
#   - a wrong CA, a wrong server name, a missing client certificate, a
#     missing CA file and a wrong password each fail with an error naming
#     the problem;
#   - the password appears in none of the output or logs.
#
#   bash tests/redis_tls_check.sh        (after make san)
# TEST_PREFIX wraps the checks (e.g. "valgrind -q").
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap t_cleanup EXIT

bin=$T_REPO/build/san/tests
for b in check_queue check_tls; do
    [ -x "$bin/$b" ] || { echo "redis_tls_check: $bin/$b not built" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "redis_tls_check: openssl not installed (make deps)" >&2; exit 1; }

fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

# ---- certificates
tls=$T_ROOT/tls
mkdir -p "$tls"
mkcert() { # name subject-cn issuer(ca name or "") extfile-lines
    local name=$1 cn=$2 issuer=$3 ext=$4
    openssl req -new -newkey rsa:2048 -nodes -keyout "$tls/$name.key" -subj "/CN=$cn" \
        -out "$tls/$name.csr" 2>/dev/null || return 1
    printf '%b\n' "$ext" >"$tls/$name.ext"
    if [ -z "$issuer" ]; then
        openssl x509 -req -in "$tls/$name.csr" -signkey "$tls/$name.key" -days 2 \
            -extfile "$tls/$name.ext" -out "$tls/$name.pem" 2>/dev/null
    else
        openssl x509 -req -in "$tls/$name.csr" -CA "$tls/$issuer.pem" -CAkey "$tls/$issuer.key" \
            -CAcreateserial -days 2 -extfile "$tls/$name.ext" -out "$tls/$name.pem" 2>/dev/null
    fi
}
ca_ext="basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign"
mkcert ca "dagq test CA" "" "$ca_ext" &&
    mkcert other-ca "another CA" "" "$ca_ext" &&
    mkcert server "dagq test redis" ca \
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth" &&
    mkcert client "dagq test client" ca "extendedKeyUsage=clientAuth" ||
    { echo "redis_tls_check: openssl could not make the certificates" >&2; exit 1; }
chmod 644 "$tls"/*.key

# ---- the server: TLS only, client certificates required, a password
password="tls-pw-$RANDOM$RANDOM"
REDIS_PORT=$(t_free_port)
REDIS_DIR="$T_ROOT/redis"
mkdir -p "$REDIS_DIR"
export REDIS_DIR
tls_server_start() { # on the same port and data each time (AOF)
    (redis-server --port 0 --tls-port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --save '' \
        --appendonly yes --tls-cert-file "$tls/server.pem" --tls-key-file "$tls/server.key" \
        --tls-ca-cert-file "$tls/ca.pem" --tls-auth-clients yes --requirepass "$password" \
        --daemonize no >>"$REDIS_DIR/server.log" 2>&1 &
        echo $! >"$REDIS_DIR/pid")
    REDISCLI_AUTH=$password t_wait_for redis-cli --tls --cacert "$tls/ca.pem" \
        --cert "$tls/client.pem" --key "$tls/client.key" -h 127.0.0.1 -p "$REDIS_PORT" ping
}
tls_server_start ||
    { echo "redis_tls_check: redis-server did not start with TLS" >&2; cat "$REDIS_DIR/server.log" >&2; exit 1; }

files="tls-ca=$tls/ca.pem&tls-cert=$tls/client.pem&tls-key=$tls/client.key"
url="rediss://:$password@127.0.0.1:$REDIS_PORT/0?$files"
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

# expect_fail NAME WORDS URL [VAR=VALUE...]: check_tls fails and says WORDS
# (an extended regular expression)
expect_fail() {
    local name=$1 words=$2 u=$3
    shift 3
    if run "$name" DAGQ_BROKER_URL="$u" "$@" -- "$bin/check_tls"; then
        bad "$name: succeeded"
    elif grep -qE "^FAIL .*($words)" "$out/$name"; then
        ok "$name ($(grep -m1 '^FAIL' "$out/$name" | cut -c1-160))"
    else
        bad "$name: no \"$words\" in: $(grep -m1 '^FAIL' "$out/$name")"
    fi
}

if run conformance DAGQ_BROKER_URL="$url" -- "$bin/check_queue" &&
    grep -q '^[0-9]* passed, 0 failed$' "$out/conformance"; then
    ok "check_queue over TLS: $(tail -1 "$out/conformance")"
else
    bad "check_queue over TLS"
    tail -20 "$out/conformance"
fi

# the same producer and consumer over TLS survive the server killed (-9)
# and restarted: check_queue's restart mode, driven as tests/lib.sh does
DAGQ_BROKER_URL=$url DAGQ_CHECK_RESTART=$T_ROOT/restarted ${TEST_PREFIX:-} "$bin/check_queue" \
    >"$out/restart" 2>&1 &
pid=$!
if T_WAIT=60 t_wait_for grep -q '^restart now' "$out/restart"; then
    kill -9 "$(cat "$REDIS_DIR/pid")"
    sleep 0.5
    tls_server_start || bad "the TLS server did not start again"
    touch "$T_ROOT/restarted"
fi
if wait "$pid"; then
    ok "survives a restart over TLS: $(grep -m1 survives_broker_restart "$out/restart")"
else
    bad "check_queue restart mode over TLS"
    tail -20 "$out/restart"
fi

if run options DAGQ_BROKER_URL="rediss://:$password@localhost:$REDIS_PORT" \
    DAGQ_REDIS_TLS_CA="$tls/ca.pem" DAGQ_REDIS_TLS_CERT="$tls/client.pem" \
    DAGQ_REDIS_TLS_KEY="$tls/client.key" -- "$bin/check_tls"; then
    ok "round trip with the files as options, host localhost"
else
    bad "round trip with the files as options: $(grep -m1 '^FAIL' "$out/options")"
fi

expect_fail wrong_ca "certificate is not accepted" \
    "rediss://:$password@127.0.0.1:$REDIS_PORT?tls-ca=$tls/other-ca.pem&tls-cert=$tls/client.pem&tls-key=$tls/client.key"
expect_fail wrong_name "certificate is not accepted: .*hostname mismatch" "$url&tls-server-name=db.example.com"
# TLS 1.3: the server refuses the missing certificate after the handshake,
# with an alert that a reset may overtake: either way the words say so
expect_fail no_client_cert \
    "refused the session: .*certificate required|ended the session before it replied.*client certificate" \
    "rediss://:$password@127.0.0.1:$REDIS_PORT?tls-ca=$tls/ca.pem"
expect_fail missing_ca "cannot load the CA file" \
    "rediss://:$password@127.0.0.1:$REDIS_PORT?tls-ca=$tls/nonexistent.pem&tls-cert=$tls/client.pem&tls-key=$tls/client.key"
expect_fail wrong_password "WRONGPASS" "rediss://:not-$password@127.0.0.1:$REDIS_PORT/0?$files"
expect_fail plain_to_tls "broker unreachable" "redis://:$password@127.0.0.1:$REDIS_PORT/0"

if grep -l -F -- "$password" "$out"/* >/dev/null 2>&1; then
    bad "the password appears in: $(grep -l -F -- "$password" "$out"/* | xargs -n1 basename | xargs)"
else
    ok "the password appears in no output ($(ls "$out" | wc -l) runs)"
fi
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out"/*; then
    bad "sanitizer report: $(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out"/* | xargs)"
fi

echo "redis_tls_check: $fails failed"
[ "$fails" -eq 0 ]
