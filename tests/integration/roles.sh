# brokers: redis
# Least privilege (issue 10): what each role may not do, two teams in one
# metastore, the catalog's own promises (SECURITY DEFINER, nothing PUBLIC's),
# and tasks that cannot read their worker's credentials. The login roles
# t_viewer, t_operator, t_author, t_scheduler and t_worker come from the
# harness (tests/lib.sh pg_login_roles); the programs of every other case run
# as t_scheduler and t_worker too.

sqlf() { psql -X -q -At -v ON_ERROR_STOP=1 -v T="$T_CASE" "$DAGQ_DATABASE_URL" -f -; }

# as ROLE SQL: the SQL run as the login role t_ROLE; prints its error
as() { psql -X -q -At -v ON_ERROR_STOP=1 "$(role_url "$1" "$DAGQ_DATABASE_URL")" -c "$2" 2>&1; }

# denied ROLE SQL WHAT: the statement fails with a permission error
denied() {
    local out
    out=$(as "$1" "$2")
    case $out in
    *"permission denied"* | *"may not"* | *"row-level security"*) ;;
    *) fail "$3: $1 was not refused: [$out]" ;;
    esac
}

# a DAG nobody owns (shared: any operator may act on it)
define_small() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, owner) VALUES ('d', NULL);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('d', 'a', 'echo a'), ('d', 'b', 'echo b');
INSERT INTO dagq.task_dependency VALUES ('d', 'b', 'a');
SQL
}

case_each_role_may_do_only_its_part() {
    define_small
    local run
    run=$(sql "SELECT dagq.trigger_dag('d')")
    sql "SELECT dagq.start_run($run)" >/dev/null
    # workers: their functions, no table
    denied worker "UPDATE dagq.task_instance SET command = 'id'" "a worker rewriting a command"
    denied worker "SELECT count(*) FROM dagq.task_instance" "a worker reading tables"
    denied worker "SELECT dagq.trigger_dag('d')" "a worker triggering"
    # viewers read, nothing else
    assert_eq 2 "$(as viewer "SELECT count(*) FROM dagq.task_instance")" "a viewer reads"
    denied viewer "INSERT INTO dagq.dag (dag_id) VALUES ('x')" "a viewer inserting a DAG"
    denied viewer "SELECT dagq.trigger_dag('d')" "a viewer triggering"
    denied viewer "SELECT dagq.pause('d')" "a viewer pausing"
    # operators act through the functions, edit nothing
    [[ $(as operator "SELECT dagq.trigger_dag('d')") =~ ^[0-9]+$ ]] || fail "an operator triggers"
    assert_eq "" "$(as operator "SELECT dagq.pause('d')")" "an operator pauses"
    denied operator "UPDATE dagq.task SET command = 'id' WHERE dag_id = 'd'" "an operator editing a task"
    denied operator "UPDATE dagq.dag_run SET state = 'success'" "an operator writing a run directly"
    denied operator "UPDATE dagq.task_instance SET state = 'success'" "an operator writing a task instance"
    # the scheduler: its functions and reads
    denied scheduler "UPDATE dagq.task_instance SET command = 'id'" "the scheduler rewriting a command"
    denied scheduler "DELETE FROM dagq.dag" "the scheduler deleting a DAG"
    denied scheduler "SELECT * FROM dagq.claim_try(1, 1, 'w', gen_random_uuid(), 'h')" "the scheduler claiming a try"
    # authors write definitions, not runs
    assert_eq "" "$(as author "INSERT INTO dagq.dag (dag_id) VALUES ('mine')")" "an author inserts a DAG"
    denied author "UPDATE dagq.task_instance SET command = 'id'" "an author rewriting a queued command"
    assert_eq "echo a|echo b" "$(sql "SELECT string_agg(command, '|' ORDER BY task_id) FROM dagq.task_instance WHERE run_id = $run")" \
        "no command was rewritten"
}

case_the_cli_acts_with_its_users_role() {
    define_small
    local out rc run
    run=$(DAGQ_DATABASE_URL=$T_OPERATOR_DB_URL "$T_BIN/dagq" trigger d) || fail "dagq trigger as an operator"
    DAGQ_DATABASE_URL=$T_OPERATOR_DB_URL "$T_BIN/dagq" pause d >/dev/null || fail "dagq pause as an operator"
    out=$(DAGQ_DATABASE_URL=$T_VIEWER_DB_URL "$T_BIN/dagq" trigger d 2>&1)
    rc=$?
    assert_eq 1 "$rc" "dagq trigger as a viewer fails"
    assert_contains "$out" "permission denied for function trigger_dag" "and says why"
    assert_contains "$out" "lacks the privilege" "and what to look at"
    assert_contains "$(DAGQ_DATABASE_URL=$T_VIEWER_DB_URL "$T_BIN/dagq" runs d)" "$run" "a viewer lists the runs"
    out=$(DAGQ_DATABASE_URL=$T_VIEWER_DB_URL "$T_BIN/dagq" clear "$run" 2>&1)
    assert_contains "$out" "permission denied for function clear" "dagq clear as a viewer"
}

case_two_teams_cannot_touch_each_others_dags() {
    sqlf <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'team_a') THEN CREATE ROLE team_a NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'team_b') THEN CREATE ROLE team_b NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 't_alice') THEN CREATE ROLE t_alice LOGIN IN ROLE dagq_author, team_a; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 't_bob') THEN CREATE ROLE t_bob LOGIN IN ROLE dagq_author, team_b; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 't_carol') THEN CREATE ROLE t_carol LOGIN IN ROLE dagq_admin; END IF;
END \$\$;
ALTER ROLE t_alice PASSWORD 't_alice-$T_SECRET';
ALTER ROLE t_bob PASSWORD 't_bob-$T_SECRET';
ALTER ROLE t_carol PASSWORD 't_carol-$T_SECRET';
SQL
    as alice "BEGIN; INSERT INTO dagq.dag (dag_id, owner) VALUES ('a_etl', 'team_a');
              INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('a_etl', 'x', 'echo a'), ('a_etl', 'y', 'echo a');
              INSERT INTO dagq.task_dependency VALUES ('a_etl', 'y', 'x'); COMMIT" >/dev/null
    assert_eq "team_a|2" "$(sql "SELECT owner, (SELECT count(*) FROM dagq.task WHERE dag_id = 'a_etl') FROM dagq.dag WHERE dag_id = 'a_etl'")" \
        "team A's author defined its DAG"
    # team B's author sees it and can change none of it
    assert_eq 1 "$(as bob "SELECT count(*) FROM dagq.dag WHERE dag_id = 'a_etl'")" "team B reads it"
    as bob "UPDATE dagq.task SET command = 'id' WHERE dag_id = 'a_etl'" >/dev/null
    as bob "DELETE FROM dagq.task_dependency WHERE dag_id = 'a_etl'" >/dev/null
    as bob "DELETE FROM dagq.dag WHERE dag_id = 'a_etl'" >/dev/null
    as bob "UPDATE dagq.dag SET owner = 'team_b' WHERE dag_id = 'a_etl'" >/dev/null
    assert_eq "team_a|echo a echo a|1" "$(sql "SELECT d.owner, (SELECT string_agg(command, ' ') FROM dagq.task WHERE dag_id = 'a_etl'),
        (SELECT count(*) FROM dagq.task_dependency WHERE dag_id = 'a_etl') FROM dagq.dag d WHERE dag_id = 'a_etl'")" \
        "team B's updates and deletes touched nothing of team A's"
    denied bob "INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('a_etl', 'z', 'id')" "team B adding a task to team A's DAG"
    denied bob "INSERT INTO dagq.task_dependency VALUES ('a_etl', 'x', 'y')" "team B adding an edge to team A's DAG"
    denied bob "INSERT INTO dagq.dag (dag_id, owner) VALUES ('sneaky', 'team_a')" "team B giving a DAG to team A"
    denied bob "SELECT dagq.trigger_dag('a_etl')" "team B triggering team A's DAG"
    denied bob "SELECT dagq.pause('a_etl')" "team B pausing team A's DAG"
    # its own team and an admin may
    assert_eq "" "$(as alice "SELECT dagq.pause('a_etl')")" "team A pauses its DAG"
    assert_eq "" "$(as carol "SELECT dagq.unpause('a_etl')")" "an admin unpauses it"
    assert_eq "" "$(as bob "INSERT INTO dagq.dag (dag_id, owner) VALUES ('b_etl', 'team_b')")" "team B defines its own"
}

# The catalog keeps the promises the roles rest on.
case_privileges_are_what_the_roles_promise() {
    assert_eq "" "$(sql "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'dagq'
        WHERE has_function_privilege('public', p.oid, 'EXECUTE')")" "no dagq function is PUBLIC's"
    assert_eq "" "$(sql "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'dagq'
        WHERE (has_function_privilege('dagq_worker', p.oid, 'EXECUTE')
               OR has_function_privilege('dagq_scheduler', p.oid, 'EXECUTE')
               OR has_function_privilege('dagq_operator', p.oid, 'EXECUTE'))
          AND p.provolatile = 'v'
          AND NOT (p.prosecdef AND EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%'))")" \
        "every state-changing function a role may call is SECURITY DEFINER with a fixed search_path"
    assert_eq "" "$(sql "SELECT string_agg(r || ' ' || priv || ' ' || c.relname, ', ')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'dagq',
             unnest(ARRAY['dagq_viewer', 'dagq_operator', 'dagq_scheduler', 'dagq_worker']) r,
             unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) priv
        WHERE c.relkind = 'r' AND has_table_privilege(r, c.oid, priv)")" \
        "no role but an author writes a table, and an author only definitions"
    assert_eq "" "$(sql "SELECT string_agg(c.relname, ', ') FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'dagq'
        WHERE c.relkind = 'r' AND has_table_privilege('dagq_worker', c.oid, 'SELECT')")" "a worker reads no table"
}

# A task cannot read its worker's credentials: not from its own environment,
# not from the worker's /proc/PID/environ or /proc/PID/mem. Once with the
# worker running as root and tasks as another user (--run-as), once with the
# worker itself unprivileged (it makes itself non-dumpable).
case_tasks_cannot_read_the_workers_credentials() {
    [ "$(id -u)" -eq 0 ] || { fail "this case makes throwaway users: it must run as root, as CI does"; return; }
    local u="dagqt$$" w="dagqw$$"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$u" || { fail "useradd $u"; return; }
    useradd --system --no-create-home --shell /usr/sbin/nologin "$w" || { fail "useradd $w"; userdel "$u"; return; }
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id) VALUES ('snoop');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES ('snoop', 'look',
  'echo "uid=$(id -u)"; env; cat /proc/$PPID/environ 2>&1 | tr "\0" "\n"; head -c 64 /proc/$PPID/mem 2>&1 | od -c | head -3; grep -a . /proc/$PPID/cmdline 2>&1 | tr "\0" " "; echo; echo done');
SQL
    chmod 755 "$T_CASE"
    start_scheduler sched
    start_worker root_w --slots 1 --run-as "$u"
    local r1 r2 out
    r1=$(sql "SELECT dagq.trigger_dag('snoop')")
    assert_eq success "$(wait_run "$r1" 30)" "the snooping task ran"
    stop root_w
    out=$(sql "SELECT output FROM dagq.task_log l JOIN dagq.task_instance i USING (ti_id) WHERE i.run_id = $r1")
    assert_contains "$out" "uid=$(id -u "$u")" "it ran as the --run-as user"
    assert_contains "$out" "done" "it ran to its end"
    # the worker itself, unprivileged, tasks as the same user
    env -u T_SCHED_DB_URL -u T_WORKER_DB_URL -u T_OPERATOR_DB_URL -u T_VIEWER_DB_URL -u T_AUTHOR_DB_URL -u REDIS_URL \
        -u REDIS_PASSWORD -u T_SECRET DAGQ_DATABASE_URL="$T_WORKER_DB_URL" \
        setpriv --reuid="$w" --regid="$w" --init-groups "$T_BIN/dagq-worker" --name plain_w --heartbeat-interval 1 --slots 1 >>"$T_CASE/plain_w.log" 2>&1 &
    P_PID[plain_w]=$!
    T_PIDS+=($!)
    r2=$(sql "SELECT dagq.trigger_dag('snoop')")
    assert_eq success "$(wait_run "$r2" 30)" "the snooping task ran under an unprivileged worker"
    out="$out$(sql "SELECT output FROM dagq.task_log l JOIN dagq.task_instance i USING (ti_id) WHERE i.run_id = $r2")"
    assert_contains "$out" "uid=$(id -u "$w")" "it ran as the worker's user"
    case $out in
    *"$T_SECRET"*) fail "a task read a password: $(grep -o ".\{20\}$T_SECRET" <<<"$out" | head -2 | sed "s/$T_SECRET/<the secret>/")" ;;
    esac
    case $out in *DAGQ_DATABASE_URL* | *DAGQ_BROKER_URL* | *PGPASSWORD*) fail "the worker's settings reached a task" ;; esac
    assert_contains "$out" "Permission denied" "reading the worker's /proc files was refused"
    stop plain_w
    userdel "$u"
    userdel "$w"
}

# The issue's own attack: an operator triggers with a conf that would run
# commands and print the worker's credentials if it were pasted into the
# shell. The task prints the value literally (compared byte for byte with
# the conf, in SQL); nothing else runs. A conf value is never pasted raw.
case_a_triggers_conf_never_becomes_shell() {
    sqlf <<'SQL'
INSERT INTO dagq.dag (dag_id, owner, params) VALUES ('inj', NULL, '{"table": "sales", "flags": "-v"}');
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('inj', 'load', 'printf "loading %s\n" {{ params.table }}; printf "quoted %s\n" "{{ params.table }}"; printf "env %s\n" "$DAGQ_PARAM_TABLE"'),
  ('inj', 'flags', 'echo {{ params.flags | raw }} ok');
SQL
    start_stack 1
    local conf run
    # the value from the issue, then every shell metacharacter, quotes,
    # newlines, $(), backquotes and bytes that are not plain text
    for conf in '{"table": "x; id; tr \"\\000\" \"\\n\" < /proc/$PPID/environ | grep ^PG"}' \
        '{"table": "a'"'"'b\"c`id`$(id)${HOME}$((1+1)) ; | & > '"$T_CASE"'/pwned < * ? [ ] ~ # ! \\ \n newline -e"}' \
        '{"table": "\u0001\u00e9\u00ff\t end '"'"'"}'; do
        run=$(DAGQ_DATABASE_URL=$T_OPERATOR_DB_URL "$T_BIN/dagq" trigger inj --conf "$conf") ||
            { fail "triggering with $conf"; continue; }
        assert_eq success "$(wait_run "$run" 30)" "the run with conf $conf"
        assert_eq t "$(sql "SELECT l.output = format(E'loading %s\nquoted %s\nenv %s\n', v, v, v)
            FROM dagq.dag_run r, dagq.task_instance i, dagq.task_log l, LATERAL (SELECT r.conf->>'table') x(v)
            WHERE r.run_id = $run AND i.run_id = r.run_id AND i.task_id = 'load' AND l.ti_id = i.ti_id")" \
            "the value was printed literally, three ways ($conf)"
    done
    [ -e "$T_CASE/pwned" ] && fail "a redirection in the conf created a file"
    assert_eq 0 "$(sql "SELECT count(*) FROM dagq.task_log WHERE output ~ 'uid=|PGPASS|PGHOST'")" "nothing else ran"
    # a param the conf sets is never pasted raw, whoever triggers
    run=$(sql "SELECT dagq.trigger_dag('inj', '{\"flags\": \"-v; id\"}')")
    assert_eq failed "$(wait_run "$run" 30)" "raw of a conf value fails the run"
    assert_contains "$(sql "SELECT note FROM dagq.task_instance WHERE run_id = $run AND task_id = 'flags'")" \
        "template error" "with a note naming the problem"
    assert_eq "" "$(sql "SELECT output FROM dagq.task_log l JOIN dagq.task_instance i USING (ti_id)
        WHERE i.run_id = $run AND i.task_id = 'flags'")" "and nothing ran"
}
