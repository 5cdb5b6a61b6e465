# brokers: redis
# dagq-web (issue 13): the REST API endpoint by endpoint, tokens and roles,
# 1,000 concurrent requests, slow and malformed clients, and the UI in a real
# headless Chromium. The Python halves live in tests/web/.

# web_setup: DAGs, a team, tokens for each role, the stack and dagq-web
# connected as a login role that is only a member of dagq_web.
web_setup() {
    sql "DO \$\$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dagq_web_login') THEN
             CREATE ROLE dagq_web_login LOGIN; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'team_b_operators') THEN
             CREATE ROLE team_b_operators NOLOGIN; END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END \$\$;
         GRANT dagq_web TO dagq_web_login; GRANT dagq_operator TO team_b_operators;
         GRANT team_b_operators TO dagq_web;
         ALTER ROLE dagq_web_login PASSWORD 'web-$T_SECRET';" >/dev/null 2>&1
    psql -X -q -v ON_ERROR_STOP=1 -v T="$T_CASE" "$DAGQ_DATABASE_URL" -f - >/dev/null <<'SQL' || fail "loading the DAGs"
INSERT INTO dagq.pool (pool, slots, owner) VALUES ('warehouse', 3, NULL);
INSERT INTO dagq.dag (dag_id, owner) VALUES ('diamond', NULL), ('linear', NULL), ('slowlog', NULL);
INSERT INTO dagq.dag (dag_id, owner, is_paused) VALUES ('team_b_dag', 'team_b_operators', false), ('paused_dag', NULL, true);
INSERT INTO dagq.task (dag_id, task_id, command) VALUES
  ('diamond', 'a', 'echo a'), ('diamond', 'b', 'echo b'),
  ('diamond', 'c', 'if [ -f ' || :'T' || '/c.$DAGQ_RUN_ID ]; then echo c again; else touch ' || :'T' || '/c.$DAGQ_RUN_ID; echo c fails; exit 3; fi'),
  ('diamond', 'd', 'echo d'),
  ('linear', 'a', 'echo line-a1; echo line-a2'), ('linear', 'b', 'true'),
  ('team_b_dag', 't', 'true'), ('paused_dag', 'p', 'true'),
  ('slowlog', 's', 'echo tick 1; sleep 5; echo tick 2');
INSERT INTO dagq.task_dependency VALUES ('diamond', 'b', 'a'), ('diamond', 'c', 'a'), ('diamond', 'd', 'b'),
  ('diamond', 'd', 'c'), ('linear', 'b', 'a');
SQL
    local t
    for t in viewer:viewer operator:operator author:author team:team_b_operators expired:viewer revoked:viewer; do
        eval "TOKEN_${t%%:*}=\$(\"\$T_BIN/dagq\" --database-url \"\$DAGQ_DATABASE_URL\" tokens create --name ${t%%:*} --role ${t#*:} | tail -1)"
    done
    sql "UPDATE dagq.api_token SET expires_at = now() - interval '1 second' WHERE name = 'expired'" >/dev/null
    "$T_BIN/dagq" --database-url "$DAGQ_DATABASE_URL" tokens revoke revoked >/dev/null
    export TOKEN_VIEWER=$TOKEN_viewer TOKEN_OPERATOR=$TOKEN_operator TOKEN_AUTHOR=$TOKEN_author
    export TOKEN_TEAM=$TOKEN_team TOKEN_EXPIRED=$TOKEN_expired TOKEN_REVOKED=$TOKEN_revoked
    export WEB_LOGIN_URL=${DAGQ_DATABASE_URL/\/\/dagq@/\/\/dagq_web_login:web-$T_SECRET@}
    export WEB_BIN=$T_BIN/dagq-web
    start_stack 1
    WEB_PORT=$(t_free_port)
    export WEB_URL="http://127.0.0.1:$WEB_PORT/"
    start web dagq-web --database-url "$WEB_LOGIN_URL" --http-port "$WEB_PORT" "$@"
    T_WAIT=20 t_wait_for curl -sf "${WEB_URL}api/v1/health" || fail "dagq-web did not answer /api/v1/health"
}

case_web_api() {
    web_setup
    python3 tests/web/api_test.py || fail "API checks failed (above)"
}

case_web_load_1000_concurrent_requests() {
    web_setup --http-threads 4
    local run
    run=$(sql "SELECT dagq.trigger_dag('linear')")
    assert_eq success "$(wait_run "$run" 60)" "a run to read"
    RUN_ID=$run python3 tests/web/load_test.py 1000 || fail "the load test failed (above)"
}

case_web_slow_and_malformed_clients() {
    web_setup --http-timeout 3 --http-per-ip-limit 40
    python3 tests/web/slow_test.py 3 40 || fail "slow clients starved others (above)"
}

case_web_tokens_cli() {
    local out tok
    out=$("$T_BIN/dagq" --database-url "$DAGQ_DATABASE_URL" tokens create --name ci --role viewer --expires 90d)
    tok=$(tail -1 <<<"$out")
    assert_contains "$tok" dagq_ "the token is alone on the last line"
    assert_eq 69 "${#tok}" "a token is dagq_ and 64 hex digits"
    assert_eq 1 "$(sql "SELECT count(*) FROM dagq.api_token WHERE name = 'ci' AND token_hash = sha256(convert_to('$tok', 'UTF8'))
        AND expires_at BETWEEN now() + interval '89 days' AND now() + interval '91 days'")" "only its hash is kept, with the expiry"
    out=$("$T_BIN/dagq" --database-url "$DAGQ_DATABASE_URL" tokens list)
    assert_contains "$out" "ci " "tokens list shows it"
    case $out in *"$tok"*) fail "tokens list printed a token" ;; esac
    assert_contains "$("$T_BIN/dagq" --database-url "$DAGQ_DATABASE_URL" tokens create --name ci --role viewer 2>&1)" \
        'a token named "ci" exists' "names are unique"
    assert_contains "$("$T_BIN/dagq" --database-url "$DAGQ_DATABASE_URL" tokens create --name x --role dagq_scheduler 2>&1)" \
        "program's role" "no token takes a program's role"
    assert_contains "$("$T_BIN/dagq" --database-url "$DAGQ_DATABASE_URL" tokens create --name x --role nobody_here 2>&1)" \
        "does not exist" "an unknown role is refused"
    assert_contains "$("$T_BIN/dagq" --database-url "$DAGQ_DATABASE_URL" tokens create --name x 2>&1)" \
        "--name and --role are required" "--role is required"
    sql "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ops_person') THEN
           CREATE ROLE ops_person LOGIN IN ROLE dagq_operator; END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END \$\$;
         ALTER ROLE ops_person PASSWORD 'ops-$T_SECRET'" >/dev/null
    assert_contains "$("$T_BIN/dagq" --database-url "${DAGQ_DATABASE_URL/\/\/dagq@/\/\/ops_person:ops-$T_SECRET@}" tokens create --name y --role viewer 2>&1)" \
        "permission denied for function token_create" "only admins create tokens"
    "$T_BIN/dagq" --database-url "$DAGQ_DATABASE_URL" tokens revoke ci >/dev/null || fail "revoke"
    assert_contains "$("$T_BIN/dagq" --database-url "$DAGQ_DATABASE_URL" tokens list)" "revoked" "the revoked token is listed so"
}

case_web_browser() {
    local py
    py=$(bash tests/web/setup.sh) || { fail "cannot set up Selenium (tests/web/setup.sh)"; return; }
    web_setup
    SHOTS=$T_CASE "$py" tests/web/browser_test.py || fail "browser checks failed (above)"
}
