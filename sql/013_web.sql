-- dagq metastore, migration 013: what dagq-web needs (issue 13). API
-- tokens, the audit of every write, clear with only_failed and dry_run, and
-- the JSON each endpoint returns, built here so the C side only routes,
-- authenticates and streams.
--
-- Tokens. A token is 'dagq_' and 64 hex digits (244 random bits), printed
-- once by dagq.token_create; the metastore keeps only its SHA-256. Each
-- token names the database role its requests run as: dagq-web looks the
-- hash up through dagq.token_authenticate (SECURITY DEFINER: nobody but the
-- table's owner reads a hash) and runs the request's SQL after SET LOCAL
-- ROLE to that role, so what a token may do is exactly what the role's
-- GRANTs and row-level security allow, and dagq.caller() names the role.
-- A token's role is dagq_viewer, dagq_operator, dagq_author, or a team
-- role that is a member of one of them (team_a_operators IN ROLE
-- dagq_operator), so that DAG ownership (010) applies to the team.
--
-- dagq_web is the group role of dagq-web's login role (GRANT dagq_web TO
-- the login role). It is NOINHERIT: it may SET ROLE to the people roles it
-- is a member of, but has none of their rights itself; on its own it may
-- only look tokens up and write the audit. A team role becomes usable by
-- tokens once it is granted to dagq_web (GRANT team_a_operators TO
-- dagq_web); dagq.token_create says so when it is not.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dagq_web') THEN
        BEGIN
            CREATE ROLE dagq_web NOLOGIN NOINHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
END;
$$;

DO $$
DECLARE
    g text;
BEGIN
    FOREACH g IN ARRAY ARRAY['dagq_viewer', 'dagq_operator', 'dagq_author'] LOOP
        IF NOT pg_has_role('dagq_web', g, 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT %I TO dagq_web', g);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
END;
$$;

GRANT USAGE ON SCHEMA dagq TO dagq_web;
-- /api/v1/health says which migration the metastore is at
GRANT SELECT ON dagq.schema_migrations TO dagq_web;

------------------------------------------------------------------------------
-- Tokens.
------------------------------------------------------------------------------

CREATE TABLE dagq.api_token (
    token_id     bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.@-]{1,100}$'),
    role         name NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by   name NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
COMMENT ON TABLE dagq.api_token IS
    'API tokens of dagq-web: the SHA-256 of each token (never the token), the role its requests '
    'run as, expiry and revocation. token_hash is readable by nobody but the owner.';
-- admins list tokens; nobody reads a hash
GRANT SELECT (token_id, name, role, created_at, created_by, expires_at, revoked_at, last_used_at)
    ON dagq.api_token TO dagq_admin;

-- May tokens run as role r? Its problem in words, or NULL.
CREATE FUNCTION dagq.token_role_problem(r name) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    a pg_roles;
BEGIN
    SELECT * INTO a FROM pg_roles WHERE rolname = r;
    IF NOT FOUND THEN
        RETURN format('role %s does not exist', r);
    END IF;
    IF a.rolsuper OR a.rolcreaterole OR a.rolbypassrls OR a.rolcanlogin THEN
        RETURN format('role %s is a login, superuser, CREATEROLE or BYPASSRLS role; tokens take '
                      'group roles only', r);
    END IF;
    IF NOT pg_has_role(r, 'dagq_viewer', 'MEMBER') THEN
        RETURN format('role %s is not a member of dagq_viewer (use dagq_viewer, dagq_operator, '
                      'dagq_author, or a team role IN ROLE one of them)', r);
    END IF;
    IF pg_has_role(r, 'dagq_scheduler', 'MEMBER') OR pg_has_role(r, 'dagq_worker', 'MEMBER')
       OR pg_has_role(r, 'dagq_web', 'MEMBER') THEN
        RETURN format('role %s is a program''s role (dagq_scheduler, dagq_worker, dagq_web)', r);
    END IF;
    IF NOT pg_has_role('dagq_web', r, 'MEMBER') THEN
        RETURN format('dagq-web cannot take on role %s: GRANT %I TO dagq_web first', r, r);
    END IF;
    RETURN NULL;
END;
$$;

-- Creates a token for role p_role, valid for p_expires_in (NULL: until
-- revoked), and returns it: the only time it is ever seen. For dagq_admin.
CREATE FUNCTION dagq.token_create(p_name text, p_role name, p_expires_in interval DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    me name := dagq.caller();
    err text;
    tok text;
BEGIN
    IF NOT pg_has_role(me, 'dagq_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'dagq.token_create: role % may not create tokens (it is not a member of dagq_admin)', me
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9_.@-]{1,100}$' THEN
        RAISE EXCEPTION 'dagq.token_create: a token name is 1 to 100 of A-Z a-z 0-9 _ . @ -, got "%"', p_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    err := dagq.token_role_problem(p_role);
    IF err IS NOT NULL THEN
        RAISE EXCEPTION 'dagq.token_create: %', err USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_expires_in IS NOT NULL AND (p_expires_in <= interval '0' OR p_expires_in > interval '3660 days') THEN
        RAISE EXCEPTION 'dagq.token_create: expiry must be above 0 and at most 3660 days, got %', p_expires_in
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM dagq.api_token WHERE name = p_name) THEN
        RAISE EXCEPTION 'dagq.token_create: a token named "%" exists (revoke it, or pick another name)', p_name
            USING ERRCODE = 'unique_violation';
    END IF;
    tok := 'dagq_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
    INSERT INTO dagq.api_token (name, role, token_hash, created_by, expires_at)
    VALUES (p_name, p_role, sha256(convert_to(tok, 'UTF8')), me,
            now() + p_expires_in);
    INSERT INTO dagq.audit_log (role, source, method, path, body, status)
    VALUES (me, COALESCE(host(inet_client_addr()), 'local'), 'SQL', 'dagq.token_create',
            jsonb_build_object('name', p_name, 'role', p_role, 'expires_in', p_expires_in::text), 200);
    RETURN tok;
END;
$$;

-- Revokes a token by name (its requests get 401 from then on). For dagq_admin.
CREATE FUNCTION dagq.token_revoke(p_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    me name := dagq.caller();
BEGIN
    IF NOT pg_has_role(me, 'dagq_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'dagq.token_revoke: role % may not revoke tokens (it is not a member of dagq_admin)', me
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE dagq.api_token SET revoked_at = clock_timestamp()
     WHERE name = p_name AND revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.token_revoke: no valid token named "%"', p_name
            USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO dagq.audit_log (role, source, method, path, body, status)
    VALUES (me, COALESCE(host(inet_client_addr()), 'local'), 'SQL', 'dagq.token_revoke',
            jsonb_build_object('name', p_name), 200);
END;
$$;

-- dagq-web's lookup: the token whose SHA-256 is p_hash (hex), with its state
-- ('valid', 'expired', 'revoked'); no row when there is none. last_used_at
-- is refreshed at most once a minute, never waiting for a lock.
CREATE FUNCTION dagq.token_authenticate(p_hash text)
RETURNS TABLE (token_id bigint, name text, role name, state text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
#variable_conflict use_column
DECLARE
    t dagq.api_token;
BEGIN
    SELECT * INTO t FROM dagq.api_token a WHERE a.token_hash = decode(p_hash, 'hex');
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF t.revoked_at IS NULL AND (t.last_used_at IS NULL OR t.last_used_at < clock_timestamp() - interval '1 minute') THEN
        UPDATE dagq.api_token a SET last_used_at = clock_timestamp()
         WHERE a.token_id = (SELECT b.token_id FROM dagq.api_token b WHERE b.token_id = t.token_id
                                FOR UPDATE SKIP LOCKED);
    END IF;
    token_id := t.token_id;
    name := t.name;
    role := t.role;
    state := CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
                  WHEN t.expires_at <= clock_timestamp() THEN 'expired'
                  ELSE 'valid' END;
    RETURN NEXT;
END;
$$;

------------------------------------------------------------------------------
-- The audit: every write through dagq-web (and token changes), who, when,
-- what, from where, and how it ended.
------------------------------------------------------------------------------

CREATE TABLE dagq.audit_log (
    audit_id   bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    token_id   bigint,
    token_name text,
    role       name NOT NULL,
    source     text NOT NULL,       -- the client's address, or 'cli'
    method     text NOT NULL,
    path       text NOT NULL,
    body       jsonb,
    status     int NOT NULL,        -- the HTTP status answered
    detail     text
);
CREATE INDEX audit_log_at ON dagq.audit_log (audit_id DESC);
GRANT SELECT ON dagq.audit_log TO dagq_viewer;
COMMENT ON TABLE dagq.audit_log IS
    'Every write through dagq-web: the token and its role, when, from which address, the request '
    'and the status it got (refused and failed ones too).';

-- The token's name and role come from the token table, not the caller.
CREATE FUNCTION dagq.audit_write(p_token_id bigint, p_source text, p_method text, p_path text,
                                 p_body text, p_status int, p_detail text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    b jsonb;
BEGIN
    BEGIN
        b := left(p_body, 65536)::jsonb;
    EXCEPTION WHEN others THEN
        b := CASE WHEN p_body IS NULL OR p_body = '' THEN NULL
                  ELSE jsonb_build_object('unparsed', left(p_body, 1024)) END;
    END;
    INSERT INTO dagq.audit_log (token_id, token_name, role, source, method, path, body, status, detail)
    SELECT p_token_id, t.name, COALESCE(t.role, dagq.caller()), left(p_source, 200), left(p_method, 16),
           left(p_path, 2000), b, p_status, left(p_detail, 2000)
      FROM (SELECT 1) one LEFT JOIN dagq.api_token t ON t.token_id = p_token_id;
END;
$$;

GRANT EXECUTE ON FUNCTION dagq.token_authenticate(text),
    dagq.audit_write(bigint, text, text, text, text, int, text) TO dagq_web;
GRANT EXECUTE ON FUNCTION dagq.token_create(text, name, interval), dagq.token_revoke(text) TO dagq_admin;

------------------------------------------------------------------------------
-- Clear with a list of tasks, only failed ones, or as a dry run.
------------------------------------------------------------------------------

-- Like dagq.clear: sets finished task instances of run p_run_id back to
-- 'scheduled' (those of p_task_ids, all when NULL; with p_downstream
-- everything downstream of them in the run's frozen edges too; with
-- p_only_failed only the failed and upstream_failed among them). p_dry_run
-- changes nothing and returns what would be cleared. Returns the task
-- instances cleared, with the state they had. Locks and counters as
-- dagq.clear_unchecked (008): the run, then the targets and their direct
-- downstreams in ti_id order, before their states are read.
CREATE FUNCTION dagq.clear_tasks(p_run_id bigint, p_task_ids text[] DEFAULT NULL,
                                 p_downstream boolean DEFAULT false,
                                 p_only_failed boolean DEFAULT false,
                                 p_dry_run boolean DEFAULT false)
RETURNS TABLE (ti_id bigint, task_id text, state text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_dag text;
    missing text;
    targets bigint[];
    cleared bigint[];
BEGIN
    SELECT r.dag_id INTO v_dag FROM dagq.dag_run r WHERE r.run_id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.clear_tasks: unknown run %', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM dagq.require_operate(v_dag, 'dagq.clear_tasks');
    IF NOT p_dry_run THEN
        PERFORM 1 FROM dagq.dag_run r WHERE r.run_id = p_run_id FOR UPDATE;
    END IF;
    SELECT x INTO missing FROM unnest(p_task_ids) x
     WHERE NOT EXISTS (SELECT 1 FROM dagq.task_instance ti WHERE ti.run_id = p_run_id AND ti.task_id = x)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'dagq.clear_tasks: run % has no task "%"', p_run_id, missing
            USING ERRCODE = 'no_data_found';
    END IF;
    WITH RECURSIVE t(ti_id) AS (
        SELECT ti.ti_id FROM dagq.task_instance ti
         WHERE ti.run_id = p_run_id AND (p_task_ids IS NULL OR ti.task_id = ANY (p_task_ids))
        UNION
        SELECT e.ti_id FROM dagq.task_instance_dependency e JOIN t ON e.upstream_ti_id = t.ti_id
         WHERE p_downstream
    )
    SELECT array_agg(t.ti_id) INTO targets FROM t;
    IF NOT p_dry_run THEN
        PERFORM 1 FROM dagq.task_instance x
         WHERE x.ti_id = ANY (targets)
            OR x.ti_id IN (SELECT e.ti_id FROM dagq.task_instance_dependency e
                            WHERE e.upstream_ti_id = ANY (targets))
         ORDER BY x.ti_id
           FOR UPDATE;
    END IF;
    SELECT array_agg(x.ti_id) INTO cleared FROM dagq.task_instance x
     WHERE x.ti_id = ANY (targets)
       AND x.state IN ('success', 'failed', 'upstream_failed', 'skipped', 'up_for_retry')
       AND (NOT p_only_failed OR x.state IN ('failed', 'upstream_failed'));
    RETURN QUERY SELECT x.ti_id, x.task_id, x.state FROM dagq.task_instance x
                  WHERE x.ti_id = ANY (cleared) ORDER BY x.task_id;
    IF p_dry_run OR cleared IS NULL THEN
        RETURN;
    END IF;
    -- downstreams were told of these ends (unless still pending): take them back
    UPDATE dagq.task_instance d
       SET up_success = d.up_success - x.ok, up_failed = d.up_failed - x.bad,
           up_skipped = d.up_skipped - x.skip
      FROM (SELECT e.ti_id,
                   count(*) FILTER (WHERE u.state = 'success') AS ok,
                   count(*) FILTER (WHERE u.state IN ('failed', 'upstream_failed')) AS bad,
                   count(*) FILTER (WHERE u.state = 'skipped') AS skip
              FROM dagq.task_instance u
              JOIN dagq.task_instance_dependency e ON e.upstream_ti_id = u.ti_id
             WHERE u.ti_id = ANY (cleared) AND NOT u.end_pending
             GROUP BY e.ti_id) x
     WHERE d.ti_id = x.ti_id;
    UPDATE dagq.task_instance ti
       SET state = 'scheduled', max_tries = ti.try_number + ti.retries + 1,
           worker_id = NULL, incarnation = NULL, hostname = NULL, queued_at = NULL,
           pushed_at = NULL, started_at = NULL, ended_at = NULL, next_retry_at = NULL,
           exit_code = NULL, note = NULL, end_pending = false
     WHERE ti.ti_id = ANY (cleared);
    -- what the cleared ones wait for now: their upstreams as they stand
    UPDATE dagq.task_instance d
       SET up_success = x.ok, up_failed = x.bad, up_skipped = x.skip
      FROM (SELECT c.ti_id,
                   count(u.ti_id) FILTER (WHERE u.state = 'success' AND NOT u.end_pending) AS ok,
                   count(u.ti_id) FILTER (WHERE u.state IN ('failed', 'upstream_failed')
                                            AND NOT u.end_pending) AS bad,
                   count(u.ti_id) FILTER (WHERE u.state = 'skipped' AND NOT u.end_pending) AS skip
              FROM unnest(cleared) AS c(ti_id)
              LEFT JOIN dagq.task_instance_dependency e ON e.ti_id = c.ti_id
              LEFT JOIN dagq.task_instance u ON u.ti_id = e.upstream_ti_id
             GROUP BY c.ti_id) x
     WHERE d.ti_id = x.ti_id;
    UPDATE dagq.dag_run r SET state = 'running', ended_at = NULL, note = NULL
     WHERE r.run_id = p_run_id AND r.state IN ('success', 'failed');
    PERFORM pg_notify('dagq', p_run_id::text);
END;
$$;
GRANT EXECUTE ON FUNCTION dagq.clear_tasks(bigint, text[], boolean, boolean, boolean) TO dagq_operator;

------------------------------------------------------------------------------
-- Request bodies: checked here, so every client gets the same words.
------------------------------------------------------------------------------

-- p_body must be a JSON object with no keys but p_allowed (NULL or '' is {}).
CREATE FUNCTION dagq.api_body(p_body text, p_allowed text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    b jsonb;
    k text;
BEGIN
    IF p_body IS NULL OR btrim(p_body) = '' THEN
        RETURN '{}';
    END IF;
    BEGIN
        b := p_body::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'the request body is not valid JSON' USING ERRCODE = 'invalid_text_representation',
            DETAIL = SQLERRM;
    END;
    IF jsonb_typeof(b) <> 'object' THEN
        RAISE EXCEPTION 'the request body must be a JSON object, got a JSON %', jsonb_typeof(b)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT x INTO k FROM jsonb_object_keys(b) x WHERE NOT (x = ANY (p_allowed)) ORDER BY x LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown field "%" (allowed: %)', k, array_to_string(p_allowed, ', ')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN b;
END;
$$;

-- Field p_key of p_body as the JSON type p_type ('boolean', 'string',
-- 'object', 'array'), p_default when absent or null.
CREATE FUNCTION dagq.api_field(p_body jsonb, p_key text, p_type text, p_default jsonb DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb := p_body -> p_key;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN p_default;
    END IF;
    IF jsonb_typeof(v) <> p_type THEN
        RAISE EXCEPTION 'field "%" must be a JSON %, got a JSON %', p_key, p_type, jsonb_typeof(v)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v;
END;
$$;

-- An array of task ids (strings), or NULL.
CREATE FUNCTION dagq.api_task_ids(p_body jsonb, p_key text DEFAULT 'task_ids') RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb := dagq.api_field(p_body, p_key, 'array');
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(v) e WHERE jsonb_typeof(e) <> 'string') THEN
        RAISE EXCEPTION 'field "%" must be an array of task ids (strings)', p_key
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN ARRAY(SELECT jsonb_array_elements_text(v));
END;
$$;

-- A timestamp field, parsed; p_default when absent.
CREATE FUNCTION dagq.api_time(p_body jsonb, p_key text, p_default timestamptz DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v jsonb := dagq.api_field(p_body, p_key, 'string');
BEGIN
    IF v IS NULL THEN
        RETURN p_default;
    END IF;
    RETURN (v #>> '{}')::timestamptz;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
    RAISE EXCEPTION 'field "%" must be a date and time (ISO 8601), got "%"', p_key, v #>> '{}'
        USING ERRCODE = 'invalid_datetime_format';
END;
$$;

------------------------------------------------------------------------------
-- A running try's output so far, so that a log can be followed (tailed)
-- while its task runs: written by its worker with each heartbeat, when it
-- grew. Fenced on the try being this worker incarnation's and running (a
-- plain read: nothing waits for the task instance's row). finish_try
-- writes the final output over it.
------------------------------------------------------------------------------

CREATE FUNCTION dagq.log_progress(p_ti_id bigint, p_try int, p_worker text, p_incarnation uuid,
                                  p_output text, p_truncated bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp SET lock_timeout = '2s' AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dagq.task_instance t
                    WHERE t.ti_id = p_ti_id AND t.try_number = p_try AND t.state = 'running'
                      AND t.worker_id = p_worker AND t.incarnation = p_incarnation) THEN
        RETURN false;
    END IF;
    INSERT INTO dagq.task_log (ti_id, try_number, output, truncated_bytes)
    VALUES (p_ti_id, p_try, COALESCE(p_output, ''), COALESCE(p_truncated, 0))
    ON CONFLICT ON CONSTRAINT task_log_pkey DO UPDATE
        SET output = EXCLUDED.output, truncated_bytes = EXCLUDED.truncated_bytes,
            created_at = clock_timestamp();
    RETURN true;
END;
$$;
GRANT EXECUTE ON FUNCTION dagq.log_progress(bigint, int, text, uuid, text, bigint) TO dagq_worker;
