# The daemons' HTTP endpoints under misbehaving clients, and --http-bind:
# /healthz keeps answering while slow-loris, idle and malformed clients hit
# the server (tests/http_abuse.py), the server listens only on the address
# it was given (IPv4 and IPv6), and an address that is not the machine's, or
# is not an address, stops the daemon at start with words that name it.
# brokers: redis

# h_status URL: the status code (000 when nothing answered), curl's exit code
# after a space
h_status() {
    local code rc
    code=$(curl -g -s -o /dev/null -w '%{http_code}' --max-time 5 "$1")
    rc=$?
    echo "$code $rc"
}

# h_wait_ok URL: until it answers 200 (20 s)
h_wait_ok() {
    local deadline=$((SECONDS + 20)) got=""
    while ((SECONDS < deadline)); do
        got=$(h_status "$1")
        [ "${got% *}" = 200 ] && return 0
        sleep 0.2
    done
    fail "waited 20s for $1 to answer 200, last [$got]"
    return 1
}

# h_refused URL WHAT: nothing listens there (curl: connection refused, exit 7)
h_refused() {
    assert_eq "000 7" "$(h_status "$1")" "$2: $1 is refused"
}

case_healthz_answers_while_clients_misbehave() {
    local sp rc
    sp=$(t_free_port)
    start_scheduler sched --http-port "$sp" --http-bind 127.0.0.1
    h_wait_ok "http://127.0.0.1:$sp/healthz" || return
    # 200 slow-loris connections from one address and 100 from as many
    # others, 50 idle ones, a stream of malformed requests, for 10 s; the
    # probe comes from an address of its own, as a kubelet or Prometheus does
    python3 "$T_REPO/tests/http_abuse.py" "$sp" --duration 10 --slow 200 --spread 100 --idle 50 \
        --max-per-ip 16 --max-slow-life 7.5 >"$T_CASE/abuse.json" 2>"$T_CASE/abuse.err"
    rc=$?
    echo "http_abuse: $(cat "$T_CASE/abuse.json")"
    [ "$rc" -eq 0 ] || fail "misbehaving clients: $(cat "$T_CASE/abuse.err")"
    # afterwards: both endpoints as before, and nothing said about HTTP
    assert_eq "200 0" "$(h_status "http://127.0.0.1:$sp/healthz")" "/healthz after the clients left"
    assert_contains "$(curl -s --max-time 5 "http://127.0.0.1:$sp/metrics")" 'dagq_up{server="database"} 1' \
        "/metrics after the clients left"
    local said
    said=$(grep -E 'level=(warn|error)' "$T_CASE/sched.log" | grep -iE 'http|microhttpd')
    [ -z "$said" ] || fail "the scheduler logged about the clients: $said"
}

case_http_bind_listens_only_on_its_address() {
    local sp a
    sp=$(t_free_port)
    start_scheduler sched --http-port "$sp" --http-bind 127.0.0.1
    h_wait_ok "http://127.0.0.1:$sp/healthz" || return
    assert_eq "200 0" "$(h_status "http://127.0.0.1:$sp/metrics")" "/metrics on the bound address"
    h_refused "http://127.0.0.2:$sp/healthz" "another loopback address"
    h_refused "http://[::1]:$sp/healthz" "IPv6 loopback"
    # and the machine's other addresses, when it has any
    for a in $(hostname -I 2>/dev/null); do
        case $a in *:*) h_refused "http://[$a]:$sp/healthz" "the machine's address $a" ;;
        *) h_refused "http://$a:$sp/healthz" "the machine's address $a" ;; esac
    done
    assert_contains "$(cat "$T_CASE/sched.log")" 'msg="serving /healthz and /metrics" addr=127.0.0.1' \
        "the scheduler says where it listens"
    # the worker takes the option too (DAGQ_HTTP_BIND)
    local wp
    wp=$(t_free_port)
    DAGQ_HTTP_BIND=127.0.0.2 start_worker w1 --http-port "$wp"
    h_wait_ok "http://127.0.0.2:$wp/healthz" || return
    h_refused "http://127.0.0.1:$wp/healthz" "worker bound to 127.0.0.2"
}

case_http_bind_ipv6() {
    python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
        { fail "this machine has no IPv6 loopback (::1): the IPv6 forms cannot be checked here"; return; }
    local p1 p2
    p1=$(t_free_port)
    p2=$(t_free_port)
    start_scheduler s6 --http-port "$p1" --http-bind ::1
    start_worker w6 --http-port "$p2" --http-bind '[::]'
    h_wait_ok "http://[::1]:$p1/healthz" || return
    h_refused "http://127.0.0.1:$p1/healthz" "IPv4 with --http-bind ::1"
    # :: is every address, IPv4 ones included
    h_wait_ok "http://[::1]:$p2/healthz" || return
    assert_eq "200 0" "$(h_status "http://127.0.0.1:$p2/healthz")" "IPv4 with --http-bind [::]"
}

# h_start_fails NAME PROG WORDS... -- ARGS...: PROG with ARGS exits 1 within
# 20 s and its output holds each of WORDS
h_start_fails() {
    local name=$1 prog=$2 w rc
    shift 2
    local words=()
    while [ "$1" != -- ]; do words+=("$1"); shift; done
    shift
    # shellcheck disable=SC2086
    timeout 20 ${TEST_PREFIX:-} "$T_BIN/$prog" "$@" >"$T_CASE/$name.out" 2>&1
    rc=$?
    assert_eq 1 "$rc" "$name: exit status"
    for w in "${words[@]}"; do
        assert_contains "$(cat "$T_CASE/$name.out")" "$w" "$name: the error"
    done
}

case_http_bind_bad_address_fails_at_start() {
    local p foreign="" a
    p=$(t_free_port)
    # an address of the documentation ranges that this machine does not have
    for a in 198.51.100.77 203.0.113.77 192.0.2.77; do
        if python3 - "$a" <<'PY' 2>/dev/null; then
import errno, socket, sys
s = socket.socket()
try:
    s.bind((sys.argv[1], 0))
except OSError as e:
    sys.exit(0 if e.errno == errno.EADDRNOTAVAIL else 1)
sys.exit(1)
PY
            foreign=$a
            break
        fi
    done
    [ -n "$foreign" ] || { fail "no address found that this machine does not have"; return; }
    h_start_fails foreign_sched dagq-scheduler "$foreign:$p" "not an address of this machine" -- \
        --http-port "$p" --http-bind "$foreign"
    h_start_fails foreign_worker dagq-worker "$foreign:$p" "not an address of this machine" -- \
        --http-port "$p" --http-bind "$foreign"
    for a in localhost 127.0.0.1:9090 300.1.2.3 127.1 '[::1' 'fe80::1%no-such-interface'; do
        h_start_fails "bad_${a//[^a-z0-9]/_}" dagq-scheduler "\"$a\"" "is not an IPv4 or IPv6 address" -- \
            --http-port "$p" --http-bind "$a"
    done
    # a port another program holds: named with the address
    python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); print("held", flush=True); time.sleep(60)' "$p" \
        >"$T_CASE/holder.out" 2>&1 &
    local holder=$!
    T_WAIT=10 t_wait_for grep -q held "$T_CASE/holder.out"
    h_start_fails in_use dagq-scheduler "127.0.0.1:$p" "in use" -- --http-port "$p" --http-bind 127.0.0.1
    kill "$holder" 2>/dev/null
    wait "$holder" 2>/dev/null
    # no daemon was left running, and none got as far as its database
    assert_eq 0 "$(sql "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
        AND pid <> pg_backend_pid()")" "no daemon connected"
}
