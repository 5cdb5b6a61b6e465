#!/usr/bin/env bash
# tests/cron_sql_check.sh DATABASE_URL
#
# Holds dagq.cron_check (sql/002_cron_check.sql) to the same rules as the C
# parser (cron_parse in common/cron.c):
#   1. every line of tests/cron_cases.tsv gets the verdict it states, which
#      tests/unit/test_cron.c checks against cron_parse;
#   2. a set of expressions gets exactly the messages that test_cron.c's
#      parse_errors test expects from cron_parse.
# The database's schema dagq must already have the function. Prints every
# disagreement; exits 1 if there is one, 2 if the check could not run.
set -u

url=${1:-}
if [ -z "$url" ]; then
    echo "usage: $0 DATABASE_URL" >&2
    exit 2
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cases=${DAGQ_CRON_CASES:-$repo/tests/cron_cases.tsv}
[ -r "$cases" ] || { echo "cron_sql_check: cannot read $cases" >&2; exit 2; }

# Expressions travel as hex so that no quoting, backslash or blank in them
# can change what the function receives.
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

rows=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    case $line in '' | '#'*) continue ;; esac
    if [[ $line != *$'\t'* ]]; then
        echo "cron_cases.tsv:$lineno: no tab: $line" >&2
        exit 2
    fi
    verdict=${line%%$'\t'*}
    expr=${line#*$'\t'}
    case $verdict in valid | invalid) ;; *)
        echo "cron_cases.tsv:$lineno: verdict must be valid or invalid: $verdict" >&2
        exit 2
        ;;
    esac
    rows+=("($lineno, '$verdict', '$(hex "$expr")')")
done <"$cases"
if [ ${#rows[@]} -eq 0 ]; then
    echo "cron_sql_check: no cases in $cases" >&2
    exit 2
fi

# message<TAB>expression, as asserted for cron_parse in tests/unit/test_cron.c
messages=$(
    cat <<'EOF'
empty expression	
empty expression	   
expected 5 fields, got 4	* * * *
expected 5 fields, got 6	* * * * * *
minute: 60 is out of range 0-59	60 * * * *
hour: 25 is out of range 0-23	* 25 * * *
day-of-month: 0 is out of range 1-31	* * 0 * *
month: 13 is out of range 1-12	* * * 13 *
day-of-week: 8 is out of range 0-7	* * * * 8
minute: 70 is out of range 0-59	1-70 * * * *
minute: 99999999999999999999 is out of range 0-59	99999999999999999999 * * * *
day-of-week: unknown name FOO	* * * * FOO
day-of-week: unknown name monday	* * * * monday
day-of-week: unknown name JAN	* * * * JAN
month: unknown name MON	* * * MON *
minute: unknown name JAN	JAN * * * *
day-of-month: unknown name L	0 0 L * *
minute: step 0 is not allowed	*/0 * * * *
hour: step 0 is not allowed	* 1-5/0 * * *
minute: step 60 is out of range 1-59	*/60 * * * *
day-of-week: step 8 is out of range 1-7	* * * * */8
minute: step needs * or a range before '/' in "5/15"	5/15 * * * *
minute: expected a step number after '/' in "*/"	*/ * * * *
minute: expected a step number after '/' in "*/x"	*/x * * * *
minute: range 5-3 is reversed	5-3 * * * *
day-of-week: range FRI-MON is reversed	* * * * FRI-MON
minute: expected a value after '-' in "1-"	1- * * * *
minute: expected a value after '-' in "1-*"	1-* * * * *
minute: unexpected character '-' in "1-2-3"	1-2-3 * * * *
minute: unexpected character '-' in "*-5"	*-5 * * * *
minute: unexpected character '-' in "-1"	-1 * * * *
minute: unexpected character '*' in "**"	** * * * *
minute: unexpected character '?' in "?"	? * * * *
minute: unexpected character '.' in "1.5"	1.5 * * * *
day-of-month: unexpected character 'W' in "1W"	0 0 1W * *
day-of-week: unexpected character '#' in "5#3"	0 0 * * 5#3
day-of-week: empty list item in "MON,"	0 0 * * MON,
minute: empty list item in "1,,2"	1,,2 * * * *
minute: empty list item in ","	, * * * *
hour: unexpected byte 0xC3	0 é * * *
@reboot is not supported	@reboot
@every needs a duration, e.g. @every 1h30m	@every
unexpected text after @every 1h	@every 1h 30m
@every: duration "30m1h" is not valid: use whole numbers with the units d, h, m, s, largest first, each once (e.g. 1h30m)	@every 30m1h
@every: duration "1.5h" is not valid: use whole numbers with the units d, h, m, s, largest first, each once (e.g. 1h30m)	@every 1.5h
@every: 0s is out of range 1s-365d	@every 0s
@every: 366d is out of range 1s-365d	@every 366d
@every: 99999999999999999999s is out of range 1s-365d	@every 99999999999999999999s
unexpected text after @once	@once 1
unknown macro @	@
unexpected text after @daily	@daily 0
minute: 61 is out of range 0-59	61 25 * * *
EOF
)
mrows=()
n=0
while IFS= read -r line; do
    n=$((n + 1))
    mrows+=("($n, '$(hex "${line%%$'\t'*}")', '$(hex "${line#*$'\t'}")')")
done <<<"$messages"

join() {
    local IFS=,
    echo "$*"
}

# One session; each output line says what disagrees, nothing when all agree.
out=$(
    psql -X -q -v ON_ERROR_STOP=1 -At -F $'\t' "$url" 2>&1 <<SQL
WITH c(n, verdict, e) AS (
    SELECT n, verdict, convert_from(decode(h, 'hex'), 'UTF8')
    FROM (VALUES $(join "${rows[@]}")) AS v(n, verdict, h)
), r AS (
    SELECT n, verdict, e, dagq.cron_check(e) AS msg FROM c
)
SELECT format('cron_cases.tsv:%s: %s says %s, dagq.cron_check says %s', n,
              to_json(e), verdict, coalesce('invalid (' || msg || ')', 'valid'))
FROM r
WHERE (verdict = 'valid') <> (msg IS NULL)
UNION ALL
SELECT format('message for %s: want %s, dagq.cron_check says %s', to_json(e),
              to_json(want), coalesce(to_json(msg)::text, 'NULL (valid)'))
FROM (
    SELECT convert_from(decode(hw, 'hex'), 'UTF8') AS want,
           convert_from(decode(he, 'hex'), 'UTF8') AS e
    FROM (VALUES $(join "${mrows[@]}")) AS v(n, hw, he)
) m, LATERAL (SELECT dagq.cron_check(m.e) AS msg) x
WHERE msg IS DISTINCT FROM want;
SQL
)
rc=$?
if [ $rc -ne 0 ]; then
    echo "cron_sql_check: psql failed: $out" >&2
    exit 2
fi
if [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    echo "cron_sql_check: dagq.cron_check disagrees with cron_parse (see above)" >&2
    exit 1
fi
echo "cron_sql_check: ${#rows[@]} cases and ${#mrows[@]} messages agree"
