#!/usr/bin/env bash
# tests/integration/cli.sh — bin/dagq against a real PostgreSQL with the
# dagq schema: every command, its table output, its error messages and exit
# statuses. There is no scheduler or worker here: runs come from
# dagq.trigger_dag, task instances from dagq.start_run, and states, logs and
# workers are written with SQL, as those programs would.
#
# Exits 0 when every check passes; prints each failure. Uses the sanitizer
# build ($T_BIN, build/san/bin by default); TEST_PREFIX wraps the binary.
set -u

T_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../lib.sh
. "$T_REPO/tests/lib.sh"
trap t_cleanup EXIT

# shellcheck disable=SC2206 # TEST_PREFIX is meant to be split into words
DAGQ=(${TEST_PREFIX:-} "$T_BIN/dagq")
[ -x "$T_BIN/dagq" ] || { echo "FAIL: $T_BIN/dagq not built (make san)"; exit 1; }

FAILS=0
CHECKS=0
fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}

# die WHAT: a setup step failed; what follows would only fail with it.
die() {
    fail "$*"
    echo "cli.sh: stopped after a failed setup step, $FAILS of $CHECKS checks failed"
    exit 1
}

# run ARGS...: runs dagq; sets OUT (stdout, trailing newlines stripped),
# ERR (stderr) and RC. A sanitizer report fails the test whatever the status.
run() {
    OUT=$("${DAGQ[@]}" "$@" 2>"$T_ROOT/stderr")
    RC=$?
    ERR=$(cat "$T_ROOT/stderr")
    LAST="dagq $*"
    if grep -qE 'Sanitizer|runtime error:' "$T_ROOT/stderr"; then
        fail "$LAST: sanitizer report:"
        cat "$T_ROOT/stderr"
    fi
}

# ok: the last run succeeded and printed nothing on stderr.
ok() {
    CHECKS=$((CHECKS + 1))
    if [ "$RC" -ne 0 ]; then
        fail "$LAST: exit $RC, want 0; stderr: $ERR"
    elif [ -n "$ERR" ]; then
        fail "$LAST: unexpected stderr: $ERR"
    fi
}

# err STATUS TEXT: the last run failed with STATUS and one stderr line
# "dagq: ..." that contains TEXT.
err() {
    CHECKS=$((CHECKS + 1))
    local lines
    lines=$(printf '%s\n' "$ERR" | wc -l)
    if [ "$RC" -ne "$1" ]; then
        fail "$LAST: exit $RC, want $1; stderr: $ERR"
    elif [ "$lines" -ne 1 ] || [ "${ERR#dagq: }" = "$ERR" ]; then
        fail "$LAST: want one stderr line starting with 'dagq: ', got: $ERR"
    elif [[ "$ERR" != *"$2"* ]]; then
        fail "$LAST: stderr does not say '$2': $ERR"
    fi
}

# has TEXT / hasnt TEXT: about the last stdout.
has() {
    CHECKS=$((CHECKS + 1))
    [[ "$OUT" == *"$1"* ]] || fail "$LAST: stdout lacks '$1':"$'\n'"$OUT"
}
hasnt() {
    CHECKS=$((CHECKS + 1))
    [[ "$OUT" != *"$1"* ]] || fail "$LAST: stdout should not have '$1':"$'\n'"$OUT"
}

# eq GOT WANT WHAT
eq() {
    CHECKS=$((CHECKS + 1))
    [ "$1" = "$2" ] || fail "$3: got '$1', want '$2'"
}

# line PATTERN: the first stdout line matching the extended regex.
line() { printf '%s\n' "$OUT" | grep -E -m1 -- "$1"; }

# row_is PATTERN FIELD...: the stdout line matching PATTERN has exactly these
# whitespace-separated fields (the cells hold no blanks in these checks).
row_is() {
    local pat=$1
    shift
    local got want
    got=$(line "$pat" | tr -s ' ' | sed 's/^ //')
    want="$*"
    eq "$got" "$want" "$LAST: row /$pat/"
}

# row_starts PATTERN FIELD...: the same for the first fields only.
row_starts() {
    local pat=$1
    shift
    local got want
    got=$(line "$pat" | tr -s ' ' | sed 's/^ //')
    want="$*"
    eq "${got:0:${#want}}" "$want" "$LAST: row /$pat/ starts"
}

# aligned HEADER PATTERN VALUE [right]: in the table on stdout, the row
# matching PATTERN holds VALUE exactly below HEADER, starting where HEADER
# starts (left-aligned) or ending where it ends (right-aligned), with a blank
# or the end of the line on either side.
aligned() {
    local header row start end
    header=$(printf '%s\n' "$OUT" | head -1)
    row=$(line "$2")
    start=$(awk -v s="$1" '{ print index($0, s) - 1 }' <<<"$header")
    if [ "${4:-}" = right ]; then
        end=$((start + ${#1}))
        start=$((end - ${#3}))
    else
        end=$((start + ${#3}))
    fi
    CHECKS=$((CHECKS + 1))
    if [ "$start" -lt 0 ] || [ "${row:start:${#3}}" != "$3" ] ||
        { [ "$start" -gt 0 ] && [ "${row:start-1:1}" != " " ]; } ||
        { [ "$end" -lt "${#row}" ] && [ "${row:end:1}" != " " ]; }; then
        fail "$LAST: '$3' is not ${4:-left}-aligned under $1 in row /$2/:"$'\n'"$header"$'\n'"$row"
    fi
}

sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$DAGQ_DATABASE_URL" -c "$1"; }

pg_start || die "starting PostgreSQL"
DAGQ_DATABASE_URL=$(pg_new_db cli) || die "creating a database"
export DAGQ_DATABASE_URL
unset DAGQ_LOG_LEVEL DAGQ_CONF DAGQ_LOGICAL_DATE DAGQ_LIMIT DAGQ_TRY DAGQ_DOWNSTREAM

MIGS=("$T_REPO"/sql/*.sql)
NMIG=${#MIGS[@]}
LASTMIG=$(basename "${MIGS[NMIG - 1]}" .sql)

### before the schema exists, the error says what to do
run dags
err 1 "dagq db migrate"

### db migrate: applies everything, then nothing
run db migrate
ok
eq "$OUT" "applied $NMIG migrations; current: $LASTMIG" "first migrate"
run db migrate
ok
eq "$OUT" "applied 0 migrations; current: $LASTMIG" "second migrate"
eq "$(sql 'SELECT count(*) FROM dagq.schema_migrations')" "$NMIG" "recorded migrations"

### two migrators at once on a fresh database: both succeed, each migration once
PAR_URL=$(pg_new_db cli_parallel) || die "creating a database"
DAGQ_DATABASE_URL=$PAR_URL "${DAGQ[@]}" db migrate >"$T_ROOT/m1.out" 2>"$T_ROOT/m1.err" &
p1=$!
DAGQ_DATABASE_URL=$PAR_URL "${DAGQ[@]}" db migrate >"$T_ROOT/m2.out" 2>"$T_ROOT/m2.err" &
p2=$!
wait $p1
rc1=$?
wait $p2
rc2=$?
CHECKS=$((CHECKS + 1))
if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
    fail "parallel migrate: exit $rc1 and $rc2: $(cat "$T_ROOT/m1.err" "$T_ROOT/m2.err")"
fi
n1=$(sed -n 's/^applied \([0-9]*\) migrations\{0,1\}; .*/\1/p' "$T_ROOT/m1.out")
n2=$(sed -n 's/^applied \([0-9]*\) migrations\{0,1\}; .*/\1/p' "$T_ROOT/m2.out")
eq "$((${n1:-0} + ${n2:-0}))" "$NMIG" "parallel migrate: migrations applied in all"
eq "$(psql -X -q -At "$PAR_URL" -c 'SELECT count(*) FROM dagq.schema_migrations')" "$NMIG" \
    "parallel migrate: recorded migrations"

### empty lists
run dags
ok
has "no DAGs"
run runs
ok
has "no runs"
run workers
ok
has "no workers"
run pools
ok
has "no pools"

### DAGs defined with SQL, as ETL teams do
sql "BEGIN;
INSERT INTO dagq.dag (dag_id, schedule, timezone, start_date, description)
     VALUES ('etl', '@daily', 'Europe/Paris', '2024-01-01', 'the example');
INSERT INTO dagq.dag (dag_id) VALUES ('report');
INSERT INTO dagq.task (dag_id, task_id, command, retries) VALUES
    ('etl', 'extract', 'echo extract', 0),
    ('etl', 'transform', 'echo transform', 1),
    ('etl', 'load', 'echo load', 0);
INSERT INTO dagq.task_dependency (dag_id, task_id, upstream_task_id) VALUES
    ('etl', 'transform', 'extract'), ('etl', 'load', 'transform');
COMMIT;
UPDATE dagq.dag SET next_dagrun_start = '2024-01-31 00:00+00',
                    next_dagrun_end = '2024-02-01 00:00+00' WHERE dag_id = 'etl';" ||
    die "defining the DAGs with SQL"

run dags
ok
eq "$(printf '%s\n' "$OUT" | head -1 | tr -s ' ')" \
    "DAG SCHEDULE TIMEZONE PAUSED TASKS ACTIVE RUNS LAST RUN NEXT RUN PARKED" "dags: header"
row_is '^etl ' etl @daily Europe/Paris no 3 0 - 2024-02-01 00:00:00 no
row_is '^report ' report - UTC no 0 0 - - no
aligned SCHEDULE '^etl ' '@daily'
aligned TIMEZONE '^report ' 'UTC'
aligned 'NEXT RUN' '^etl ' '2024-02-01'
aligned TASKS '^etl ' 3 right
aligned 'ACTIVE RUNS' '^report ' 0 right

### trigger
run trigger etl --conf '{"source": "cli", "n": 1}'
ok
RUN1=$OUT
[[ "$RUN1" =~ ^[0-9]+$ ]] || fail "trigger: want a run id, got '$RUN1'"
eq "$(sql "SELECT conf->>'source', run_type, state FROM dagq.dag_run WHERE run_id = $RUN1")" \
    "cli|manual|queued" "trigger: the run in the database"
run trigger etl --logical-date '2024-01-31'
ok
RUN2=$OUT
run trigger etl --logical-date '2024-01-31 01:30:00+01'
ok
RUN3=$OUT
run trigger report
ok
RUN4=$OUT
eq "$(sql "SELECT count(*) FROM dagq.dag_run")" 4 "runs created by trigger"

run trigger nope
err 1 'unknown DAG "nope"'
run trigger etl --conf 'not json'
err 2 "--conf"
run trigger etl --conf '[1, 2]'
err 2 "--conf must be a JSON object"
run trigger etl --logical-date 'someday'
err 2 "--logical-date"
run trigger
err 2 "missing argument DAG"
run trigger etl report
err 2 'unexpected argument "report"'
run trigger etl --try 2
err 2 "option --try does not apply to trigger"
eq "$(sql "SELECT count(*) FROM dagq.dag_run")" 4 "failed triggers created no run"

### runs, newest first
run runs
ok
eq "$(printf '%s\n' "$OUT" | head -1 | tr -s ' ')" \
    "RUN DAG TYPE LOGICAL DATE STATE STARTED ENDED DURATION" "runs: header"
eq "$(printf '%s\n' "$OUT" | sed -n 2p | awk '{print $1}')" "$RUN4" "runs: newest first"
eq "$(printf '%s\n' "$OUT" | sed -n 5p | awk '{print $1}')" "$RUN1" "runs: oldest last"
row_is "^ *$RUN2 " "$RUN2" etl manual 2024-01-31 00:00:00 queued - - -
row_is "^ *$RUN3 " "$RUN3" etl manual 2024-01-31 00:30:00 queued - - -
aligned STATE "^ *$RUN2 " queued
aligned DURATION "^ *$RUN2 " - right
run runs etl --limit 2
ok
eq "$(printf '%s\n' "$OUT" | wc -l)" 3 "runs --limit 2: header and two rows"
hasnt report
run runs report
ok
row_starts "^ *$RUN4 " "$RUN4" report manual
run runs nope
err 1 'unknown DAG "nope"'
run runs --limit 0
err 2 "--limit"
run runs --limit many
err 2 "--limit"

### tasks
run tasks "$RUN1"
ok
has "no task instances yet"
has "queued"
eq "$(sql "SELECT dagq.start_run($RUN1)")" 3 "start_run"
sql "UPDATE dagq.dag_run SET started_at = '2024-01-31 10:00:00+00' WHERE run_id = $RUN1;
UPDATE dagq.task_instance SET state = 'success', try_number = 1, worker_id = 'host-a:100',
       hostname = 'host-a', started_at = '2024-01-31 10:00:00+00',
       ended_at = '2024-01-31 10:01:05+00', exit_code = 0
 WHERE run_id = $RUN1 AND task_id = 'extract';
UPDATE dagq.task_instance SET state = 'failed', try_number = 2, worker_id = 'host-b:200',
       hostname = 'host-b', started_at = '2024-01-31 10:01:10+00',
       ended_at = '2024-01-31 10:01:11.25+00', exit_code = 3,
       note = E'exit status 3\nsee the log'
 WHERE run_id = $RUN1 AND task_id = 'transform';
UPDATE dagq.task_instance SET state = 'upstream_failed', ended_at = '2024-01-31 10:01:12+00',
       note = 'by trigger rule all_success'
 WHERE run_id = $RUN1 AND task_id = 'load';" || die "setting task states"
run tasks "$RUN1"
ok
eq "$(printf '%s\n' "$OUT" | head -1 | tr -s ' ')" \
    "TASK STATE TRY GROUP WORKER STARTED ENDED DURATION EXIT NOTE" "tasks: header"
eq "$(printf '%s\n' "$OUT" | wc -l)" 4 "tasks: header and three rows (a note's newline stays inside its row)"
row_is '^extract ' extract success 1 default host-a:100 2024-01-31 10:00:00 2024-01-31 10:01:05 1m05s 0 -
row_is '^transform ' transform failed 2 default host-b:200 2024-01-31 10:01:10 \
    2024-01-31 10:01:11 1.2s 3 'exit' status '3\nsee' the log
row_is '^load ' load upstream_failed 0 default - - 2024-01-31 10:01:12 - - by trigger rule all_success
aligned STATE '^load ' upstream_failed
aligned TRY '^transform ' 2 right
aligned DURATION '^extract ' 1m05s right
aligned EXIT '^transform ' 3 right
aligned NOTE '^load ' 'by trigger'
run tasks 999999
err 1 "unknown run 999999"
run tasks abc
err 2 'run id "abc" is not a number'
run tasks 1.5
err 2 "is not a number"
run tasks 99999999999999999999
err 2 "out of range"
run tasks
err 2 "missing argument RUN_ID"

run runs etl
ok
row_starts "^ *$RUN1 " "$RUN1" etl manual
has "2024-01-31 10:00:00"

run dags
ok
row_is '^etl ' etl @daily Europe/Paris no 3 3 queued 2024-02-01 00:00:00 no

### logs
printf 'extracted 3 rows\nline two\n' >"$T_ROOT/extract.want"
sql "INSERT INTO dagq.task_log (ti_id, try_number, output, truncated_bytes)
SELECT ti_id, 1, E'extracted 3 rows\nline two\n', 0 FROM dagq.task_instance
 WHERE run_id = $RUN1 AND task_id = 'extract';
INSERT INTO dagq.task_log (ti_id, try_number, output, truncated_bytes)
SELECT ti_id, 1, E'first try\n', 0 FROM dagq.task_instance
 WHERE run_id = $RUN1 AND task_id = 'transform';
INSERT INTO dagq.task_log (ti_id, try_number, output, truncated_bytes)
SELECT ti_id, 2, E'...the tail of try 2\n', 4096 FROM dagq.task_instance
 WHERE run_id = $RUN1 AND task_id = 'transform';" || die "inserting task_log rows"

CHECKS=$((CHECKS + 1))
"${DAGQ[@]}" logs "$RUN1" extract >"$T_ROOT/extract.got" 2>"$T_ROOT/stderr" ||
    fail "logs extract: exit $?: $(cat "$T_ROOT/stderr")"
cmp -s "$T_ROOT/extract.got" "$T_ROOT/extract.want" ||
    fail "logs extract: output differs: $(od -c "$T_ROOT/extract.got" | head -5)"
[ -s "$T_ROOT/stderr" ] && fail "logs extract: unexpected stderr: $(cat "$T_ROOT/stderr")"

run logs "$RUN1" transform
eq "$RC" 0 "logs transform: exit status"
eq "$OUT" "...the tail of try 2" "logs transform: the latest try"
CHECKS=$((CHECKS + 1))
[[ "$ERR" == *"truncated"* && "$ERR" == *"4096"* ]] ||
    fail "logs transform: want a note that 4096 bytes were truncated, stderr: $ERR"
run logs "$RUN1" transform --try 1
ok
eq "$OUT" "first try" "logs --try 1"
run logs "$RUN1" transform --try 3
err 1 "no log for try 3"
run logs "$RUN1" load
err 1 "no log"
run logs "$RUN1" nope
err 1 "has no task \"nope\""
run logs 999999 extract
err 1 "unknown run 999999"
run logs "$RUN1"
err 2 "missing argument TASK_ID"
run logs x extract
err 2 'run id "x" is not a number'
run logs "$RUN1" extract --try 0
err 2 "--try"
run logs "$RUN1" extract --downstream
err 2 "option --downstream does not apply to logs"

### clear
run clear "$RUN1" transform --downstream
ok
eq "$OUT" "cleared 2 task instances" "clear --downstream"
eq "$(sql "SELECT string_agg(task_id || '=' || state, ',' ORDER BY task_id)
             FROM dagq.task_instance WHERE run_id = $RUN1")" \
    "extract=success,load=scheduled,transform=scheduled" "clear: states after"
run clear "$RUN1" extract
ok
eq "$OUT" "cleared 1 task instance" "clear one task"
run clear "$RUN1"
ok
eq "$OUT" "cleared 0 task instances" "clear with nothing finished"
run clear "$RUN1" nope
err 1 'no task "nope"'
run clear 999999
err 1 "unknown run 999999"
run clear
err 2 "missing argument RUN_ID"
run clear zz
err 2 'run id "zz" is not a number'
run clear "$RUN1" extract --downstream=perhaps
err 2 "--downstream"

### pause / unpause
run pause etl
ok
eq "$OUT" "paused etl" "pause"
eq "$(sql "SELECT is_paused FROM dagq.dag WHERE dag_id = 'etl'")" t "pause: is_paused"
run dags
row_is '^etl ' etl @daily Europe/Paris yes 3 3 queued 2024-02-01 00:00:00 no
run unpause etl
ok
eq "$OUT" "unpaused etl" "unpause"
eq "$(sql "SELECT is_paused FROM dagq.dag WHERE dag_id = 'etl'")" f "unpause: is_paused"
run pause nope
err 1 'unknown DAG "nope"'
run unpause nope
err 1 'unknown DAG "nope"'
run pause
err 2 "missing argument DAG"

### workers
sql "SELECT count(*) FROM dagq.worker_heartbeat('host-a:100', 'aaaaaaaa-0000-4000-8000-000000000001',
                                                'host-a', 100, '{default,gpu}', 4, 1, 'up');
INSERT INTO dagq.worker (worker_id, incarnation, hostname, pid, groups, slots, running, state, heartbeat_at)
VALUES ('host-b:200', 'bbbbbbbb-0000-4000-8000-000000000002', 'host-b', 200, '{default}', 2, 0, 'up', now() - interval '5 minutes'),
       ('host-c:300', 'cccccccc-0000-4000-8000-000000000003', 'host-c', 300, '{etl}', 8, 0, 'gone', now() - interval '2 hours');" >/dev/null ||
    fail "registering workers"
run workers
ok
eq "$(printf '%s\n' "$OUT" | head -1 | tr -s ' ')" \
    "WORKER INCARNATION HOST PID GROUPS SLOTS RUNNING STATE LAST HEARTBEAT" "workers: header"
CHECKS=$((CHECKS + 1))
line '^host-a:100 ' | grep -qE '^host-a:100 +aaaaaaaa +host-a +100 +default,gpu +4 +1 +up +[0-9.]+s ago$' ||
    fail "workers: row of host-a: $(line '^host-a:100 ')"
row_is '^host-b:200 ' host-b:200 bbbbbbbb host-b 200 default 2 0 lost 5m00s ago
row_is '^host-c:300 ' host-c:300 cccccccc host-c 300 etl 8 0 gone 2h00m ago
aligned PID '^host-c:300 ' 300 right
aligned 'LAST HEARTBEAT' '^host-b:200 ' ago right

### pools: size and the slots queued and running task instances hold
sql "BEGIN;
INSERT INTO dagq.pool (pool, slots, description) VALUES ('warehouse', 4, 'the warehouse'), ('held', 0, NULL);
INSERT INTO dagq.dag (dag_id) VALUES ('pooled');
INSERT INTO dagq.task (dag_id, task_id, command, pool, pool_slots)
VALUES ('pooled', 'p1', 'true', 'warehouse', 2), ('pooled', 'p2', 'true', 'warehouse', 1),
       ('pooled', 'p3', 'true', 'warehouse', 1), ('pooled', 'p4', 'true', 'held', 1);
COMMIT;
SELECT dagq.start_run(dagq.trigger_dag('pooled'));
UPDATE dagq.task_instance SET state = 'running' WHERE dag_id = 'pooled' AND task_id = 'p1';
UPDATE dagq.task_instance SET state = 'queued' WHERE dag_id = 'pooled' AND task_id = 'p2';" >/dev/null ||
    fail "defining pools"
run pools
ok
eq "$(printf '%s\n' "$OUT" | head -1 | tr -s ' ')" "POOL SLOTS USED QUEUED RUNNING FREE DESCRIPTION" "pools: header"
row_is '^warehouse ' warehouse 4 3 1 1 1 the warehouse
row_is '^held ' held 0 0 0 0 0 -
aligned SLOTS '^held ' 0 right

### usage errors and help
run
err 2 "no command given"
run frobnicate
err 2 'unknown command "frobnicate"'

[[ "$ERR" == *"workers"* && "$ERR" == *"db migrate"* ]] ||
    fail "unknown command: the error should list the commands: $ERR"
run db
err 2 "needs a subcommand"
run db drop
err 2 'unknown command "db drop"'
run dags extra
err 2 'unexpected argument "extra"'
run dags --limit 5
err 2 "option --limit does not apply to dags"
run dags --bogus
err 2 "unknown option --bogus"
run --log-level loud dags
err 2 "--log-level"
run dags --database-url
err 2 "--database-url needs a value"
DAGQ_TRY=2 run dags
ok
for h in --help help; do
    run $h
    ok
    for w in "db migrate" dags trigger runs tasks logs clear pause unpause workers pools \
        --database-url --log-level --conf --logical-date --limit --try --downstream \
        DAGQ_DATABASE_URL; do
        has "$w"
    done
done

### the database is unreachable: libpq's words, status 1
PORT=$(t_free_port)
run --database-url "postgresql://dagq@127.0.0.1:$PORT/cli" dags
err 1 "cannot connect to the database"
CHECKS=$((CHECKS + 1))
[[ "$ERR" == *"$PORT"* && "$ERR" == *"refused"* ]] || fail "unreachable: want libpq's words: $ERR"
DAGQ_DATABASE_URL="postgresql://dagq@127.0.0.1:$PORT/cli" run --database-url "$DAGQ_DATABASE_URL" dags
ok
run --database-url "postgresql://dagq@127.0.0.1:$PG_PORT/no_such_db" workers
err 1 'database "no_such_db" does not exist'
run --database-url 'bogus_option=1' dags
err 1 "cannot connect to the database"

### hostile input is data, never SQL, and never a crash
run pause "etl'; DROP TABLE dagq.dag; --"
err 1 'unknown DAG "etl'"'"'; DROP TABLE dagq.dag; --"'
eq "$(sql "SELECT count(*) FROM dagq.dag")" 3 "the DAGs survive a hostile name"
run trigger "$(head -c 20000 /dev/zero | tr '\0' x)"
err 1 "unknown DAG"
run trigger "$(printf 'bad\377utf8')"
err 1 "UTF8"
run logs "$RUN1" "$(printf 'tab\there')"
err 1 "has no task"
run runs "" --limit 1000000
err 1 'unknown DAG ""'

if [ "$FAILS" -ne 0 ]; then
    echo "cli.sh: $FAILS of $CHECKS checks failed"
    exit 1
fi
echo "cli.sh: all $CHECKS checks passed"
