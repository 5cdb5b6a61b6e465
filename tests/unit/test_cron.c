/* test_cron — cron parsing, next/prev in UTC and in time zones across DST,
 * checked against exact UTC instants, against a brute-force evaluator that
 * works minute by minute from the definition, and against the shared case
 * list tests/cron_cases.tsv (which sql/002_cron_check.sql is held to as
 * well, by tests/cron_sql_check.sh). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* timegm, tm_gmtoff */
#endif

#include "cron.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* "2024-03-10T07:00:00Z" -> unix seconds; seconds may be left out. */
static time_t iso(const char *s)
{
    struct tm tm = {0};
    int sec = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &sec) < 5) {
        fprintf(stderr, "bad time literal %s\n", s);
        abort();
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_sec = sec;
    return timegm(&tm);
}

static const char *fmt_utc(time_t t, char *buf, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

#define ASSERT_TIME_EQ(got, want)                                                                  \
    do {                                                                                           \
        time_t g_ = (got), w_ = (want);                                                            \
        char gb_[32], wb_[32];                                                                     \
        if (g_ != w_)                                                                              \
            TEST_FAIL_AT("%s: got %s, want %s", #got, fmt_utc(g_, gb_, sizeof gb_),                \
                         fmt_utc(w_, wb_, sizeof wb_));                                            \
    } while (0)

/* ---- parsing ------------------------------------------------------------ */

static const char *or_null(const char *s)
{
    return s ? s : "(null)";
}

/* Asserts that expr is rejected with a message containing `want`. */
#define ASSERT_PARSE_ERR(expr, want)                                                               \
    do {                                                                                           \
        cron_expr *c_ = NULL;                                                                      \
        char e_[256] = "";                                                                         \
        if (cron_parse((expr), &c_, e_, sizeof e_) == 0) {                                         \
            TEST_FAIL_AT("\"%s\" should not parse", or_null(expr));                                \
            cron_free(c_);                                                                         \
        } else {                                                                                   \
            ASSERT_TRUE(c_ == NULL);                                                               \
            ASSERT_STR_EQ(e_, (want));                                                             \
        }                                                                                          \
    } while (0)

#define ASSERT_PARSES(expr)                                                                        \
    do {                                                                                           \
        cron_expr *c_ = NULL;                                                                      \
        char e_[256] = "";                                                                         \
        if (cron_parse((expr), &c_, e_, sizeof e_) != 0)                                           \
            TEST_FAIL_AT("\"%s\" should parse: %s", (expr), e_);                                   \
        cron_free(c_);                                                                             \
    } while (0)

TEST(parse_valid)
{
    ASSERT_PARSES("* * * * *");
    ASSERT_PARSES("0 0 * * *");
    ASSERT_PARSES("*/15 * * * *");
    ASSERT_PARSES("0-59/5 0-23/2 1-31/3 1-12/4 0-7/2");
    ASSERT_PARSES("1,2,3-5,*/20 * * * *");
    ASSERT_PARSES("0 9-17 * * MON-FRI");
    ASSERT_PARSES("0 0 * jan,Jul sun-sat");
    ASSERT_PARSES("0 0 * DEC 7");
    ASSERT_PARSES("59 23 31 12 6");
    ASSERT_PARSES("00 07 01 01 00");
    ASSERT_PARSES("  0\t0  * * *  \n");
    ASSERT_PARSES("*/59 */23 */31 */12 */7");
    ASSERT_PARSES("0 0 30 2 *"); /* valid, never fires: cron_next reports it */
    ASSERT_PARSES("@hourly");
    ASSERT_PARSES("@daily");
    ASSERT_PARSES("@midnight");
    ASSERT_PARSES("@weekly");
    ASSERT_PARSES("@monthly");
    ASSERT_PARSES("@yearly");
    ASSERT_PARSES("@annually");
    ASSERT_PARSES(" @DAILY ");
}

TEST(parse_errors)
{
    ASSERT_PARSE_ERR("", "empty expression");
    ASSERT_PARSE_ERR(" \t ", "empty expression");
    ASSERT_PARSE_ERR(NULL, "empty expression");
    ASSERT_PARSE_ERR("* * * *", "expected 5 fields, got 4");
    ASSERT_PARSE_ERR("* * * * * *", "expected 5 fields, got 6");
    ASSERT_PARSE_ERR("0", "expected 5 fields, got 1");
    ASSERT_PARSE_ERR("60 * * * *", "minute: 60 is out of range 0-59");
    ASSERT_PARSE_ERR("* 25 * * *", "hour: 25 is out of range 0-23");
    ASSERT_PARSE_ERR("* * 0 * *", "day-of-month: 0 is out of range 1-31");
    ASSERT_PARSE_ERR("* * 32 * *", "day-of-month: 32 is out of range 1-31");
    ASSERT_PARSE_ERR("* * * 13 *", "month: 13 is out of range 1-12");
    ASSERT_PARSE_ERR("* * * 0 *", "month: 0 is out of range 1-12");
    ASSERT_PARSE_ERR("* * * * 8", "day-of-week: 8 is out of range 0-7");
    ASSERT_PARSE_ERR("1-70 * * * *", "minute: 70 is out of range 0-59");
    ASSERT_PARSE_ERR("99999999999999999999 * * * *",
                     "minute: 99999999999999999999 is out of range 0-59");
    ASSERT_PARSE_ERR("* * * * FOO", "day-of-week: unknown name FOO");
    ASSERT_PARSE_ERR("* * * * monday", "day-of-week: unknown name monday");
    ASSERT_PARSE_ERR("* * * * JAN", "day-of-week: unknown name JAN");
    ASSERT_PARSE_ERR("* * * MON *", "month: unknown name MON");
    ASSERT_PARSE_ERR("JAN * * * *", "minute: unknown name JAN");
    ASSERT_PARSE_ERR("0 0 L * *", "day-of-month: unknown name L");
    ASSERT_PARSE_ERR("*/0 * * * *", "minute: step 0 is not allowed");
    ASSERT_PARSE_ERR("* 1-5/0 * * *", "hour: step 0 is not allowed");
    ASSERT_PARSE_ERR("*/60 * * * *", "minute: step 60 is out of range 1-59");
    ASSERT_PARSE_ERR("* * * * */8", "day-of-week: step 8 is out of range 1-7");
    ASSERT_PARSE_ERR("5/15 * * * *", "minute: step needs * or a range before '/' in \"5/15\"");
    ASSERT_PARSE_ERR("*/ * * * *", "minute: expected a step number after '/' in \"*/\"");
    ASSERT_PARSE_ERR("*/x * * * *", "minute: expected a step number after '/' in \"*/x\"");
    ASSERT_PARSE_ERR("5-3 * * * *", "minute: range 5-3 is reversed");
    ASSERT_PARSE_ERR("* * * * FRI-MON", "day-of-week: range FRI-MON is reversed");
    ASSERT_PARSE_ERR("1- * * * *", "minute: expected a value after '-' in \"1-\"");
    ASSERT_PARSE_ERR("1-* * * * *", "minute: expected a value after '-' in \"1-*\"");
    ASSERT_PARSE_ERR("1-2-3 * * * *", "minute: unexpected character '-' in \"1-2-3\"");
    ASSERT_PARSE_ERR("*-5 * * * *", "minute: unexpected character '-' in \"*-5\"");
    ASSERT_PARSE_ERR("-1 * * * *", "minute: unexpected character '-' in \"-1\"");
    ASSERT_PARSE_ERR("** * * * *", "minute: unexpected character '*' in \"**\"");
    ASSERT_PARSE_ERR("? * * * *", "minute: unexpected character '?' in \"?\"");
    ASSERT_PARSE_ERR("1.5 * * * *", "minute: unexpected character '.' in \"1.5\"");
    ASSERT_PARSE_ERR("0 0 1W * *", "day-of-month: unexpected character 'W' in \"1W\"");
    ASSERT_PARSE_ERR("0 0 * * 5#3", "day-of-week: unexpected character '#' in \"5#3\"");
    ASSERT_PARSE_ERR("0 0 * * MON,", "day-of-week: empty list item in \"MON,\"");
    ASSERT_PARSE_ERR("1,,2 * * * *", "minute: empty list item in \"1,,2\"");
    ASSERT_PARSE_ERR(", * * * *", "minute: empty list item in \",\"");
    ASSERT_PARSE_ERR("0 \x01 * * *", "hour: unexpected byte 0x01");
    ASSERT_PARSE_ERR("0 \xc3\xa9 * * *", "hour: unexpected byte 0xC3");
    ASSERT_PARSE_ERR("@reboot", "@reboot is not supported");
    ASSERT_PARSE_ERR("@every", "@every needs a duration, e.g. @every 1h30m");
    ASSERT_PARSE_ERR("@every 1h 30m", "unexpected text after @every 1h");
    ASSERT_PARSE_ERR("@every 30m1h", "@every: duration \"30m1h\" is not valid: use whole numbers "
                                     "with the units d, h, m, s, largest first, each once (e.g. "
                                     "1h30m)");
    ASSERT_PARSE_ERR("@every 1.5h", "@every: duration \"1.5h\" is not valid: use whole numbers "
                                    "with the units d, h, m, s, largest first, each once (e.g. "
                                    "1h30m)");
    ASSERT_PARSE_ERR("@every 0s", "@every: 0s is out of range 1s-365d");
    ASSERT_PARSE_ERR("@every 366d", "@every: 366d is out of range 1s-365d");
    ASSERT_PARSE_ERR("@every 99999999999999999999s",
                     "@every: 99999999999999999999s is out of range 1s-365d");
    ASSERT_PARSE_ERR("@once 1", "unexpected text after @once");
    ASSERT_PARSE_ERR("@", "unknown macro @");
    ASSERT_PARSE_ERR("@daily 0", "unexpected text after @daily");
    /* The first bad field is the one reported. */
    ASSERT_PARSE_ERR("61 25 * * *", "minute: 61 is out of range 0-59");
}

TEST(every_and_once)
{
    cron_expr *c = NULL;
    char err[256];
    time_t t;
    ASSERT_EQ(cron_parse("@every 1d2h30m15s", &c, err, sizeof err), 0);
    ASSERT_EQ(cron_get_kind(c), CRON_EVERY);
    ASSERT_EQ(cron_every_seconds(c), 86400 + 2 * 3600 + 30 * 60 + 15);
    ASSERT_EQ(cron_next(c, NULL, 0, &t, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "@every and @once have no fire times of their own");
    cron_free(c);
    ASSERT_EQ(cron_parse(" @EVERY 90m ", &c, err, sizeof err), 0);
    ASSERT_EQ(cron_every_seconds(c), 5400);
    cron_free(c);
    ASSERT_EQ(cron_parse("@once", &c, err, sizeof err), 0);
    ASSERT_EQ(cron_get_kind(c), CRON_ONCE);
    ASSERT_EQ(cron_every_seconds(c), 0);
    ASSERT_EQ(cron_prev(c, NULL, 0, &t, err, sizeof err), -1);
    cron_free(c);
    ASSERT_EQ(cron_parse("@daily", &c, err, sizeof err), 0);
    ASSERT_EQ(cron_get_kind(c), CRON_CRON);
    cron_free(c);
}

TEST(parse_error_buffer)
{
    /* A short or absent errbuf is truncated or skipped, never overrun. */
    cron_expr *c = NULL;
    char small[8];
    ASSERT_EQ(cron_parse("* 25 * * *", &c, small, sizeof small), -1);
    ASSERT_STR_EQ(small, "hour: 2");
    ASSERT_EQ(cron_parse("* 25 * * *", &c, NULL, 0), -1);
    ASSERT_TRUE(c == NULL);
    cron_free(NULL);
}

/* Reads tests/cron_cases.tsv: `valid<TAB>expr` or `invalid<TAB>expr` per
 * line; blank lines and lines starting with '#' are skipped. */
TEST(cases_file)
{
    const char *repo = getenv("DAGQ_REPO");
    char path[4096];
    FILE *f = fopen("tests/cron_cases.tsv", "r");
    if (!f && repo) {
        snprintf(path, sizeof path, "%s/tests/cron_cases.tsv", repo);
        f = fopen(path, "r");
    }
    if (!f) {
        TEST_FAIL_AT("%s", "tests/cron_cases.tsv not found (run from the repo or set DAGQ_REPO)");
        return;
    }
    char line[4096];
    int n = 0, nvalid = 0, ninvalid = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n')
            line[--len] = 0;
        if (len == 0 || line[0] == '#')
            continue;
        char *tab = strchr(line, '\t');
        if (!tab) {
            TEST_FAIL_AT("line %d has no tab: %s", lineno, line);
            continue;
        }
        *tab = 0;
        const char *verdict = line, *expr = tab + 1;
        int want;
        if (strcmp(verdict, "valid") == 0)
            want = 1, nvalid++;
        else if (strcmp(verdict, "invalid") == 0)
            want = 0, ninvalid++;
        else {
            TEST_FAIL_AT("line %d: verdict must be valid or invalid, not %s", lineno, verdict);
            continue;
        }
        cron_expr *c = NULL;
        char err[256] = "";
        int got = cron_parse(expr, &c, err, sizeof err) == 0;
        if (got != want)
            TEST_FAIL_AT("line %d: \"%s\" should be %s (%s)", lineno, expr, verdict,
                         got ? "parsed" : err);
        cron_free(c);
        n++;
    }
    fclose(f);
    ASSERT_TRUE(n >= 40);
    ASSERT_TRUE(nvalid >= 15);
    ASSERT_TRUE(ninvalid >= 25);
}

/* ---- evaluation helpers -------------------------------------------------- */

static time_t next_of(const char *expr, const char *tz, time_t after)
{
    cron_expr *c = NULL;
    char err[256] = "";
    time_t t = 0;
    if (cron_parse(expr, &c, err, sizeof err) < 0) {
        fprintf(stderr, "parse %s: %s\n", expr, err);
        return -1;
    }
    if (cron_next(c, tz, after, &t, err, sizeof err) < 0) {
        fprintf(stderr, "next %s: %s\n", expr, err);
        t = -1;
    }
    cron_free(c);
    return t;
}

static time_t prev_of(const char *expr, const char *tz, time_t at)
{
    cron_expr *c = NULL;
    char err[256] = "";
    time_t t = 0;
    if (cron_parse(expr, &c, err, sizeof err) < 0) {
        fprintf(stderr, "parse %s: %s\n", expr, err);
        return -1;
    }
    if (cron_prev(c, tz, at, &t, err, sizeof err) < 0) {
        fprintf(stderr, "prev %s: %s\n", expr, err);
        t = -1;
    }
    cron_free(c);
    return t;
}

/* Checks that the firings of expr in tz after `start` are exactly want[],
 * and that cron_prev walks the same instants back: prev(want[i]) is
 * want[i] (at or before) and prev(want[i] - 1) is want[i - 1]. */
#define ASSERT_SEQ(expr, tz, start, ...)                                                           \
    do {                                                                                           \
        const char *seq_[] = {__VA_ARGS__};                                                        \
        time_t t_ = iso(start);                                                                    \
        for (size_t i_ = 0; i_ < sizeof seq_ / sizeof seq_[0]; i_++) {                             \
            time_t n_ = next_of((expr), (tz), t_);                                                 \
            ASSERT_TIME_EQ(n_, iso(seq_[i_]));                                                     \
            ASSERT_TIME_EQ(prev_of((expr), (tz), iso(seq_[i_])), iso(seq_[i_]));                   \
            if (i_ > 0)                                                                            \
                ASSERT_TIME_EQ(prev_of((expr), (tz), iso(seq_[i_]) - 1), iso(seq_[i_ - 1]));       \
            t_ = n_;                                                                               \
        }                                                                                          \
    } while (0)

/* ---- UTC ------------------------------------------------------------------ */

TEST(next_basic_utc)
{
    ASSERT_SEQ("* * * * *", NULL, "2024-01-01T00:00:00", "2024-01-01T00:01", "2024-01-01T00:02");
    /* strictly after, from a time that is not on a minute */
    ASSERT_SEQ("* * * * *", "", "2024-01-01T00:00:30", "2024-01-01T00:01", "2024-01-01T00:02");
    ASSERT_SEQ("*/15 * * * *", NULL, "2024-01-01T00:00", "2024-01-01T00:15", "2024-01-01T00:30",
               "2024-01-01T00:45", "2024-01-01T01:00");
    /* a step restarts every hour: 56 is followed by 00, not 03 */
    ASSERT_SEQ("*/7 * * * *", NULL, "2024-01-01T00:50", "2024-01-01T00:56", "2024-01-01T01:00",
               "2024-01-01T01:07");
    ASSERT_SEQ("5,10,40-42 * * * *", NULL, "2024-01-01T00:00", "2024-01-01T00:05",
               "2024-01-01T00:10", "2024-01-01T00:40", "2024-01-01T00:41", "2024-01-01T00:42",
               "2024-01-01T01:05");
    ASSERT_SEQ("10-30/10 1-3 * * *", NULL, "2024-01-01T00:00", "2024-01-01T01:10",
               "2024-01-01T01:20", "2024-01-01T01:30", "2024-01-01T02:10");
    ASSERT_SEQ("0 22 * * *", NULL, "2024-12-31T22:00", "2025-01-01T22:00", "2025-01-02T22:00");
    ASSERT_SEQ("0 9-17/4 * * MON-FRI", NULL, "2024-01-05T12:00", "2024-01-05T13:00",
               "2024-01-05T17:00", "2024-01-08T09:00");
    ASSERT_SEQ("30 23 31 * *", NULL, "2024-01-01T00:00", "2024-01-31T23:30", "2024-03-31T23:30",
               "2024-05-31T23:30", "2024-07-31T23:30", "2024-08-31T23:30");
    ASSERT_SEQ("0 0 1 1 *", NULL, "2024-06-01T00:00", "2025-01-01T00:00", "2026-01-01T00:00");
    ASSERT_SEQ("0 0 * JUL,jan *", NULL, "2024-07-30T00:00", "2024-07-31T00:00", "2025-01-01T00:00");
    ASSERT_SEQ("0 6 * * 7", NULL, "2024-01-01T00:00", "2024-01-07T06:00", "2024-01-14T06:00");
    ASSERT_SEQ("0 6 * * 0", NULL, "2024-01-01T00:00", "2024-01-07T06:00", "2024-01-14T06:00");
    ASSERT_SEQ("0 6 * * 5-7", NULL, "2024-01-01T00:00", "2024-01-05T06:00", "2024-01-06T06:00",
               "2024-01-07T06:00", "2024-01-12T06:00");
}

TEST(macros)
{
    ASSERT_SEQ("@hourly", NULL, "2024-01-03T10:20", "2024-01-03T11:00", "2024-01-03T12:00");
    ASSERT_SEQ("@daily", NULL, "2024-01-03T10:20", "2024-01-04T00:00", "2024-01-05T00:00");
    ASSERT_SEQ("@midnight", NULL, "2024-01-03T10:20", "2024-01-04T00:00");
    ASSERT_SEQ("@weekly", NULL, "2024-01-03T10:20", "2024-01-07T00:00", "2024-01-14T00:00");
    ASSERT_SEQ("@monthly", NULL, "2024-01-03T10:20", "2024-02-01T00:00", "2024-03-01T00:00");
    ASSERT_SEQ("@yearly", NULL, "2024-01-03T10:20", "2025-01-01T00:00", "2026-01-01T00:00");
    ASSERT_SEQ("@annually", NULL, "2024-01-03T10:20", "2025-01-01T00:00");
}

TEST(dom_dow_or_rule)
{
    /* Both restricted: the 13th of any month OR any Friday. */
    ASSERT_SEQ("0 0 13 * FRI", NULL, "2024-09-01T00:00", "2024-09-06T00:00", "2024-09-13T00:00",
               "2024-09-20T00:00", "2024-09-27T00:00", "2024-10-04T00:00", "2024-10-11T00:00",
               "2024-10-13T00:00", "2024-10-18T00:00");
    /* The 1st or 15th, or any Monday. */
    ASSERT_SEQ("0 12 1,15 * 1", NULL, "2024-02-10T00:00", "2024-02-12T12:00", "2024-02-15T12:00",
               "2024-02-19T12:00", "2024-02-26T12:00", "2024-03-01T12:00", "2024-03-04T12:00");
    /* Day-of-month starts with '*': both must hold (Vixie's DOM_STAR), so
     * days 1, 11, 21, 31 that are Mondays. */
    ASSERT_SEQ("0 0 */10 * MON", NULL, "2023-12-31T00:00", "2024-01-01T00:00", "2024-03-11T00:00",
               "2024-04-01T00:00", "2024-07-01T00:00", "2024-10-21T00:00");
}

TEST(feb29_and_leap_years)
{
    ASSERT_SEQ("0 0 29 2 *", NULL, "2024-03-01T00:00", "2028-02-29T00:00", "2032-02-29T00:00");
    ASSERT_SEQ("0 0 29 2 *", NULL, "2023-06-01T00:00", "2024-02-29T00:00");
    ASSERT_TIME_EQ(prev_of("0 0 29 2 *", NULL, iso("2027-12-31T23:59")), iso("2024-02-29T00:00"));
    /* 2100 is not a leap year; 2096 is */
    ASSERT_TIME_EQ(prev_of("0 0 29 2 *", NULL, iso("2101-01-01T00:00")), iso("2096-02-29T00:00"));
    ASSERT_TIME_EQ(next_of("0 0 29 2 *", NULL, iso("2099-06-01T00:00")), iso("2104-02-29T00:00"));
    /* Feb 29, or a Sunday in February */
    ASSERT_SEQ("0 0 29 2 SUN", NULL, "2024-02-24T00:00", "2024-02-25T00:00", "2024-02-29T00:00",
               "2025-02-02T00:00");
    /* the last day of February */
    ASSERT_SEQ("0 0 28,29 2 *", NULL, "2023-01-01T00:00", "2023-02-28T00:00", "2024-02-28T00:00",
               "2024-02-29T00:00", "2025-02-28T00:00");
}

TEST(no_match)
{
    cron_expr *c = NULL;
    char err[256] = "";
    time_t t = 0;
    ASSERT_EQ(cron_parse("0 0 30 2 *", &c, err, sizeof err), 0);
    ASSERT_EQ(cron_next(c, NULL, iso("2024-01-01T00:00"), &t, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "no match within 5 years");
    ASSERT_EQ(cron_prev(c, "Europe/Berlin", iso("2024-01-01T00:00"), &t, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "no match within 5 years");
    cron_free(c);
    /* 2100 is skipped and 2104 is more than 5 years after 2097 */
    ASSERT_EQ(cron_parse("0 0 29 2 *", &c, err, sizeof err), 0);
    ASSERT_EQ(cron_next(c, NULL, iso("2097-01-01T00:00"), &t, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "no match within 5 years");
    cron_free(c);
}

TEST(prev_at_or_before)
{
    ASSERT_TIME_EQ(prev_of("0 * * * *", NULL, iso("2024-01-01T10:00:00")),
                   iso("2024-01-01T10:00:00"));
    ASSERT_TIME_EQ(prev_of("0 * * * *", NULL, iso("2024-01-01T10:59:59")),
                   iso("2024-01-01T10:00:00"));
    ASSERT_TIME_EQ(prev_of("0 * * * *", NULL, iso("2024-01-01T09:59:59")),
                   iso("2024-01-01T09:00:00"));
    ASSERT_TIME_EQ(prev_of("* * * * *", NULL, iso("2024-01-01T00:00:30")),
                   iso("2024-01-01T00:00:00"));
    ASSERT_TIME_EQ(prev_of("@monthly", NULL, iso("2024-03-15T00:00")), iso("2024-03-01T00:00"));
    ASSERT_TIME_EQ(prev_of("@yearly", NULL, iso("2024-01-01T00:00")), iso("2024-01-01T00:00"));
    ASSERT_TIME_EQ(prev_of("@yearly", NULL, iso("2023-12-31T23:59:59")), iso("2023-01-01T00:00"));
    ASSERT_TIME_EQ(prev_of("0 0 13 * FRI", NULL, iso("2024-10-16T00:00")), iso("2024-10-13T00:00"));
    ASSERT_TIME_EQ(prev_of("0 9 * * MON-FRI", NULL, iso("2024-01-08T08:00")),
                   iso("2024-01-05T09:00"));
    /* instants before 1970 work too */
    ASSERT_TIME_EQ(prev_of("@daily", NULL, iso("1969-12-31T12:00")), iso("1969-12-31T00:00"));
    ASSERT_TIME_EQ(next_of("@daily", NULL, iso("1969-12-31T12:00")), iso("1970-01-01T00:00"));
}

/* ---- time zones ------------------------------------------------------------ */

TEST(zone_offsets)
{
    /* Asia/Kolkata is +05:30 all year */
    ASSERT_SEQ("0 9 * * *", "Asia/Kolkata", "2024-01-01T00:00", "2024-01-01T03:30",
               "2024-01-02T03:30");
    ASSERT_SEQ("@daily", "Asia/Kolkata", "2024-01-01T00:00", "2024-01-01T18:30",
               "2024-01-02T18:30");
    ASSERT_SEQ("30 * * * *", "Asia/Kolkata", "2024-01-01T00:10", "2024-01-01T01:00",
               "2024-01-01T02:00");
    ASSERT_SEQ("0 0 1 * *", "Asia/Kolkata", "2024-01-01T00:00", "2024-01-31T18:30",
               "2024-02-29T18:30");
    /* New York: EST -5 in winter, EDT -4 in summer */
    ASSERT_SEQ("0 9 * * *", "America/New_York", "2024-01-15T00:00", "2024-01-15T14:00");
    ASSERT_SEQ("0 9 * * *", "America/New_York", "2024-07-15T00:00", "2024-07-15T13:00");
    /* Berlin: CET +1 in winter, CEST +2 in summer; the local Monday starts
     * on Sunday in UTC */
    ASSERT_SEQ("0 0 * * MON", "Europe/Berlin", "2024-01-01T00:00", "2024-01-07T23:00");
    ASSERT_SEQ("0 0 * * MON", "Europe/Berlin", "2024-07-01T00:00", "2024-07-07T22:00");
    ASSERT_SEQ("@yearly", "Europe/Berlin", "2024-06-01T00:00", "2024-12-31T23:00");
    ASSERT_SEQ("@yearly", "America/New_York", "2024-06-01T00:00", "2025-01-01T05:00");
}

TEST(unknown_zone)
{
    static const char *bad[] = {"Mars/Olympus_Mons", "Europe/Berlinn",
                                "../../etc/passwd",  "/usr/share/zoneinfo/UTC",
                                "Europe/../UTC",     "America",
                                "zone.tab",          "leapseconds" /* a file, not TZif */,
                                "Europe/Berlin ",    "right/UTC",
                                "Europe/Berlin\n"};
    cron_expr *c = NULL;
    char err[256];
    time_t t = 0;
    ASSERT_EQ(cron_parse("@daily", &c, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        ASSERT_EQ(cron_next(c, bad[i], iso("2024-01-01T00:00"), &t, err, sizeof err), -1);
        ASSERT_CONTAINS(err, "unknown time zone");
        ASSERT_CONTAINS(err, bad[i]);
        err[0] = 0;
        ASSERT_EQ(cron_prev(c, bad[i], iso("2024-01-01T00:00"), &t, err, sizeof err), -1);
        ASSERT_CONTAINS(err, "unknown time zone");
    }
    /* valid names still work after a rejected one, and UTC spellings agree */
    ASSERT_EQ(cron_next(c, "UTC", iso("2024-01-01T10:00"), &t, err, sizeof err), 0);
    ASSERT_TIME_EQ(t, iso("2024-01-02T00:00"));
    ASSERT_EQ(cron_next(c, "Etc/UTC", iso("2024-01-01T10:00"), &t, err, sizeof err), 0);
    ASSERT_TIME_EQ(t, iso("2024-01-02T00:00"));
    ASSERT_EQ(cron_next(c, "Europe/Berlin", iso("2024-01-01T10:00"), &t, err, sizeof err), 0);
    ASSERT_TIME_EQ(t, iso("2024-01-01T23:00"));
    cron_free(c);
}

TEST(time_out_of_range)
{
    cron_expr *c = NULL;
    char err[256] = "";
    time_t t = 0;
    ASSERT_EQ(cron_parse("@daily", &c, err, sizeof err), 0);
    ASSERT_EQ(cron_next(c, NULL, (time_t)INT64_MAX, &t, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "out of range");
    ASSERT_EQ(cron_prev(c, "Europe/Berlin", (time_t)INT64_MIN, &t, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "out of range");
    cron_free(c);
}

/* ---- DST ------------------------------------------------------------------- *
 * New York 2024-03-10: 02:00 EST -> 03:00 EDT at 07:00Z; 02:00-02:59 does
 * not exist. 2024-11-03: 02:00 EDT -> 01:00 EST at 06:00Z; 01:00-01:59
 * happens twice. Berlin 2024-03-31: 02:00 CET -> 03:00 CEST at 01:00Z.
 * 2024-10-27: 03:00 CEST -> 02:00 CET at 01:00Z; 02:00-02:59 twice.
 * A missing wall time fires at the first instant after the gap (03:00 local);
 * a repeated one fires once, at its first occurrence. */

TEST(dst_new_york_spring)
{
    const char *ny = "America/New_York";
    ASSERT_SEQ("30 2 * * *", ny, "2024-03-08T12:00", "2024-03-09T07:30", "2024-03-10T07:00",
               "2024-03-11T06:30");
    ASSERT_SEQ("0 2 * * *", ny, "2024-03-08T12:00", "2024-03-09T07:00", "2024-03-10T07:00",
               "2024-03-11T06:00");
    ASSERT_SEQ("0 * * * *", ny, "2024-03-10T05:00", "2024-03-10T06:00", "2024-03-10T07:00",
               "2024-03-10T08:00", "2024-03-10T09:00");
    ASSERT_SEQ("30 * * * *", ny, "2024-03-10T05:00", "2024-03-10T05:30", "2024-03-10T06:30",
               "2024-03-10T07:00", "2024-03-10T07:30", "2024-03-10T08:30");
    /* every 15 minutes of the missing hour collapse into one firing at 03:00 */
    ASSERT_SEQ("*/15 2 * * *", ny, "2024-03-10T06:00", "2024-03-10T07:00", "2024-03-11T06:00");
    ASSERT_SEQ("0 2,3 * * *", ny, "2024-03-10T06:00", "2024-03-10T07:00", "2024-03-11T06:00");
    ASSERT_SEQ("30 2,3 * * *", ny, "2024-03-10T06:00", "2024-03-10T07:00", "2024-03-10T07:30",
               "2024-03-11T06:30");
    /* at or right before the gap's end */
    ASSERT_TIME_EQ(next_of("30 2 * * *", ny, iso("2024-03-10T06:59:59")), iso("2024-03-10T07:00"));
    ASSERT_TIME_EQ(next_of("30 2 * * *", ny, iso("2024-03-10T07:00")), iso("2024-03-11T06:30"));
    ASSERT_TIME_EQ(prev_of("30 2 * * *", ny, iso("2024-03-10T07:00")), iso("2024-03-10T07:00"));
    ASSERT_TIME_EQ(prev_of("30 2 * * *", ny, iso("2024-03-10T06:59:59")), iso("2024-03-09T07:30"));
}

TEST(dst_new_york_fall)
{
    const char *ny = "America/New_York";
    ASSERT_SEQ("30 2 * * *", ny, "2024-11-01T12:00", "2024-11-02T06:30", "2024-11-03T07:30",
               "2024-11-04T07:30");
    ASSERT_SEQ("0 2 * * *", ny, "2024-11-01T12:00", "2024-11-02T06:00", "2024-11-03T07:00",
               "2024-11-04T07:00");
    /* 01:30 happens at 05:30Z (EDT) and 06:30Z (EST): only the first fires */
    ASSERT_SEQ("30 1 * * *", ny, "2024-11-02T12:00", "2024-11-03T05:30", "2024-11-04T06:30");
    ASSERT_SEQ("0 * * * *", ny, "2024-11-03T03:00", "2024-11-03T04:00", "2024-11-03T05:00",
               "2024-11-03T07:00", "2024-11-03T08:00");
    ASSERT_SEQ("30 * * * *", ny, "2024-11-03T03:00", "2024-11-03T03:30", "2024-11-03T04:30",
               "2024-11-03T05:30", "2024-11-03T07:30", "2024-11-03T08:30");
    ASSERT_SEQ("*/20 1 * * *", ny, "2024-11-03T04:00", "2024-11-03T05:00", "2024-11-03T05:20",
               "2024-11-03T05:40", "2024-11-04T06:00");
    /* asked from inside the second 01:xx */
    ASSERT_TIME_EQ(next_of("30 1 * * *", ny, iso("2024-11-03T06:00")), iso("2024-11-04T06:30"));
    ASSERT_TIME_EQ(next_of("0 * * * *", ny, iso("2024-11-03T06:10")), iso("2024-11-03T07:00"));
    ASSERT_TIME_EQ(next_of("* * * * *", ny, iso("2024-11-03T06:10")), iso("2024-11-03T07:00"));
    ASSERT_TIME_EQ(next_of("* * * * *", ny, iso("2024-11-03T05:58:10")), iso("2024-11-03T05:59"));
    ASSERT_TIME_EQ(next_of("* * * * *", ny, iso("2024-11-03T05:59")), iso("2024-11-03T07:00"));
    ASSERT_TIME_EQ(prev_of("30 1 * * *", ny, iso("2024-11-03T06:45")), iso("2024-11-03T05:30"));
    ASSERT_TIME_EQ(prev_of("30 1 * * *", ny, iso("2024-11-03T06:30")), iso("2024-11-03T05:30"));
    ASSERT_TIME_EQ(prev_of("0 * * * *", ny, iso("2024-11-03T06:59")), iso("2024-11-03T05:00"));
    ASSERT_TIME_EQ(prev_of("45 1 * * *", ny, iso("2024-11-03T06:10")), iso("2024-11-03T05:45"));
    ASSERT_TIME_EQ(prev_of("* * * * *", ny, iso("2024-11-03T06:59:30")), iso("2024-11-03T05:59"));
}

TEST(dst_berlin_spring)
{
    const char *be = "Europe/Berlin";
    ASSERT_SEQ("30 2 * * *", be, "2024-03-29T12:00", "2024-03-30T01:30", "2024-03-31T01:00",
               "2024-04-01T00:30");
    ASSERT_SEQ("0 2 * * *", be, "2024-03-29T12:00", "2024-03-30T01:00", "2024-03-31T01:00",
               "2024-04-01T00:00");
    ASSERT_SEQ("0 * * * *", be, "2024-03-30T23:00", "2024-03-31T00:00", "2024-03-31T01:00",
               "2024-03-31T02:00");
    ASSERT_SEQ("30 * * * *", be, "2024-03-30T23:00", "2024-03-30T23:30", "2024-03-31T00:30",
               "2024-03-31T01:00", "2024-03-31T01:30", "2024-03-31T02:30");
    ASSERT_TIME_EQ(prev_of("30 2 * * *", be, iso("2024-03-31T00:59:59")), iso("2024-03-30T01:30"));
}

TEST(dst_berlin_fall)
{
    const char *be = "Europe/Berlin";
    ASSERT_SEQ("30 2 * * *", be, "2024-10-25T12:00", "2024-10-26T00:30", "2024-10-27T00:30",
               "2024-10-28T01:30");
    ASSERT_SEQ("0 2 * * *", be, "2024-10-25T12:00", "2024-10-26T00:00", "2024-10-27T00:00",
               "2024-10-28T01:00");
    ASSERT_SEQ("0 * * * *", be, "2024-10-26T22:00", "2024-10-26T23:00", "2024-10-27T00:00",
               "2024-10-27T02:00", "2024-10-27T03:00");
    ASSERT_SEQ("30 * * * *", be, "2024-10-26T22:00", "2024-10-26T22:30", "2024-10-26T23:30",
               "2024-10-27T00:30", "2024-10-27T02:30", "2024-10-27T03:30");
    ASSERT_TIME_EQ(prev_of("30 2 * * *", be, iso("2024-10-27T01:45")), iso("2024-10-27T00:30"));
    ASSERT_TIME_EQ(next_of("30 2 * * *", be, iso("2024-10-27T01:00")), iso("2024-10-28T01:30"));
}

/* ---- against a brute-force evaluator ------------------------------------- *
 * From the definition, one minute at a time: instant t (on a whole minute)
 * fires when its wall time matches and no earlier instant had that wall
 * time, or when t ends a gap that swallowed a matching wall time. Matching is
 * done here with a second, naive reading of the fields (sets of numbers). */

typedef struct naive {
    int min[60], hour[24], dom[32], mon[13], dow[8], dom_star, dow_star;
} naive;

static void naive_field(const char *text, int *set, int lo, int hi)
{
    /* only the syntax used by the random expressions below: * a a-b and
     * steps, comma lists */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        int a = lo, b = hi, step = 1;
        char *slash = strchr(item, '/');
        if (slash)
            step = atoi(slash + 1);
        if (item[0] != '*') {
            a = b = atoi(item);
            char *dash = strchr(item, '-');
            if (dash && (!slash || dash < slash))
                b = atoi(dash + 1);
        }
        for (int v = a; v <= b; v += step)
            set[v] = 1;
    }
}

static int naive_matches(const naive *n, const struct tm *tm)
{
    int dom = n->dom[tm->tm_mday], dow = n->dow[tm->tm_wday] || (tm->tm_wday == 0 && n->dow[7]);
    int day = (n->dom_star || n->dow_star) ? dom && dow : dom || dow;
    return n->min[tm->tm_min] && n->hour[tm->tm_hour] && n->mon[tm->tm_mon + 1] && day;
}

static void local_tm(time_t t, struct tm *tm)
{
    localtime_r(&t, tm);
}

/* TZ must already be set for localtime_r. */
static int naive_fires(const naive *n, time_t t)
{
    struct tm now, before;
    local_tm(t, &now);
    local_tm(t - 60, &before);
    long jump = (long)(now.tm_gmtoff - before.tm_gmtoff);
    if (naive_matches(n, &now)) {
        /* an earlier occurrence of the same wall time is `back` seconds
         * earlier, where back is a fall-back jump within the last day */
        struct tm day_ago;
        local_tm(t - 86400, &day_ago);
        long back = (long)(day_ago.tm_gmtoff - now.tm_gmtoff);
        if (back <= 0)
            return 1;
        struct tm earlier;
        local_tm(t - back, &earlier);
        return !(earlier.tm_gmtoff - now.tm_gmtoff == back);
    }
    if (jump > 0) {
        /* t ends a gap: wall times (before+60 .. now) were skipped */
        for (long s = 60; s < jump + 60; s += 60) {
            time_t skipped = t - 60 + s; /* read with the old offset */
            struct tm w;
            time_t as_utc = skipped + before.tm_gmtoff;
            gmtime_r(&as_utc, &w);
            if (naive_matches(n, &w))
                return 1;
        }
    }
    return 0;
}

static void set_tz(const char *tz)
{
    if (tz)
        setenv("TZ", tz, 1);
    else
        setenv("TZ", "UTC", 1);
    tzset();
}

static void brute_check(const char *tz, const char *f[5], time_t from, int minutes)
{
    char expr[256];
    snprintf(expr, sizeof expr, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
    naive n;
    memset(&n, 0, sizeof n);
    naive_field(f[0], n.min, 0, 59);
    naive_field(f[1], n.hour, 0, 23);
    naive_field(f[2], n.dom, 1, 31);
    naive_field(f[3], n.mon, 1, 12);
    naive_field(f[4], n.dow, 0, 7);
    n.dom_star = f[2][0] == '*';
    n.dow_star = f[4][0] == '*';

    cron_expr *c = NULL;
    char err[256];
    if (cron_parse(expr, &c, err, sizeof err) < 0) {
        TEST_FAIL_AT("%s: %s", expr, err);
        return;
    }
    /* the brute force first, with TZ set once for the whole window */
    char *fires = calloc((size_t)minutes, 1);
    set_tz(tz);
    for (int i = 0; i < minutes; i++)
        fires[i] = (char)naive_fires(&n, from + 60 * (time_t)i);

    time_t last = -1; /* the last firing seen by the brute force */
    for (int i = 0; i < minutes; i++) {
        time_t t = from + 60 * (time_t)i, got = 0;
        char a[32], b[32], w[32];
        /* prev at t-1 must be the last firing seen */
        if (last >= 0 && (cron_prev(c, tz, t - 1, &got, err, sizeof err) < 0 || got != last)) {
            TEST_FAIL_AT("%s in %s: prev(%s - 1s) = %s, brute force %s", expr, tz ? tz : "UTC",
                         fmt_utc(t, a, sizeof a), fmt_utc(got, b, sizeof b),
                         fmt_utc(last, w, sizeof w));
            break;
        }
        if (fires[i]) {
            /* next from the last firing (or from just before t) must be t */
            time_t after = last >= 0 ? last : t - 1;
            if (cron_next(c, tz, after, &got, err, sizeof err) < 0 || got != t) {
                TEST_FAIL_AT("%s in %s: next after %s = %s, brute force %s", expr, tz ? tz : "UTC",
                             fmt_utc(after, a, sizeof a), fmt_utc(got, b, sizeof b),
                             fmt_utc(t, w, sizeof w));
                break;
            }
            last = t;
        }
    }
    free(fires);
    cron_free(c);
}

TEST(brute_force_dst_days)
{
    static const char *exprs[][5] = {
        {"*", "*", "*", "*", "*"},
        {"0", "*", "*", "*", "*"},
        {"30", "*", "*", "*", "*"},
        {"*/15", "*", "*", "*", "*"},
        {"30", "2", "*", "*", "*"},
        {"0", "2", "*", "*", "*"},
        {"15,45", "1-3", "*", "*", "*"},
        {"59", "1", "*", "*", "*"},
        {"0", "0-3/1", "*", "*", "*"},
        {"*/7", "2", "*", "*", "*"},
        {"0", "3", "*", "*", "*"},
        {"10", "2", "*", "*", "0"},
        {"5", "1,2", "3,10,27,31", "*", "1"},
        {"0", "2", "*/2", "*", "*"},
    };
    static const struct {
        const char *tz, *day;
    } days[] = {
        {"America/New_York", "2024-03-09T12:00"},
        {"America/New_York", "2024-11-02T12:00"},
        {"Europe/Berlin", "2024-03-30T12:00"},
        {"Europe/Berlin", "2024-10-26T12:00"},
        {"Australia/Lord_Howe", "2024-04-06T00:00"}, /* 30-minute shifts */
        {"Australia/Lord_Howe", "2024-10-05T00:00"},
        {"Asia/Kolkata", "2024-01-01T00:00"},
        {"America/Havana", "2024-03-09T12:00"}, /* midnight goes missing */
        {"America/Havana", "2024-11-02T12:00"},
        {"Pacific/Apia", "2011-12-29T00:00"}, /* 2011-12-30 never happened there */
        {NULL, "2024-02-28T00:00"},
    };
    for (size_t d = 0; d < sizeof days / sizeof days[0]; d++)
        for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++)
            brute_check(days[d].tz, exprs[e], iso(days[d].day), 36 * 60);
}

TEST(brute_force_random)
{
    /* random expressions over random two-week windows, UTC and zones */
    static const char *tzs[] = {NULL, "America/New_York", "Europe/Berlin", "Asia/Kolkata"};
    unsigned seed = 12345;
    char f[5][64];
    const char *fp[5];
    static const int lo[5] = {0, 0, 1, 1, 0}, hi[5] = {59, 23, 31, 12, 7};
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 5; i++) {
            seed = seed * 1103515245 + 12345;
            int kind = (int)(seed >> 16) % 5, span = hi[i] - lo[i] + 1;
            seed = seed * 1103515245 + 12345;
            int a = lo[i] + (int)(seed >> 16) % span;
            seed = seed * 1103515245 + 12345;
            int b = a + (int)(seed >> 16) % (hi[i] - a + 1);
            seed = seed * 1103515245 + 12345;
            int step = 1 + (int)(seed >> 16) % (i == 0 ? 20 : 4);
            if (kind == 0)
                snprintf(f[i], sizeof f[i], "*");
            else if (kind == 1)
                snprintf(f[i], sizeof f[i], "*/%d", step);
            else if (kind == 2)
                snprintf(f[i], sizeof f[i], "%d-%d/%d", a, b, step);
            else if (kind == 3)
                snprintf(f[i], sizeof f[i], "%d,%d", a, b);
            else
                snprintf(f[i], sizeof f[i], "%d", a);
            fp[i] = f[i];
        }
        seed = seed * 1103515245 + 12345;
        /* 2024 windows, with the DST days more likely */
        static const char *starts[] = {"2024-03-05T00:00", "2024-10-24T00:00", "2024-03-28T00:00",
                                       "2024-06-01T00:00", "2024-10-31T00:00", "2024-02-20T00:00"};
        const char *start = starts[(seed >> 16) % 6];
        brute_check(tzs[round % 4], fp, iso(start), 14 * 24 * 60);
    }
}

/* ---- speed ----------------------------------------------------------------- */

TEST(rare_schedules_are_fast)
{
    /* Jumping by month/day/hour keeps a yearly or leap-day search to a few
     * hundred steps; minute by minute it would be millions. */
    static const char *exprs[] = {"0 0 1 1 *", "0 0 29 2 *", "59 23 31 12 *", "0 0 29 2 MON"};
    static const char *tzs[] = {NULL, "Europe/Berlin", "America/New_York"};
    clock_t start = clock();
    int calls = 0;
    for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
        cron_expr *c = NULL;
        char err[256];
        ASSERT_EQ(cron_parse(exprs[e], &c, err, sizeof err), 0);
        for (size_t z = 0; z < 3; z++) {
            for (int i = 0; i < 100; i++, calls += 2) {
                /* starting points spread over four years */
                time_t t = iso("2023-03-02T00:00") + (time_t)i * 13 * 86400 + i * 3607;
                time_t n = 0, p = 0;
                ASSERT_EQ(cron_next(c, tzs[z], t, &n, err, sizeof err), 0);
                ASSERT_EQ(cron_prev(c, tzs[z], n, &p, err, sizeof err), 0);
                ASSERT_TIME_EQ(p, n);
            }
        }
        cron_free(c);
    }
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    /* generous even under sanitizers; a minute walk would take minutes */
    if (secs > 5.0)
        TEST_FAIL_AT("%d calls took %.2f s", calls, secs);
}

/* `test_cron --next`, for tests/cron_next_check.sh: reads lines
 * "expr<TAB>tz<TAB>after<TAB>n" (after in unix seconds, tz "" for UTC) and
 * prints, per line, the next n fire times after `after` in unix seconds, or
 * "error: <why>", so that dagq.schedule_next and dagq.cron_fires can be held
 * to cron_next. */
static int print_next(void)
{
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        char *expr = line, *tz = strchr(expr, '\t'), *after = tz ? strchr(tz + 1, '\t') : NULL;
        char *count = after ? strchr(after + 1, '\t') : NULL;
        if (!count) {
            printf("error: malformed line\n");
            continue;
        }
        *tz++ = *after++ = *count++ = 0;
        cron_expr *c = NULL;
        char err[256];
        time_t t = (time_t)strtoll(after, NULL, 10);
        if (cron_parse(expr, &c, err, sizeof err) < 0) {
            printf("error: %s\n", err);
            continue;
        }
        int n = atoi(count);
        for (int i = 0; i < n; i++) {
            if (cron_next(c, *tz ? tz : NULL, t, &t, err, sizeof err) < 0) {
                printf("%serror: %s", i ? " " : "", err);
                break;
            }
            printf("%s%lld", i ? " " : "", (long long)t);
        }
        printf("\n");
        cron_free(c);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--next") == 0)
        return print_next();
    RUN(parse_valid);
    RUN(parse_errors);
    RUN(every_and_once);
    RUN(parse_error_buffer);
    RUN(cases_file);
    RUN(next_basic_utc);
    RUN(macros);
    RUN(dom_dow_or_rule);
    RUN(feb29_and_leap_years);
    RUN(no_match);
    RUN(prev_at_or_before);
    RUN(zone_offsets);
    RUN(unknown_zone);
    RUN(time_out_of_range);
    RUN(dst_new_york_spring);
    RUN(dst_new_york_fall);
    RUN(dst_berlin_spring);
    RUN(dst_berlin_fall);
    RUN(brute_force_dst_days);
    RUN(brute_force_random);
    RUN(rare_schedules_are_fast);
    return TEST_DONE();
}
