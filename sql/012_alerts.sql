-- dagq metastore, migration 012: alerts (issue #12).
--
-- Alerts come from the outbox (007: dagq.event, written in the same
-- transaction as the state change it reports), never from the process that
-- ran a task, so a task SIGKILLed with its worker still alerts (its zombie
-- verdict writes the events).
--
--   dagq.alert_channel   where messages go: webhook, slack, email, command
--   dagq.alert_rule      which events of which DAGs go to which channel
--   dagq.alert_delivery  one row per (event, channel), written by a trigger
--                        on dagq.event in the event's own transaction; the
--                        delivering processes (every dagq-scheduler) claim
--                        them with SKIP LOCKED and a lease, send, and record
--                        the outcome here
--
-- Guarantees. An event is routed in the transaction that writes it, so a
-- crash at any moment neither loses nor invents a delivery. A delivery is
-- held by one process at a time (a row lock to claim it, then a lease that
-- outlives the send's timeout), so a healthy receiver sees each event once;
-- a process killed mid-send leaves a lease that expires, and the event is
-- sent again with the same event_id (at-least-once; receivers deduplicate by
-- it). Deliveries of one run to one channel go out in order: none is tried
-- while an earlier one is pending. A failing channel is retried with backoff
-- (1 s doubling to 5 min) until the channel's retry_for has passed since the
-- event, then the delivery is undeliverable.
--
-- Time-based events are detected here too: run_late (dagq.dag.sla after the
-- end of a run's data interval) and workers_missing, each by a conditional
-- UPDATE that fires once (dagq.alert_detect).
--
-- Secrets are never stored: a Slack URL, a bearer token or a header set is
-- named by reference (env:DAGQ_ALERT_NAME, file:NAME), resolved by the
-- delivering process; SMTP credentials are that process's options.

------------------------------------------------------------------------------
-- Deadlines.
------------------------------------------------------------------------------

ALTER TABLE dagq.dag ADD COLUMN IF NOT EXISTS sla interval;
COMMENT ON COLUMN dagq.dag.sla IS
    'Deadline of each run, counted from the end of its data interval (manual runs: from their '
    'creation); a run not finished by then gives one run_late event. NULL: none.';

CREATE FUNCTION dagq.sla_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sla IS NOT NULL AND (NEW.sla <= interval '0' OR NEW.sla > interval '365 days') THEN
        RAISE EXCEPTION 'dagq.dag "%": sla must be above 0 and at most 365 days, got %', NEW.dag_id, NEW.sla
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER dag_sla_validate BEFORE INSERT OR UPDATE OF sla ON dagq.dag
    FOR EACH ROW EXECUTE FUNCTION dagq.sla_validate();
GRANT UPDATE (sla) ON dagq.dag TO dagq_author;

-- A run's deadline is frozen when it is created, as the rest of its
-- definition is when it starts: editing the DAG's sla changes the next runs.
ALTER TABLE dagq.dag_run
    ADD COLUMN sla_deadline timestamptz,
    ADD COLUMN sla_pending  boolean NOT NULL DEFAULT false,
    ADD COLUMN late_at      timestamptz;
CREATE INDEX dag_run_sla_pending ON dagq.dag_run (sla_deadline) WHERE sla_pending;

CREATE FUNCTION dagq.run_sla() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    v_sla interval;
BEGIN
    SELECT d.sla INTO v_sla FROM dagq.dag d WHERE d.dag_id = NEW.dag_id;
    IF v_sla IS NOT NULL THEN
        NEW.sla_deadline := CASE WHEN NEW.run_type = 'manual'
                                 THEN COALESCE(NEW.created_at, clock_timestamp())
                                 ELSE NEW.data_interval_end END + v_sla;
        NEW.sla_pending := true;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER dag_run_sla BEFORE INSERT ON dagq.dag_run
    FOR EACH ROW EXECUTE FUNCTION dagq.run_sla();

------------------------------------------------------------------------------
-- Channels and rules: what users write.
------------------------------------------------------------------------------

CREATE TABLE dagq.alert_channel (
    channel      text PRIMARY KEY,
    kind         text NOT NULL,
    target       text NOT NULL,
    headers_from text,
    enabled      boolean NOT NULL DEFAULT true,
    timeout      interval NOT NULL DEFAULT '10 seconds',
    retry_for    interval NOT NULL DEFAULT '6 hours',
    description  text,
    owner        name DEFAULT current_user,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE dagq.alert_channel IS
    'Where alerts go. kind webhook: HTTP POST of the event JSON to target (an http(s) URL, or '
    'env:DAGQ_ALERT_NAME / file:NAME naming it); slack: a Slack incoming-webhook body to target '
    '(env: or file: only: the URL is a secret); email: SMTP to target (addresses, comma-separated) '
    'through the delivering process''s --smtp-url; command: target run by /bin/sh on the '
    'delivering host with the event in its environment and on stdin (dagq_admin only). '
    'headers_from: env:DAGQ_ALERT_NAME or file:NAME holding "Name: value" header lines.';

CREATE TABLE dagq.alert_rule (
    rule_id      bigserial PRIMARY KEY,
    channel      text NOT NULL REFERENCES dagq.alert_channel (channel)
                     ON UPDATE CASCADE ON DELETE CASCADE,
    dag_pattern  text NOT NULL DEFAULT '*',
    events       text[] NOT NULL,
    batch_window interval,
    owner        name DEFAULT current_user,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX alert_rule_by_channel ON dagq.alert_rule (channel);
COMMENT ON TABLE dagq.alert_rule IS
    'Which events of which DAGs (dag_pattern: a DAG id or a glob, * and ?) go to a channel. '
    'batch_window: task_failed, task_retry and zombie events of one run are sent as one message '
    'once the window after the first has passed or the run has ended (NULL: one message each).';

-- The events there are (run_timed_out is written by the run timeout of 011).
CREATE FUNCTION dagq.alert_events() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['task_failed', 'task_retry', 'run_failed', 'run_succeeded', 'run_recovered',
                 'run_late', 'run_timed_out', 'zombie', 'dag_parked', 'workers_missing']
$$;

-- Does DAG id p_name match p_pattern (* any run of characters, ? one)?
CREATE FUNCTION dagq.glob_match(p_name text, p_pattern text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_name LIKE replace(replace(replace(replace(replace(p_pattern, '\', '\\'), '%', '\%'),
                                                   '_', '\_'), '*', '%'), '?', '_')
$$;

-- A reference to a secret the delivering process resolves.
CREATE FUNCTION dagq.alert_secret_ref_ok(p text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p ~ '^env:DAGQ_ALERT_[A-Za-z0-9_]{1,200}$' OR p ~ '^file:[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}$'
$$;

CREATE FUNCTION dagq.alert_channel_validate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    what text := format('dagq.alert_channel "%s"', NEW.channel);
    a text;
BEGIN
    IF NOT dagq.name_ok(NEW.channel) THEN
        RAISE EXCEPTION 'dagq.alert_channel: channel name "%" must be 1-250 of [A-Za-z0-9_.-]', NEW.channel
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.kind IS NULL OR NEW.kind NOT IN ('webhook', 'slack', 'email', 'command') THEN
        RAISE EXCEPTION '%: unknown kind "%" (webhook, slack, email, command)', what, NEW.kind
            USING ERRCODE = 'check_violation';
    END IF;
    IF length(NEW.target) NOT BETWEEN 1 AND 65536 THEN
        RAISE EXCEPTION '%: target must be 1 to 65536 characters', what USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.kind = 'webhook' AND NOT dagq.alert_secret_ref_ok(NEW.target) THEN
        IF NEW.target !~ '^https?://[^[:space:]]+$' THEN
            RAISE EXCEPTION '%: a webhook target is an http:// or https:// URL, or env:DAGQ_ALERT_NAME or file:NAME', what
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.target ~ '^https?://[^/?#]*@'
           OR NEW.target ~* '[?&][^=&#]*(pass|pwd|token|secret|key|credential|auth|sig)[^=&#]*=' THEN
            RAISE EXCEPTION '%: the target URL holds a secret (a password, a token or a key); secrets are not stored in the metastore', what
                USING ERRCODE = 'check_violation',
                      HINT = 'give it as target = ''env:DAGQ_ALERT_NAME'' or ''file:NAME'' (resolved by the delivering process), '
                             'or send the token as a header with headers_from';
        END IF;
    END IF;
    IF NEW.kind = 'slack' AND NOT dagq.alert_secret_ref_ok(NEW.target) THEN
        RAISE EXCEPTION '%: a Slack incoming-webhook URL is a secret: give it as env:DAGQ_ALERT_NAME or file:NAME', what
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.kind = 'email' THEN
        FOREACH a IN ARRAY string_to_array(NEW.target, ',') LOOP
            IF btrim(a) !~ '^[^[:space:][:cntrl:]<>,;"()]+@[^[:space:][:cntrl:]<>,;"()@]+$' THEN
                RAISE EXCEPTION '%: "%" is not an e-mail address (target: addresses separated by commas)', what, btrim(a)
                    USING ERRCODE = 'check_violation';
            END IF;
        END LOOP;
    END IF;
    -- a command runs on the delivering processes' hosts: only admins say what
    IF (NEW.kind = 'command' OR (TG_OP = 'UPDATE' AND OLD.kind = 'command'))
       AND NOT pg_has_role(dagq.caller(), 'dagq_admin', 'MEMBER') THEN
        RAISE EXCEPTION '%: only members of dagq_admin may write command channels (role % is not one)', what, dagq.caller()
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.headers_from IS NOT NULL
       AND (NEW.kind NOT IN ('webhook', 'slack') OR NOT dagq.alert_secret_ref_ok(NEW.headers_from)) THEN
        RAISE EXCEPTION '%: headers_from is env:DAGQ_ALERT_NAME or file:NAME, for webhook and slack channels', what
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.timeout < interval '100 milliseconds' OR NEW.timeout > interval '5 minutes' THEN
        RAISE EXCEPTION '%: timeout must be 100 ms to 5 minutes, got %', what, NEW.timeout USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.retry_for < interval '0' OR NEW.retry_for > interval '7 days' THEN
        RAISE EXCEPTION '%: retry_for must be 0 to 7 days, got %', what, NEW.retry_for USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER alert_channel_validate BEFORE INSERT OR UPDATE ON dagq.alert_channel
    FOR EACH ROW EXECUTE FUNCTION dagq.alert_channel_validate();

CREATE FUNCTION dagq.alert_rule_validate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    v_owner name;
    bad text;
BEGIN
    IF NEW.dag_pattern IS NULL OR NEW.dag_pattern !~ '^[A-Za-z0-9_.*?-]{1,250}$' THEN
        RAISE EXCEPTION 'dagq.alert_rule: dag_pattern "%" must be a DAG id or a glob of [A-Za-z0-9_.-] with * and ?', NEW.dag_pattern
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.events IS NULL OR cardinality(NEW.events) = 0 THEN
        RAISE EXCEPTION 'dagq.alert_rule: events must name at least one of %', array_to_string(dagq.alert_events(), ', ')
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT e INTO bad FROM unnest(NEW.events) e WHERE e IS NULL OR NOT e = ANY (dagq.alert_events()) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'dagq.alert_rule: unknown event "%" (known: %)', bad, array_to_string(dagq.alert_events(), ', ')
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.batch_window IS NOT NULL
       AND (NEW.batch_window < interval '1 second' OR NEW.batch_window > interval '1 day') THEN
        RAISE EXCEPTION 'dagq.alert_rule: batch_window must be 1 second to 1 day, got %', NEW.batch_window
            USING ERRCODE = 'check_violation';
    END IF;
    -- a rule sends to a channel its writer may act on
    SELECT c.owner INTO v_owner FROM dagq.alert_channel c WHERE c.channel = NEW.channel;
    IF FOUND AND NOT dagq.owned_by(v_owner, dagq.caller()) THEN
        RAISE EXCEPTION 'dagq.alert_rule: role % may not send to channel "%", owned by %', dagq.caller(), NEW.channel, v_owner
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER alert_rule_validate BEFORE INSERT OR UPDATE ON dagq.alert_rule
    FOR EACH ROW EXECUTE FUNCTION dagq.alert_rule_validate();

ALTER TABLE dagq.alert_channel ENABLE ROW LEVEL SECURITY;
ALTER TABLE dagq.alert_rule ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON dagq.alert_channel FOR SELECT USING (true);
CREATE POLICY own ON dagq.alert_channel FOR ALL TO dagq_author
    USING (dagq.owned_by(owner, dagq.caller())) WITH CHECK (dagq.owned_by(owner, dagq.caller()));
CREATE POLICY read ON dagq.alert_rule FOR SELECT USING (true);
CREATE POLICY own ON dagq.alert_rule FOR ALL TO dagq_author
    USING (dagq.owned_by(owner, dagq.caller())) WITH CHECK (dagq.owned_by(owner, dagq.caller()));

------------------------------------------------------------------------------
-- Deliveries: what the delivering processes write.
------------------------------------------------------------------------------

CREATE TABLE dagq.alert_delivery (
    delivery_id     bigserial PRIMARY KEY,
    event_id        bigint NOT NULL REFERENCES dagq.event (event_id) ON DELETE CASCADE,
    channel         text NOT NULL REFERENCES dagq.alert_channel (channel)
                        ON UPDATE CASCADE ON DELETE CASCADE,
    event           text NOT NULL,  -- the event's, for batches
    run_id          bigint,         -- the event's, for the order per run
    batch_window    interval,       -- NULL: sent alone
    batch_id        bigint,         -- the delivery_id of the batch it went out in
    state           text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'delivered', 'undeliverable')),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    due_at          timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    lease           uuid,
    lease_until     timestamptz,
    leased_by       text,
    last_attempt_at timestamptz,
    last_error      text,
    response        text,
    delivered_at    timestamptz,
    delivered_by    text,
    UNIQUE (event_id, channel)
);
CREATE INDEX alert_delivery_due ON dagq.alert_delivery (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_delivery_run ON dagq.alert_delivery (channel, run_id, delivery_id)
    WHERE state = 'pending';
CREATE INDEX alert_delivery_batch ON dagq.alert_delivery (batch_id) WHERE batch_id IS NOT NULL;
COMMENT ON TABLE dagq.alert_delivery IS
    'One row per event and channel: pending (attempts, next_attempt_at, the lease of the process '
    'sending it), delivered (delivered_at, delivered_by, the receiver''s response) or '
    'undeliverable (retried for the channel''s retry_for; last_error says why).';

-- A channel that fails waits as a whole: one attempt per backoff step, not
-- one per pending delivery.
CREATE TABLE dagq.alert_channel_state (
    channel       text PRIMARY KEY REFERENCES dagq.alert_channel (channel)
                      ON UPDATE CASCADE ON DELETE CASCADE,
    failures      int NOT NULL DEFAULT 0,
    failing_since timestamptz,
    retry_at      timestamptz,
    last_error    text
);

-- Outages of a worker group as the detector saw them, per DAG with queued
-- tries in it: one workers_missing event each.
CREATE TABLE dagq.workers_missing_state (
    worker_group text NOT NULL,
    dag_id       text NOT NULL,
    since        timestamptz NOT NULL DEFAULT clock_timestamp(),
    fired_at     timestamptz,
    PRIMARY KEY (worker_group, dag_id)
);

GRANT SELECT ON dagq.alert_channel, dagq.alert_rule, dagq.alert_delivery, dagq.alert_channel_state,
    dagq.workers_missing_state TO dagq_viewer;
GRANT INSERT, DELETE ON dagq.alert_channel, dagq.alert_rule TO dagq_author;
GRANT UPDATE (channel, kind, target, headers_from, enabled, timeout, retry_for, description, owner)
    ON dagq.alert_channel TO dagq_author;
GRANT UPDATE (channel, dag_pattern, events, batch_window, owner) ON dagq.alert_rule TO dagq_author;
GRANT USAGE ON SEQUENCE dagq.alert_rule_rule_id_seq TO dagq_author;

-- Routing, in the event's own transaction: one delivery per channel whose
-- enabled rules match. Rules of one channel that all batch give a batched
-- delivery (the longest window); one that does not batch wins.
CREATE FUNCTION dagq.alert_route() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
BEGIN
    IF NEW.event = 'test' THEN
        RETURN NULL;
    END IF;
    INSERT INTO dagq.alert_delivery (event_id, channel, event, run_id, batch_window, due_at,
                                     next_attempt_at)
    SELECT NEW.event_id, m.channel, NEW.event, NEW.run_id, m.w,
           clock_timestamp() + COALESCE(m.w, interval '0'), clock_timestamp()
      FROM (SELECT r.channel,
                   CASE WHEN NEW.event IN ('task_failed', 'task_retry', 'zombie')
                             AND NEW.run_id IS NOT NULL AND bool_and(r.batch_window IS NOT NULL)
                        THEN max(r.batch_window) END AS w
              FROM dagq.alert_rule r
              JOIN dagq.alert_channel c ON c.channel = r.channel AND c.enabled
             WHERE NEW.event = ANY (r.events) AND dagq.glob_match(NEW.dag_id, r.dag_pattern)
             GROUP BY r.channel) m
    ON CONFLICT (event_id, channel) DO NOTHING;
    RETURN NULL;
END;
$$;
CREATE TRIGGER event_alert_route AFTER INSERT ON dagq.event
    FOR EACH ROW EXECUTE FUNCTION dagq.alert_route();
