-- 002_cron_check: dagq.cron_check(expr), the database's own check of a cron
-- schedule, so a bad schedule is rejected when a DAG is written (a trigger on
-- dagq.dag calls it) rather than when the scheduler first reads it.
--
-- It is a line-for-line port of cron_parse's parser in common/cron.c: the
-- same syntax, the same order of checks and the same messages. Change both
-- together; tests/cron_cases.tsv holds them to the same verdicts
-- (tests/unit/test_cron.c for C, tests/cron_sql_check.sh for this function).
--
-- Syntax: five fields separated by whitespace (space, tab, CR, LF, VT, FF):
-- minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC,
-- day-of-week 0-7 (0 and 7 are Sunday) or SUN-SAT; names are ASCII,
-- case-insensitive. Each field is a comma list of `*`, `n`, `a-b`, `*/s` or
-- `a-b/s` (1 <= s <= the field's maximum). Or one macro: @hourly @daily
-- @midnight @weekly @monthly @yearly @annually (case-insensitive).
-- An expression that parses but never fires ("0 0 30 2 *") is valid here,
-- as in cron_parse; cron_next reports it.
--
-- Returns NULL when expr is valid (or NULL), else the problem, e.g.
-- 'hour: 25 is out of range 0-23'.
CREATE OR REPLACE FUNCTION dagq.cron_check(expr text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
    ws constant text := E' \t\n\r\f' || chr(11);
    lower_ascii constant text := 'abcdefghijklmnopqrstuvwxyz';
    upper_ascii constant text := 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    field_names constant text[] := ARRAY['minute', 'hour', 'day-of-month', 'month', 'day-of-week'];
    field_mins constant int[] := ARRAY[0, 0, 1, 1, 0];
    field_maxs constant int[] := ARRAY[59, 23, 31, 12, 7];
    month_names constant text[] := ARRAY['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN',
                                         'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
    dow_names constant text[] := ARRAY['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
    s text;
    parts text[];
    n int;
    macro text;
    fname text;
    fmin int;
    fmax int;
    names text[];
    nbase int;
    f text;     -- the field's text
    flen int;
    p int;      -- 1-based position in f
    c text;     -- the character at p
    tok text;
    tok1 text;
    lo int;
    hi int;
    v int;
    star boolean;
    rng boolean;
BEGIN
    IF expr IS NULL THEN
        RETURN NULL;
    END IF;
    s := btrim(expr, ws);
    IF s = '' THEN
        RETURN 'empty expression';
    END IF;
    parts := regexp_split_to_array(s, E'[ \\t\\n\\r\\f\\v]+');
    n := array_length(parts, 1);

    IF left(parts[1], 1) = '@' THEN
        macro := translate(parts[1], upper_ascii, lower_ascii);
        IF macro IN ('@hourly', '@daily', '@midnight', '@weekly', '@monthly', '@yearly',
                     '@annually') THEN
            IF n > 1 THEN
                RETURN format('unexpected text after %s', parts[1]);
            END IF;
            RETURN NULL;
        END IF;
        IF macro = '@reboot' THEN
            RETURN '@reboot is not supported';
        END IF;
        RETURN format('unknown macro %s', parts[1]);
    END IF;
    IF n <> 5 THEN
        RETURN format('expected 5 fields, got %s', n);
    END IF;

    FOR i IN 1..5 LOOP
        fname := field_names[i];
        fmin := field_mins[i];
        fmax := field_maxs[i];
        names := CASE i WHEN 4 THEN month_names WHEN 5 THEN dow_names ELSE ARRAY[]::text[] END;
        nbase := CASE i WHEN 4 THEN 1 ELSE 0 END;
        f := parts[i];
        flen := length(f);
        p := 1;
        LOOP -- one list item per turn
            c := substr(f, p, 1);
            IF p > flen OR c = ',' THEN
                RETURN format('%s: empty list item in "%s"', fname, f);
            END IF;
            star := false;
            rng := false;
            IF c = '*' THEN
                star := true;
                p := p + 1;
            ELSIF c ~ '^[0-9A-Za-z]$' THEN
                -- the first value: a number or a name
                tok := substring(substring(f FROM p FOR flen) FROM '^([0-9]+|[A-Za-z]+)');
                p := p + length(tok);
                IF ascii(tok) BETWEEN 48 AND 57 THEN
                    v := CASE WHEN length(ltrim(tok, '0')) > 6 THEN 1000000
                              ELSE ('0' || ltrim(tok, '0'))::int END;
                    IF v < fmin OR v > fmax THEN
                        RETURN format('%s: %s is out of range %s-%s', fname, tok, fmin, fmax);
                    END IF;
                ELSE
                    v := array_position(names, translate(tok, lower_ascii, upper_ascii));
                    IF v IS NULL THEN
                        RETURN format('%s: unknown name %s', fname, tok);
                    END IF;
                    v := v - 1 + nbase;
                END IF;
                lo := v;
                tok1 := tok;
                IF substr(f, p, 1) = '-' THEN
                    p := p + 1;
                    IF substr(f, p, 1) !~ '^[0-9A-Za-z]$' THEN
                        RETURN format('%s: expected a value after ''-'' in "%s"', fname, f);
                    END IF;
                    -- the second value, as the first
                    tok := substring(substring(f FROM p FOR flen) FROM '^([0-9]+|[A-Za-z]+)');
                    p := p + length(tok);
                    IF ascii(tok) BETWEEN 48 AND 57 THEN
                        v := CASE WHEN length(ltrim(tok, '0')) > 6 THEN 1000000
                                  ELSE ('0' || ltrim(tok, '0'))::int END;
                        IF v < fmin OR v > fmax THEN
                            RETURN format('%s: %s is out of range %s-%s', fname, tok, fmin, fmax);
                        END IF;
                    ELSE
                        v := array_position(names, translate(tok, lower_ascii, upper_ascii));
                        IF v IS NULL THEN
                            RETURN format('%s: unknown name %s', fname, tok);
                        END IF;
                        v := v - 1 + nbase;
                    END IF;
                    hi := v;
                    IF lo > hi THEN
                        RETURN format('%s: range %s-%s is reversed', fname, tok1, tok);
                    END IF;
                    rng := true;
                END IF;
            ELSE
                IF ascii(c) BETWEEN 33 AND 126 THEN
                    RETURN format('%s: unexpected character ''%s'' in "%s"', fname, c, f);
                END IF;
                RETURN format('%s: unexpected byte 0x%s', fname,
                              upper(lpad(to_hex(get_byte(convert_to(c, 'UTF8'), 0)), 2, '0')));
            END IF;

            IF substr(f, p, 1) = '/' THEN
                IF NOT star AND NOT rng THEN
                    RETURN format('%s: step needs * or a range before ''/'' in "%s"', fname, f);
                END IF;
                p := p + 1;
                IF substr(f, p, 1) !~ '^[0-9]$' THEN
                    RETURN format('%s: expected a step number after ''/'' in "%s"', fname, f);
                END IF;
                tok := substring(substring(f FROM p FOR flen) FROM '^[0-9]+');
                p := p + length(tok);
                v := CASE WHEN length(ltrim(tok, '0')) > 6 THEN 1000000
                          ELSE ('0' || ltrim(tok, '0'))::int END;
                IF v = 0 THEN
                    RETURN format('%s: step 0 is not allowed', fname);
                END IF;
                IF v > fmax THEN
                    RETURN format('%s: step %s is out of range 1-%s', fname, tok, fmax);
                END IF;
            END IF;

            c := substr(f, p, 1);
            IF p <= flen AND c <> ',' THEN
                IF ascii(c) BETWEEN 33 AND 126 THEN
                    RETURN format('%s: unexpected character ''%s'' in "%s"', fname, c, f);
                END IF;
                RETURN format('%s: unexpected byte 0x%s', fname,
                              upper(lpad(to_hex(get_byte(convert_to(c, 'UTF8'), 0)), 2, '0')));
            END IF;
            EXIT WHEN p > flen;
            p := p + 1; -- the comma
        END LOOP;
    END LOOP;
    RETURN NULL;
END
$fn$;

COMMENT ON FUNCTION dagq.cron_check(text) IS
    'NULL when expr is a valid dagq cron expression (same rules as cron_parse in common/cron.c), else the problem';
