#!/usr/bin/env bash
# tests/cron_next_check.sh DATABASE_URL
#
# Holds the database's evaluation of cron schedules (dagq.schedule_next and
# dagq.cron_fires, sql/011_etl_schedules.sql: what backfills are planned
# with) to the scheduler's (cron_next in common/cron.c): for a fixed,
# seeded set of expressions, time zones with DST (gaps, repeated hours, a
# skipped day, half-hour and 30-minute shifts) and starting instants around
# their transitions, build/san/tests/test_cron --next prints the next fire
# times after each start, and the database must find the same: the first
# with schedule_next, all of them with cron_fires over the same span, and
# the one after the last with schedule_next again. Prints every
# disagreement; exits 1 if there is one, 2 if the check could not run.
set -u
url=${1:-}
[ -n "$url" ] || { echo "usage: $0 DATABASE_URL" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${T_CRON_BIN:-$repo/build/san/tests/test_cron}
[ -x "$bin" ] || { echo "cron_next_check: $bin not built (make san)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# expr<TAB>tz<TAB>after<TAB>n
python3 - >"$work/cases" <<'PY'
import calendar, random
rnd = random.Random(11)
exprs = ["30 2 * * *", "0 2 * * *", "0 1 * * *", "59 1 * * *", "0 3 * * *", "*/15 1-3 * * *",
         "0 0 * * *", "15 0 * * *", "0 12 * * 1-5", "59 23 31 12 *", "0 0 29 2 *",
         "0 0 1,15 * MON", "@hourly", "@daily", "@weekly", "@monthly", "5 4 * * sun",
         "*/7 * * * *", "0 */5 * * *", "45 23 * * 6", "30 * * * *", "0 0 13 * FRI",
         "0 9-17/2 * * MON-FRI", "0 0 L * *" if False else "0 0 31 * *", "*/20 0-2 * * 0"]
zones = ["", "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
         "America/Santiago", "Asia/Kolkata", "Pacific/Apia", "Asia/Kathmandu",
         "Europe/London", "America/St_Johns", "Pacific/Chatham"]
# around DST and other transitions, and at random
marks = ["2024-03-10 06:00", "2024-03-31 00:30", "2024-10-27 00:30", "2024-11-03 05:00",
         "2024-04-06 14:00", "2024-09-07 02:00", "2011-12-29 09:00", "2024-04-07 03:00",
         "2024-09-29 13:30", "2023-03-26 00:59", "2024-01-01 00:00", "2024-02-28 22:00"]
def ts(s):
    return calendar.timegm((int(s[0:4]), int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]), 0))
starts = [ts(m) for m in marks] + [rnd.randrange(ts("2010-01-01 00:00"), ts("2030-01-01 00:00"))
                                   for _ in range(6)]
for e in exprs:
    for z in zones:
        for s in rnd.sample(starts, 5):
            print("%s\t%s\t%d\t%d" % (e, z, s + rnd.choice([0, 1, 29, 59, 60, 1799]), 6))
PY
"$bin" --next <"$work/cases" >"$work/c" || { echo "cron_next_check: $bin --next failed" >&2; exit 2; }
paste "$work/cases" "$work/c" | awk -F'\t' -v OFS='\t' '{ print NR, $1, $2, $3, $5 }' >"$work/rows"
if grep -q 'error:' "$work/rows"; then
    echo "cron_next_check: cron_next failed on some cases:" >&2
    grep 'error:' "$work/rows" | head >&2
    exit 2
fi
out=$(
    psql -X -q -v ON_ERROR_STOP=1 -At "$url" 2>&1 <<SQL
CREATE TEMP TABLE c (n int, expr text, tz text, after bigint, want text);
\copy c FROM '$work/rows'
WITH w AS (
    SELECT n, expr, tz, after, string_to_array(want, ' ')::bigint[] AS want FROM c
), got AS (
    SELECT w.*,
           extract(epoch FROM dagq.schedule_next(expr, tz, NULL, to_timestamp(after)))::bigint AS first,
           ARRAY(SELECT extract(epoch FROM f)::bigint
                   FROM dagq.cron_fires(expr, tz, to_timestamp(after + 1), to_timestamp(want[5])) AS f
                  ORDER BY f) AS fires,
           extract(epoch FROM dagq.schedule_next(expr, tz, NULL, to_timestamp(want[5])))::bigint AS after_last
      FROM w
)
SELECT format('case %s: %s in %s after %s: cron_next says %s, the database says %s, then %s',
              n, to_json(expr), COALESCE(NULLIF(tz, ''), 'UTC'), to_timestamp(after), want,
              first || ' ' || array_to_string(fires, ','), after_last)
  FROM got
 WHERE first IS DISTINCT FROM want[1] OR fires <> want[1:5] OR after_last IS DISTINCT FROM want[6];
SELECT 'cases: ' || count(*) FROM c;
SQL
)
rc=$?
if [ $rc -ne 0 ]; then
    echo "cron_next_check: psql failed: $out" >&2
    exit 2
fi
if [ "$(grep -vc '^cases: ' <<<"$out")" -gt 0 ]; then
    grep -v '^cases: ' <<<"$out" | head -40 >&2
    echo "cron_next_check: $(grep -vc '^cases: ' <<<"$out") disagreements between dagq.schedule_next/cron_fires and cron_next" >&2
    exit 1
fi
echo "cron_next_check: $(sed -n 's/^cases: //p' <<<"$out") cases agree"
