-- dagq metastore, migration 007: the event outbox (DESIGN.md "Events leave
-- through an outbox").
--
-- Every state change someone may want to hear about writes one row here in
-- the same transaction as the change itself, so an event is neither lost
-- nor invented by a process killed at any moment: a task out of retries, a
-- retry, a zombie, a run's end, a parked DAG, and (later migrations) a missed
-- deadline or a run timeout. Alert delivery reads this table; nothing
-- outside the metastore decides that something happened. event_id is the
-- stable id a receiver deduplicates by.

CREATE TABLE dagq.event (
    event_id   bigserial PRIMARY KEY,
    event      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    dag_id     text NOT NULL,
    run_id     bigint,
    task_id    text,
    ti_id      bigint,
    try_number int,
    state      text,
    note       text
);
CREATE INDEX event_by_dag ON dagq.event (dag_id, event_id);
CREATE INDEX event_by_run ON dagq.event (run_id) WHERE run_id IS NOT NULL;

COMMENT ON TABLE dagq.event IS
    'The outbox: one row per state change worth hearing about (task_failed, task_retry, zombie, '
    'run_failed, run_succeeded, run_recovered, dag_parked, ...), written in the same transaction '
    'as the change. event_id is stable: alert receivers deduplicate by it.';

CREATE FUNCTION dagq.emit(p_event text, p_dag text, p_run bigint DEFAULT NULL,
                          p_task text DEFAULT NULL, p_ti bigint DEFAULT NULL,
                          p_try int DEFAULT NULL, p_state text DEFAULT NULL,
                          p_note text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    id bigint;
BEGIN
    INSERT INTO dagq.event (event, dag_id, run_id, task_id, ti_id, try_number, state, note)
    VALUES (p_event, p_dag, p_run, p_task, p_ti, p_try, p_state, p_note)
    RETURNING event_id INTO id;
    -- whoever delivers events listens here (one notification per
    -- transaction: PostgreSQL folds identical ones)
    PERFORM pg_notify('dagq_event', '');
    RETURN id;
END;
$$;
