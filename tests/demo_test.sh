#!/usr/bin/env bash
# tests/demo_test.sh — what `make demo` runs after building: scripts/demo.sh
# with the release programs in bin/ (make all) starts its own PostgreSQL and
# Redis, loads and runs the example DAG, prints the finished run, exits 0,
# and leaves neither a server nor its folder behind.
#
# Exits 0 when every check passes; prints each failure. tests/run.sh runs it
# with T_ROOT set to a folder of its lane; the demo gets a folder inside it.
set -u
T_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$T_REPO" || exit 1
if [ -z "${T_ROOT:-}" ]; then
    T_ROOT=$(mktemp -d /tmp/dagq-test.XXXXXX) || exit 1
    trap 'rm -rf "$T_ROOT"' EXIT
fi
mkdir -p "$T_ROOT"
chmod 755 "$T_ROOT" # PostgreSQL runs as postgres when we are root
FAILS=0
fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}

for p in dagq dagq-scheduler dagq-worker dagq-web; do
    [ -x "bin/$p" ] || { echo "FAIL: bin/$p not built (make all)"; exit 1; }
done

root="$T_ROOT/demo"
mkdir -p "$root"
T_ROOT=$root bash scripts/demo.sh >"$T_ROOT/demo.out" 2>&1 </dev/null
rc=$?
out=$(sed 's/\x1b\[[0-9;]*m//g' "$T_ROOT/demo.out")
[ "$rc" -eq 0 ] || fail "scripts/demo.sh exited with status $rc"
# the finished run, as `dagq runs` and `dagq tasks` print it
grep -qE '^ *[0-9]+ +etl_daily +manual +2024-06-01 00:00:00 +success ' <<<"$out" ||
    fail "dagq runs does not show the etl_daily run of 2024-06-01 as success"
n=$(grep -cE '^(extract_orders|extract_customers|transform|load|report) +success ' <<<"$out")
[ "$n" -eq 5 ] || fail "dagq tasks shows $n of the 5 task instances as success"
grep -q 'top customers on 2024-06-01:' <<<"$out" || fail "dagq logs of the report task is missing"
grep -q '== the run succeeded' <<<"$out" || fail "the demo did not say the run succeeded"
grep -qE '^web UI: http://127\.0\.0\.1:[0-9]+/$' <<<"$out" || fail "the demo did not print dagq-web's URL"
grep -qE '^viewer token: dagq_[0-9a-f]{64}$' <<<"$out" || fail "the demo did not print a viewer token"
grep -q 'the grid of etl_daily is served' <<<"$out" || fail "dagq-web did not serve the grid of etl_daily"
# it cleaned up after itself
[ ! -e "$root" ] || fail "the demo left its folder $root behind"
left=""
for f in /proc/[0-9]*/cmdline; do
    if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -qF "$root/"; then
        left+=" ${f//[!0-9]/}"
    else
        case $(readlink "${f%/cmdline}/cwd" 2>/dev/null) in "$root"/*) left+=" ${f//[!0-9]/}" ;; esac
    fi
done
if [ -n "$left" ]; then
    fail "processes of the demo still run:$left"
    for p in $left; do echo "    $p: $({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null)"; done
fi

if [ "$FAILS" -ne 0 ]; then
    echo "--- scripts/demo.sh printed:"
    tail -40 "$T_ROOT/demo.out"
    echo "demo_test.sh: $FAILS checks failed"
    exit 1
fi
echo "demo_test.sh: the demo ran etl_daily to success, exited 0 and cleaned up"
