-- dagq metastore, migration 011 (ETL features, 1 of 7): schedules the
-- database can evaluate.
--
-- `schedule` also accepts `@every <duration>` (Dkron's: `@every 1h30m`,
-- units d h m s from the largest down, each at most once, 1s to 365d),
-- measured from the DAG's start_date (its created_at without one), and
-- `@once` (one run, at start_date). dagq.cron_check accepts them with the
-- same checks and messages as cron_parse in common/cron.c; tests/cron_cases.tsv
-- holds both to the same verdicts.
--
-- Backfills are decided in the database (dagq.backfill, migration 011f), so
-- the database must know a schedule's intervals: dagq.cron_fires is the
-- evaluation of common/cron.c (cron_next) in SQL, set-wise: the wall-clock
-- times a cron expression matches in the DAG's time zone, each mapped to an
-- instant by the same DST rules (a time that does not exist fires at the end
-- of the gap, one that happens twice fires at its first occurrence: which is
-- not what PostgreSQL's own `timestamp AT TIME ZONE` does). A
-- wall time -> instant map of our own, and tests/cron_next_check.sh holding
-- dagq.schedule_next to cron_next over thousands of cases in zones with DST,
-- keep a backfill's intervals the scheduler's own.

------------------------------------------------------------------------------
-- Parsing
------------------------------------------------------------------------------

-- The seconds of a duration of the form every_problem accepts (numeric: no
-- overflow, whatever the digits).
CREATE FUNCTION dagq.every_seconds_of(d text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT COALESCE((substring(d FROM '([0-9]+)d'))::numeric * 86400, 0)
         + COALESCE((substring(d FROM '([0-9]+)h'))::numeric * 3600, 0)
         + COALESCE((substring(d FROM '([0-9]+)m'))::numeric * 60, 0)
         + COALESCE((substring(d FROM '([0-9]+)s'))::numeric, 0)
$$;

-- The problem with an @every duration, or NULL. Same checks, order and words
-- as cron_parse_duration in common/cron.c.
CREATE FUNCTION dagq.every_problem(d text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN d !~ '^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$' OR d = ''
        THEN format('@every: duration "%s" is not valid: use whole numbers with the units d, h, m, s, largest first, each once (e.g. 1h30m)', d)
        WHEN dagq.every_seconds_of(d) NOT BETWEEN 1 AND 365 * 86400
        THEN format('@every: %s is out of range 1s-365d', d)
    END
$$;

-- 002's checker of cron expressions stays as it is, for the five fields and
-- the macros that stand for them; dagq.cron_check adds @every and @once.
ALTER FUNCTION dagq.cron_check(text) RENAME TO cron_check_fields;

CREATE FUNCTION dagq.cron_check(expr text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
    ws constant text := E' \t\n\r\f' || chr(11);
    parts text[];
    n int;
    macro text;
BEGIN
    IF expr IS NULL OR btrim(expr, ws) = '' THEN
        RETURN dagq.cron_check_fields(expr);
    END IF;
    parts := regexp_split_to_array(btrim(expr, ws), E'[ \\t\\n\\r\\f\\v]+');
    n := array_length(parts, 1);
    macro := translate(parts[1], 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
    IF macro = '@once' THEN
        IF n > 1 THEN
            RETURN format('unexpected text after %s', parts[1]);
        END IF;
        RETURN NULL;
    END IF;
    IF macro = '@every' THEN
        IF n = 1 THEN
            RETURN '@every needs a duration, e.g. @every 1h30m';
        END IF;
        IF n > 2 THEN
            RETURN format('unexpected text after %s %s', parts[1], parts[2]);
        END IF;
        RETURN dagq.every_problem(parts[2]);
    END IF;
    RETURN dagq.cron_check_fields(expr);
END
$fn$;

COMMENT ON FUNCTION dagq.cron_check(text) IS
    'NULL when expr is a valid dagq schedule (cron expression, macro, @every <duration> or @once; same rules as cron_parse in common/cron.c), else the problem';

-- What kind of schedule a valid one is: 'cron', 'every' or 'once'.
CREATE FUNCTION dagq.schedule_kind(expr text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE lower(split_part(btrim(expr, E' \t\n\r\f\v'), ' ', 1))
               WHEN '@once' THEN 'once'
               ELSE CASE WHEN lower(btrim(expr, E' \t\n\r\f\v')) ~ '^@every[ \t\n\r\f\v]'
                         THEN 'every' ELSE 'cron' END
           END
$$;

-- The period of a valid @every schedule, in seconds.
CREATE FUNCTION dagq.every_seconds(expr text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT dagq.every_seconds_of(
               (regexp_split_to_array(btrim(expr, E' \t\n\r\f\v'), E'[ \\t\\n\\r\\f\\v]+'))[2])::bigint
$$;

-- The values each field of a valid cron expression (or macro) matches, as
-- cron_parse's bit sets: minute 0-59, hour 0-23, day of month 1-31, month
-- 1-12, day of week 0-6 (7 folded into 0, Sunday); *_star: the field's text
-- starts with '*' (Vixie cron's rule for day of month and day of week).
CREATE FUNCTION dagq.cron_sets(expr text, OUT minutes int[], OUT hours int[], OUT doms int[],
                               OUT months int[], OUT dows int[], OUT dom_star boolean,
                               OUT dow_star boolean)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    err text := dagq.cron_check(expr);
    fmin constant int[] := ARRAY[0, 0, 1, 1, 0];
    fmax constant int[] := ARRAY[59, 23, 31, 12, 7];
    mnames constant text[] := ARRAY['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN',
                                    'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
    dnames constant text[] := ARRAY['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
    parts text[];
    sets int[][];
    vals int[];
    item text;
    base text;
    step int;
    lo int;
    hi int;
    tok text;
BEGIN
    IF err IS NOT NULL THEN
        RAISE EXCEPTION 'schedule "%" is not valid: %', expr, err USING ERRCODE = 'invalid_parameter_value';
    END IF;
    parts := regexp_split_to_array(btrim(expr, E' \t\n\r\f\v'), E'[ \\t\\n\\r\\f\\v]+');
    IF left(parts[1], 1) = '@' THEN
        parts := CASE lower(parts[1])
                     WHEN '@hourly' THEN ARRAY['0', '*', '*', '*', '*']
                     WHEN '@daily' THEN ARRAY['0', '0', '*', '*', '*']
                     WHEN '@midnight' THEN ARRAY['0', '0', '*', '*', '*']
                     WHEN '@weekly' THEN ARRAY['0', '0', '*', '*', '0']
                     WHEN '@monthly' THEN ARRAY['0', '0', '1', '*', '*']
                     ELSE ARRAY['0', '0', '1', '1', '*'] -- @yearly, @annually
                 END;
        IF lower(parts[1]) IN ('@every', '@once') THEN
            RAISE EXCEPTION 'schedule "%" is not a cron expression', expr
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    FOR i IN 1..5 LOOP
        vals := '{}';
        FOREACH item IN ARRAY string_to_array(parts[i], ',') LOOP
            step := 1;
            base := item;
            IF strpos(item, '/') > 0 THEN
                base := split_part(item, '/', 1);
                step := split_part(item, '/', 2)::int;
            END IF;
            IF base = '*' THEN
                lo := fmin[i];
                hi := fmax[i];
            ELSE
                FOR k IN 1..2 LOOP
                    tok := split_part(base, '-', k);
                    IF tok = '' THEN
                        hi := lo;
                        EXIT;
                    END IF;
                    hi := CASE WHEN tok ~ '^[0-9]+$' THEN tok::int
                               WHEN i = 4 THEN array_position(mnames, upper(tok))
                               ELSE array_position(dnames, upper(tok)) - 1 END;
                    IF k = 1 THEN
                        lo := hi;
                    END IF;
                END LOOP;
            END IF;
            vals := vals || ARRAY(SELECT generate_series(lo, hi, step));
        END LOOP;
        IF i = 5 THEN
            vals := ARRAY(SELECT DISTINCT CASE WHEN v = 7 THEN 0 ELSE v END FROM unnest(vals) v);
        END IF;
        CASE i
            WHEN 1 THEN minutes := vals;
            WHEN 2 THEN hours := vals;
            WHEN 3 THEN doms := vals;
            WHEN 4 THEN months := vals;
            ELSE dows := vals;
        END CASE;
    END LOOP;
    dom_star := left(parts[3], 1) = '*';
    dow_star := left(parts[5], 1) = '*';
END;
$$;

------------------------------------------------------------------------------
-- Evaluation
------------------------------------------------------------------------------

-- The UTC offset of zone tz at instant t.
CREATE FUNCTION dagq.tz_offset(t timestamptz, tz text) RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (t AT TIME ZONE tz) - (t AT TIME ZONE 'UTC')
$$;

-- The instant at which wall-clock time w of zone tz fires: cron_wall_instant
-- of common/cron.c. A wall time that happens once: that instant; twice
-- (fall back): the first; never (spring forward): the first instant after
-- the gap. The offsets a day either side bracket any transition near w.
CREATE FUNCTION dagq.wall_instant(w timestamp, tz text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    l constant timestamptz := w AT TIME ZONE 'UTC'; -- the wall time read as UTC
    o1 interval;
    o2 interval;
    t1 timestamptz;
    t2 timestamptz;
    ok1 boolean;
    ok2 boolean;
    lo bigint;
    hi bigint;
    mid bigint;
    olo interval;
BEGIN
    IF tz IS NULL OR tz IN ('', 'UTC') THEN
        RETURN l;
    END IF;
    o1 := dagq.tz_offset(l - interval '1 day', tz);
    o2 := dagq.tz_offset(l + interval '1 day', tz);
    t1 := l - o1;
    IF o1 = o2 THEN
        RETURN t1; -- no transition near w: the common case
    END IF;
    t2 := l - o2;
    ok1 := dagq.tz_offset(t1, tz) = o1;
    ok2 := dagq.tz_offset(t2, tz) = o2;
    IF ok1 AND ok2 THEN
        RETURN LEAST(t1, t2);
    ELSIF ok1 THEN
        RETURN t1;
    ELSIF ok2 THEN
        RETURN t2;
    END IF;
    -- in the gap: the transition, the first second whose offset differs
    lo := extract(epoch FROM LEAST(t1, t2))::bigint;
    hi := extract(epoch FROM GREATEST(t1, t2))::bigint;
    olo := dagq.tz_offset(to_timestamp(lo), tz);
    IF dagq.tz_offset(to_timestamp(hi), tz) = olo THEN
        RETURN to_timestamp(hi);
    END IF;
    WHILE hi - lo > 1 LOOP
        mid := lo + (hi - lo) / 2;
        IF dagq.tz_offset(to_timestamp(mid), tz) = olo THEN
            lo := mid;
        ELSE
            hi := mid;
        END IF;
    END LOOP;
    RETURN to_timestamp(hi);
END;
$$;

-- The instants in [lo, hi] at which cron expression expr fires in zone tz,
-- in order: the matching wall times whose instants can lie in [lo, hi],
-- each through wall_instant (two wall times in one DST gap fire once). Those
-- wall times lie between the wall clock at lo and at hi, widened by a DST
-- gap just after lo (its wall times fire at its end) and a repeated hour
-- just before hi (their first occurrence came before hi), read from the
-- offsets a day either side, as cron_next does.
CREATE FUNCTION dagq.cron_fires(expr text, tz text, lo timestamptz, hi timestamptz)
RETURNS SETOF timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    z constant text := COALESCE(NULLIF(tz, ''), 'UTC');
    c record;
    wlo timestamp;
    whi timestamp;
BEGIN
    IF lo > hi THEN
        RETURN;
    END IF;
    SELECT * INTO c FROM dagq.cron_sets(expr);
    wlo := (lo AT TIME ZONE z) - interval '1 minute'
           - GREATEST(interval '0', dagq.tz_offset(lo + interval '1 day', z)
                                    - dagq.tz_offset(lo - interval '1 day', z));
    whi := (hi AT TIME ZONE z) + interval '1 minute'
           + GREATEST(interval '0', dagq.tz_offset(hi - interval '1 day', z)
                                    - dagq.tz_offset(hi + interval '1 day', z));
    RETURN QUERY
    WITH days AS (
        SELECT d::timestamp AS day
          FROM generate_series(date_trunc('day', wlo), date_trunc('day', whi), interval '1 day') d
         WHERE extract(month FROM d)::int = ANY (c.months)
           AND CASE WHEN c.dom_star OR c.dow_star
                    THEN extract(day FROM d)::int = ANY (c.doms) AND extract(dow FROM d)::int = ANY (c.dows)
                    ELSE extract(day FROM d)::int = ANY (c.doms) OR extract(dow FROM d)::int = ANY (c.dows)
               END
    ), walls AS (
        SELECT days.day + make_interval(hours => h, mins => m) AS w
          FROM days, unnest(c.hours) AS h, unnest(c.minutes) AS m
    )
    SELECT DISTINCT t
      FROM walls, LATERAL dagq.wall_instant(walls.w, z) AS t
     WHERE walls.w BETWEEN wlo AND whi AND t >= lo AND t <= hi
     ORDER BY t;
END;
$$;

-- A schedule's anchor: what @every and @once are measured from, as the
-- scheduler reads it (whole seconds of start_date, else of created_at).
CREATE FUNCTION dagq.schedule_anchor(p_start_date timestamptz, p_created_at timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp(floor(extract(epoch FROM COALESCE(p_start_date, p_created_at))))
$$;

-- The instants in [lo, hi] at which a valid schedule fires, in order.
CREATE FUNCTION dagq.schedule_fires(p_schedule text, p_tz text, p_anchor timestamptz,
                                    lo timestamptz, hi timestamptz)
RETURNS SETOF timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    d bigint;
    a bigint := extract(epoch FROM p_anchor)::bigint;
BEGIN
    CASE dagq.schedule_kind(p_schedule)
    WHEN 'once' THEN
        IF p_anchor BETWEEN lo AND hi THEN
            RETURN NEXT p_anchor;
        END IF;
    WHEN 'every' THEN
        d := dagq.every_seconds(p_schedule);
        RETURN QUERY
        SELECT to_timestamp(a + k * d)
          FROM generate_series(ceil((extract(epoch FROM lo) - a) / d)::bigint,
                               floor((extract(epoch FROM hi) - a) / d)::bigint) k;
    ELSE
        RETURN QUERY SELECT * FROM dagq.cron_fires(p_schedule, p_tz, lo, hi);
    END CASE;
END;
$$;

-- The first instant strictly after p_after at which a valid schedule fires,
-- or NULL: none within 5 years (cron_next's search), or @once past.
CREATE FUNCTION dagq.schedule_next(p_schedule text, p_tz text, p_anchor timestamptz,
                                   p_after timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    w interval;
    t timestamptz;
    d bigint;
    a bigint := extract(epoch FROM p_anchor)::bigint;
BEGIN
    CASE dagq.schedule_kind(p_schedule)
    WHEN 'once' THEN
        RETURN CASE WHEN p_anchor > p_after THEN p_anchor END;
    WHEN 'every' THEN
        d := dagq.every_seconds(p_schedule);
        RETURN to_timestamp(a + (floor((extract(epoch FROM p_after) - a) / d)::bigint + 1) * d);
    ELSE
        -- windows that grow, so that a frequent schedule costs a couple of
        -- days of wall times and a rare one a few matching days
        FOREACH w IN ARRAY ARRAY[interval '2 days', interval '40 days', interval '400 days',
                                 interval '1832 days'] LOOP
            SELECT min(f) INTO t FROM dagq.cron_fires(p_schedule, p_tz, p_after, p_after + w) f
             WHERE f > p_after;
            IF t IS NOT NULL THEN
                RETURN t;
            END IF;
        END LOOP;
        RETURN NULL;
    END CASE;
END;
$$;

-- A schedule's data intervals whose start lies in [lo, hi], in order, with
-- Airflow's semantics: [a fire time, the next one); @once's single interval
-- is [start_date, start_date].
CREATE FUNCTION dagq.schedule_intervals(p_schedule text, p_tz text, p_anchor timestamptz,
                                        lo timestamptz, hi timestamptz)
RETURNS TABLE (data_interval_start timestamptz, data_interval_end timestamptz)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    IF dagq.schedule_kind(p_schedule) = 'once' THEN
        RETURN QUERY SELECT f, f FROM dagq.schedule_fires(p_schedule, p_tz, p_anchor, lo, hi) f;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT x.f, COALESCE(x.nxt, dagq.schedule_next(p_schedule, p_tz, p_anchor, x.f))
      FROM (SELECT f, lead(f) OVER (ORDER BY f) AS nxt
              FROM dagq.schedule_fires(p_schedule, p_tz, p_anchor, lo, hi) f) x
     ORDER BY x.f;
END;
$$;

-- A duration for people, as the CLI shows them: 45s, 3m04s, 1h30m, 2d04h.
CREATE FUNCTION dagq.duration_text(d interval) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN s < 60 AND s = floor(s) THEN format('%ss', s::bigint)
        WHEN s < 60 THEN format('%ss', to_char(s, 'FM99990.0'))
        WHEN s < 3600 THEN format('%sm%ss', floor(s / 60), lpad(floor(s)::bigint % 60 || '', 2, '0'))
        WHEN s < 86400 THEN format('%sh%sm', floor(s / 3600), lpad((floor(s)::bigint % 3600 / 60) || '', 2, '0'))
        ELSE format('%sd%sh', floor(s / 86400), lpad((floor(s)::bigint % 86400 / 3600) || '', 2, '0'))
    END
      FROM (SELECT extract(epoch FROM d)::numeric AS s) x
$$;
