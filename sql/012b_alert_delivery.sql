-- dagq metastore, migration 012b: what alert deliveries say, and the
-- functions the delivering processes (dagq-scheduler's alert threads) call:
-- claim, result, release, detect; and dagq.alert_test for people.
--
-- Every message is built here (jsonb_build_object, format), never pasted
-- together in C: the event JSON of webhooks and commands, the Slack body,
-- the e-mail's headers and text.

------------------------------------------------------------------------------
-- What a message says.
------------------------------------------------------------------------------

-- A time as ISO 8601 in UTC (NULL stays NULL).
CREATE FUNCTION dagq.alert_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The last lines of a task's output, bounded: at most 20 lines of the last
-- 4000 characters. NULL when there is none.
CREATE FUNCTION dagq.alert_log_tail(p_output text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NULLIF((SELECT string_agg(u.l, E'\n' ORDER BY u.i)
                     FROM (SELECT s.l, s.i, count(*) OVER () AS n
                             FROM unnest(string_to_array(rtrim(right(p_output, 4000), E'\n'), E'\n'))
                                  WITH ORDINALITY AS s(l, i)) u
                    WHERE u.i > u.n - 20), '')
$$;

-- The event as receivers get it (field names are a contract: README "Alerts").
CREATE FUNCTION dagq.alert_payload(p_event_id bigint, p_base_url text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
               'event', e.event, 'event_id', e.event_id, 'time', dagq.alert_ts(e.created_at),
               'dag_id', e.dag_id, 'run_id', e.run_id, 'task_id', e.task_id,
               'try_number', e.try_number, 'state', e.state,
               'logical_date', dagq.alert_ts(r.logical_date),
               'data_interval_start', dagq.alert_ts(r.data_interval_start),
               'data_interval_end', dagq.alert_ts(r.data_interval_end),
               'note', e.note,
               'log_tail', (SELECT dagq.alert_log_tail(l.output) FROM dagq.task_log l
                             WHERE l.ti_id = e.ti_id AND l.try_number = e.try_number),
               'url', CASE WHEN NULLIF(p_base_url, '') IS NOT NULL AND e.run_id IS NOT NULL
                           THEN rtrim(p_base_url, '/') || '/runs/' || e.run_id END)
      FROM dagq.event e
      LEFT JOIN dagq.dag_run r ON r.run_id = e.run_id
     WHERE e.event_id = p_event_id
$$;

-- The message of a delivery: its event's payload; a batch's leader adds
-- count and events (each event of the batch, oldest first).
CREATE FUNCTION dagq.alert_message(p_delivery_id bigint, p_base_url text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH m AS (
        SELECT x.event_id, row_number() OVER (ORDER BY x.delivery_id) AS k, count(*) OVER () AS n
          FROM dagq.alert_delivery x
         WHERE x.delivery_id = p_delivery_id
            OR (x.batch_id = p_delivery_id AND x.delivery_id <> p_delivery_id)
    )
    SELECT CASE WHEN (SELECT max(n) FROM m) = 1 THEN p.j
                ELSE p.j || jsonb_build_object(
                         'count', (SELECT max(n) FROM m),
                         'events', (SELECT jsonb_agg(dagq.alert_payload(m.event_id, p_base_url)
                                                     - 'data_interval_start' - 'data_interval_end'
                                                     - 'logical_date' - 'url' ORDER BY m.k)
                                      FROM m)) END
      FROM (SELECT dagq.alert_payload(m.event_id, p_base_url) AS j FROM m WHERE m.k = 1) p
$$;

-- One line for people: Slack's text, the e-mail's subject, logs.
CREATE FUNCTION dagq.alert_summary(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT left(regexp_replace(
               concat_ws(' ', p->>'event' || ':', 'DAG ' || (p->>'dag_id'),
                         'run ' || (p->>'run_id'),
                         CASE WHEN p ? 'count' THEN (p->>'count') || ' tasks'
                              ELSE 'task ' || (p->>'task_id')
                                   || COALESCE(' (try ' || (p->>'try_number') || ')', '') END,
                         CASE WHEN NOT p ? 'count' AND p->>'note' IS NOT NULL
                              THEN '- ' || (p->>'note') END),
               '[[:cntrl:]]+', ' ', 'g'), 300)
$$;

-- The body of a message for people (e-mail), plain text.
CREATE FUNCTION dagq.alert_text(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT concat_ws(E'\n',
        'dagq: ' || (p->>'event'),
        '',
        'DAG:            ' || (p->>'dag_id'),
        'Run:            ' || (p->>'run_id'),
        'Task:           ' || (p->>'task_id') || COALESCE(' (try ' || (p->>'try_number') || ')', ''),
        'State:          ' || (p->>'state'),
        'Logical date:   ' || (p->>'logical_date'),
        'Data interval:  ' || (p->>'data_interval_start') || ' to ' || (p->>'data_interval_end'),
        'Note:           ' || (p->>'note'),
        'Time:           ' || (p->>'time'),
        'Event id:       ' || (p->>'event_id'),
        'Link:           ' || (p->>'url'),
        CASE WHEN p->>'log_tail' IS NOT NULL
             THEN E'\nLast lines of the task''s log:\n' || (p->>'log_tail') END,
        CASE WHEN p ? 'events' THEN
             E'\n' || (p->>'count') || ' events in this message:' || E'\n'
             || (SELECT string_agg(concat_ws(' ', '-', x->>'event', 'task ' || (x->>'task_id'),
                                             '(try ' || (x->>'try_number') || ')', x->>'state',
                                             '- ' || (x->>'note'), '[event ' || (x->>'event_id') || ']')
                                   || COALESCE(E'\n    ' || replace(x->>'log_tail', E'\n', E'\n    '), ''),
                                   E'\n' ORDER BY (x->>'event_id')::bigint)
                   FROM jsonb_array_elements(p->'events') x) END)
        || E'\n'
$$;

-- Slack's mrkdwn escapes &, < and >.
CREATE FUNCTION dagq.slack_escape(s text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT replace(replace(replace(s, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')
$$;

-- A Slack incoming-webhook body: text (the notification's line) and one
-- section block (at most 3000 characters, Slack's limit) with the details.
CREATE FUNCTION dagq.alert_slack(p jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'text', dagq.slack_escape(dagq.alert_summary(p)),
        'blocks', jsonb_build_array(jsonb_build_object(
            'type', 'section',
            'text', jsonb_build_object(
                'type', 'mrkdwn',
                'text', left(concat_ws(E'\n',
                    '*' || dagq.slack_escape(p->>'event') || '*  DAG `' || dagq.slack_escape(p->>'dag_id') || '`'
                        || COALESCE('  run ' || (p->>'run_id'), '')
                        || COALESCE('  task `' || dagq.slack_escape(p->>'task_id') || '`', '')
                        || COALESCE(' (try ' || (p->>'try_number') || ')', ''),
                    CASE WHEN p->>'note' IS NOT NULL THEN '>' || dagq.slack_escape(replace(p->>'note', E'\n', ' ')) END,
                    CASE WHEN p->>'url' IS NOT NULL THEN '<' || (p->>'url') || '|open the run>' END,
                    CASE WHEN p ? 'events' THEN
                         (SELECT string_agg('• ' || dagq.slack_escape(concat_ws(' ', x->>'event', x->>'task_id',
                                                                                '- ' || (x->>'note'))),
                                            E'\n' ORDER BY (x->>'event_id')::bigint)
                            FROM jsonb_array_elements(p->'events') x) END,
                    CASE WHEN p->>'log_tail' IS NOT NULL
                         THEN '```' || dagq.slack_escape(right(p->>'log_tail', 1500)) || '```' END,
                    'event ' || (p->>'event_id') || ' · ' || (p->>'time')), 3000)))))
$$;

-- A header value of an e-mail: control characters out, RFC 2047 encoded
-- when it is not plain ASCII.
CREATE FUNCTION dagq.mail_header_value(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v ~ '^[ -~]*$' THEN v
                ELSE '=?UTF-8?B?' || replace(encode(convert_to(v, 'UTF8'), 'base64'), E'\n', '') || '?=' END
      FROM (SELECT left(regexp_replace(s, '[[:cntrl:]]+', ' ', 'g'), 250) AS v) x
$$;

-- The e-mail of a delivery, headers and body, CRLF line ends, without the
-- From: header (the delivering process's --smtp-from goes first).
CREATE FUNCTION dagq.alert_email(p jsonb, p_to text, p_delivery_id bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT 'To: ' || array_to_string(ARRAY(SELECT btrim(a) FROM unnest(string_to_array(p_to, ',')) a), ', ') || E'\r\n'
        || 'Subject: ' || dagq.mail_header_value('[dagq] ' || dagq.alert_summary(p)) || E'\r\n'
        || 'Date: ' || to_char(clock_timestamp() AT TIME ZONE 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS "+0000"') || E'\r\n'
        || 'Message-ID: <dagq.' || (p->>'event_id') || '.' || p_delivery_id || '@dagq.invalid>' || E'\r\n'
        || 'X-Dagq-Event: ' || (p->>'event') || E'\r\n'
        || 'X-Dagq-Event-Id: ' || (p->>'event_id') || E'\r\n'
        || E'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        || replace(encode(convert_to(dagq.alert_text(p), 'UTF8'), 'base64'), E'\n', E'\r\n') || E'\r\n'
$$;

-- The environment of a command channel's process (besides PATH, HOME, LANG).
CREATE FUNCTION dagq.alert_env(p jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['DAGQ_EVENT=' || COALESCE(p->>'event', ''),
                 'DAGQ_EVENT_ID=' || COALESCE(p->>'event_id', ''),
                 'DAGQ_EVENT_TIME=' || COALESCE(p->>'time', ''),
                 'DAGQ_DAG_ID=' || COALESCE(p->>'dag_id', ''),
                 'DAGQ_RUN_ID=' || COALESCE(p->>'run_id', ''),
                 'DAGQ_TASK_ID=' || COALESCE(p->>'task_id', ''),
                 'DAGQ_TRY_NUMBER=' || COALESCE(p->>'try_number', ''),
                 'DAGQ_STATE=' || COALESCE(p->>'state', ''),
                 'DAGQ_LOGICAL_DATE=' || COALESCE(p->>'logical_date', ''),
                 'DAGQ_NOTE=' || COALESCE(p->>'note', ''),
                 'DAGQ_URL=' || COALESCE(p->>'url', ''),
                 'DAGQ_EVENT_COUNT=' || COALESCE(p->>'count', '1'),
                 'DAGQ_EVENT_JSON=' || p::text]
$$;

------------------------------------------------------------------------------
-- For the delivering processes.
------------------------------------------------------------------------------

-- Backoff after the n-th failure: 1 s doubling to 5 minutes.
CREATE FUNCTION dagq.alert_backoff(n int) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT make_interval(secs => least(power(2, least(greatest(n, 1), 20) - 1), 300))
$$;

-- Claims the oldest delivery that may go now, for p_who: locked with SKIP
-- LOCKED (another process claiming at the same moment takes the next one),
-- then leased for the channel's timeout plus 5 s, and returned with its
-- message. A delivery may go when it is due (a batch: its window has passed
-- or its run has ended), its channel is not waiting out a backoff (a test
-- never waits), no earlier delivery of its run to its channel is pending,
-- and no live lease holds it. A batch's leader takes the pending deliveries
-- of its batch (same channel, run and event) at its first claim; they go,
-- and end, with it. No row: nothing to do.
CREATE FUNCTION dagq.alert_claim(p_who text, p_base_url text DEFAULT NULL)
RETURNS TABLE (delivery_id bigint, lease uuid, attempt int, channel text, kind text,
               target text, headers_from text, timeout_ms int, event_id bigint, event text,
               n_events int, summary text, body text, env text[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
#variable_conflict use_column
DECLARE
    d dagq.alert_delivery;
    c dagq.alert_channel;
    msg jsonb;
    n int;
BEGIN
    SELECT x.* INTO d FROM dagq.alert_delivery x
      LEFT JOIN dagq.alert_channel_state s ON s.channel = x.channel
     WHERE x.state = 'pending' AND x.next_attempt_at <= clock_timestamp()
       AND (x.lease_until IS NULL OR x.lease_until < clock_timestamp())
       AND (x.batch_id IS NULL OR x.batch_id = x.delivery_id)
       AND (s.retry_at IS NULL OR s.retry_at <= clock_timestamp() OR x.event = 'test')
       AND (x.due_at <= clock_timestamp()
            OR EXISTS (SELECT 1 FROM dagq.dag_run r
                        WHERE r.run_id = x.run_id AND r.state IN ('success', 'failed')))
       AND (x.run_id IS NULL
            OR NOT EXISTS (SELECT 1 FROM dagq.alert_delivery p
                            WHERE p.channel = x.channel AND p.run_id = x.run_id
                              AND p.state = 'pending' AND p.delivery_id < x.delivery_id))
     ORDER BY x.delivery_id
     LIMIT 1
       FOR UPDATE OF x SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO c FROM dagq.alert_channel ch WHERE ch.channel = d.channel;
    UPDATE dagq.alert_delivery x
       SET lease = gen_random_uuid(), lease_until = clock_timestamp() + c.timeout + interval '5 seconds',
           leased_by = p_who, attempts = x.attempts + 1, last_attempt_at = clock_timestamp(),
           batch_id = CASE WHEN x.batch_window IS NOT NULL THEN x.delivery_id END
     WHERE x.delivery_id = d.delivery_id;
    IF d.batch_window IS NOT NULL AND d.batch_id IS NULL THEN
        UPDATE dagq.alert_delivery m SET batch_id = d.delivery_id
         WHERE m.delivery_id IN (SELECT y.delivery_id FROM dagq.alert_delivery y
                                  WHERE y.channel = d.channel AND y.run_id = d.run_id
                                    AND y.event = d.event AND y.state = 'pending'
                                    AND y.batch_id IS NULL AND y.batch_window IS NOT NULL
                                    AND y.delivery_id > d.delivery_id
                                  ORDER BY y.delivery_id LIMIT 499
                                    FOR UPDATE SKIP LOCKED);
    END IF;
    msg := dagq.alert_message(d.delivery_id, p_base_url);
    n := COALESCE((msg->>'count')::int, 1);
    RETURN QUERY
    SELECT x.delivery_id, x.lease, x.attempts, c.channel, c.kind, c.target, c.headers_from,
           (extract(epoch FROM c.timeout) * 1000)::int, x.event_id, x.event, n,
           dagq.alert_summary(msg),
           CASE c.kind WHEN 'slack' THEN dagq.alert_slack(msg)::text
                       WHEN 'email' THEN dagq.alert_email(msg, c.target, x.delivery_id)
                       ELSE msg::text END,
           CASE WHEN c.kind = 'command' THEN dagq.alert_env(msg) END
      FROM dagq.alert_delivery x WHERE x.delivery_id = d.delivery_id;
END;
$$;

-- The outcome of a claimed delivery, fenced on its lease (NULL: the lease
-- had expired and another process took it over; nothing is written).
-- Delivered: the delivery and its batch end. Failed: the channel backs off;
-- the delivery is tried again after its own backoff, or is undeliverable
-- once the channel's retry_for has passed since it was written (a test at
-- once). Returns delivered, retry or undeliverable.
CREATE FUNCTION dagq.alert_result(p_delivery_id bigint, p_lease uuid, p_ok boolean,
                                  p_response text, p_error text, p_who text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    d dagq.alert_delivery;
    v_retry_for interval;
    v text;
    fails int;
BEGIN
    SELECT * INTO d FROM dagq.alert_delivery x WHERE x.delivery_id = p_delivery_id FOR UPDATE;
    IF NOT FOUND OR d.lease IS DISTINCT FROM p_lease OR d.state <> 'pending' THEN
        RETURN NULL;
    END IF;
    IF p_ok THEN
        UPDATE dagq.alert_delivery x
           SET state = 'delivered', delivered_at = clock_timestamp(), delivered_by = p_who,
               response = left(p_response, 1000), last_error = NULL, lease = NULL, lease_until = NULL
         WHERE x.delivery_id = p_delivery_id OR x.batch_id = p_delivery_id;
        IF d.event <> 'test' THEN
            UPDATE dagq.alert_channel_state s
               SET failures = 0, failing_since = NULL, retry_at = NULL, last_error = NULL
             WHERE s.channel = d.channel AND s.failures > 0;
        END IF;
        RETURN 'delivered';
    END IF;
    SELECT c.retry_for INTO v_retry_for FROM dagq.alert_channel c WHERE c.channel = d.channel;
    IF d.event <> 'test' THEN
        INSERT INTO dagq.alert_channel_state AS s (channel, failures, failing_since, retry_at, last_error)
        VALUES (d.channel, 1, clock_timestamp(), clock_timestamp() + dagq.alert_backoff(1), left(p_error, 1000))
        ON CONFLICT (channel) DO UPDATE
            SET failures = s.failures + 1, failing_since = COALESCE(s.failing_since, clock_timestamp()),
                retry_at = clock_timestamp() + dagq.alert_backoff(s.failures + 1),
                last_error = EXCLUDED.last_error
        RETURNING s.failures INTO fails;
    END IF;
    v := CASE WHEN d.event = 'test' OR clock_timestamp() >= d.created_at + v_retry_for
              THEN 'undeliverable' ELSE 'retry' END;
    UPDATE dagq.alert_delivery x
       SET state = CASE v WHEN 'retry' THEN 'pending' ELSE 'undeliverable' END,
           next_attempt_at = clock_timestamp() + dagq.alert_backoff(greatest(d.attempts, COALESCE(fails, 0))),
           last_error = left(p_error, 1000), response = left(p_response, 1000),
           lease = NULL, lease_until = NULL
     WHERE x.delivery_id = p_delivery_id OR x.batch_id = p_delivery_id;
    RETURN v;
END;
$$;

-- A claimed delivery handed back unsent (its process is stopping): free at
-- once, the attempt not counted.
CREATE FUNCTION dagq.alert_release(p_delivery_id bigint, p_lease uuid) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
    UPDATE dagq.alert_delivery
       SET lease = NULL, lease_until = NULL, attempts = greatest(attempts - 1, 0)
     WHERE delivery_id = p_delivery_id AND lease = p_lease AND state = 'pending'
$$;

-- The time-based events, each fired once by a conditional UPDATE in the
-- transaction that writes it (several detectors may call this at once; one
-- at a time gets past the advisory lock, the others return nothing):
--   run_late         a run whose frozen deadline (sla_deadline) has passed
--                    and that had not finished by then, finished or not now
--   workers_missing  per worker group and DAG with queued tries in it: the
--                    group has had no live worker (see
--                    dagq.groups_without_workers) for p_missing_after_s
-- Returns the events written, and the deliveries pending.
CREATE FUNCTION dagq.alert_detect(p_missing_after_s double precision)
RETURNS TABLE (what text, n bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r record;
    late int := 0;
    missing int := 0;
BEGIN
    IF pg_try_advisory_xact_lock(7234031785934612) THEN
        FOR r IN SELECT x.run_id, x.dag_id, x.state, x.ended_at, x.sla_deadline
                   FROM dagq.dag_run x
                  WHERE x.sla_pending AND x.sla_deadline <= clock_timestamp()
                  ORDER BY x.sla_deadline LIMIT 1000
                    FOR UPDATE OF x SKIP LOCKED LOOP
            UPDATE dagq.dag_run x
               SET sla_pending = false,
                   late_at = CASE WHEN r.ended_at IS NULL OR r.ended_at > r.sla_deadline
                                  THEN clock_timestamp() END
             WHERE x.run_id = r.run_id AND x.sla_pending;
            CONTINUE WHEN r.ended_at IS NOT NULL AND r.ended_at <= r.sla_deadline;
            PERFORM dagq.emit('run_late', r.dag_id, r.run_id, p_state => r.state,
                              p_note => format('not finished by its deadline %s',
                                               dagq.alert_ts(r.sla_deadline)));
            late := late + 1;
        END LOOP;

        -- outages that ended are forgotten; new ones are noted; old ones fire
        DELETE FROM dagq.workers_missing_state s
         WHERE NOT EXISTS (SELECT 1 FROM dagq.groups_without_workers() g
                             JOIN dagq.task_instance t ON t.worker_group = g.worker_group
                                                      AND t.state = 'queued'
                            WHERE g.worker_group = s.worker_group AND t.dag_id = s.dag_id);
        INSERT INTO dagq.workers_missing_state (worker_group, dag_id)
        SELECT DISTINCT g.worker_group, t.dag_id
          FROM dagq.groups_without_workers() g
          JOIN dagq.task_instance t ON t.worker_group = g.worker_group AND t.state = 'queued'
        ON CONFLICT DO NOTHING;
        FOR r IN UPDATE dagq.workers_missing_state s SET fired_at = clock_timestamp()
                  WHERE s.fired_at IS NULL
                    AND s.since <= clock_timestamp() - make_interval(secs => p_missing_after_s)
                 RETURNING s.worker_group, s.dag_id, s.since LOOP
            PERFORM dagq.emit('workers_missing', r.dag_id, p_state => 'queued',
                              p_note => format('worker group "%s" has %s queued tries of this DAG and no live worker for %ss',
                                               r.worker_group,
                                               (SELECT count(*) FROM dagq.task_instance t
                                                 WHERE t.worker_group = r.worker_group
                                                   AND t.dag_id = r.dag_id AND t.state = 'queued'),
                                               round(extract(epoch FROM clock_timestamp() - r.since))));
            missing := missing + 1;
        END LOOP;
    END IF;
    RETURN QUERY VALUES ('run_late', late::bigint), ('workers_missing', missing::bigint),
        ('pending', (SELECT count(*) FROM dagq.alert_delivery x WHERE x.state = 'pending'));
END;
$$;

GRANT EXECUTE ON FUNCTION dagq.alert_claim(text, text),
    dagq.alert_result(bigint, uuid, boolean, text, text, text), dagq.alert_release(bigint, uuid),
    dagq.alert_detect(double precision) TO dagq_scheduler;

------------------------------------------------------------------------------
-- For people.
------------------------------------------------------------------------------

-- Writes a test event for one channel (whatever its rules and its backoff)
-- and returns the delivery's id; a delivering process sends it at once and
-- records the receiver's answer (dagq alert test waits for it). Operators,
-- on channels they may act on.
CREATE FUNCTION dagq.alert_test(p_channel text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, dagq, pg_temp AS $$
DECLARE
    me name := dagq.caller();
    v_owner name;
    eid bigint;
    did bigint;
BEGIN
    IF NOT pg_has_role(me, 'dagq_operator', 'MEMBER') THEN
        RAISE EXCEPTION 'dagq.alert_test: role % may not test channels (it is not a member of dagq_operator)', me
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT c.owner INTO v_owner FROM dagq.alert_channel c WHERE c.channel = p_channel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dagq.alert_test: unknown channel "%"', p_channel USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT dagq.owned_by(v_owner, me) THEN
        RAISE EXCEPTION 'dagq.alert_test: role % may not act on channel "%", owned by %', me, p_channel, v_owner
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    eid := dagq.emit('test', 'dagq_alert_test', p_state => 'test',
                     p_note => format('a test alert for channel "%s", sent by %s (dagq alert test)', p_channel, me));
    INSERT INTO dagq.alert_delivery (event_id, channel, event, due_at, next_attempt_at)
    VALUES (eid, p_channel, 'test', clock_timestamp(), clock_timestamp())
    RETURNING delivery_id INTO did;
    RETURN did;
END;
$$;
GRANT EXECUTE ON FUNCTION dagq.alert_test(text) TO dagq_operator;

-- What the views and policies call runs with the caller's rights.
GRANT EXECUTE ON FUNCTION dagq.glob_match(text, text), dagq.alert_events(),
    dagq.alert_ts(timestamptz), dagq.alert_payload(bigint, text), dagq.alert_log_tail(text)
    TO dagq_viewer;
