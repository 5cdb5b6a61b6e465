/* cron — 5-field cron expressions evaluated in an IANA time zone.
 *
 * Fields: minute hour day-of-month month day-of-week, each `*`, a number, a
 * range `a-b`, a step `*\/n` or `a-b/n`, or a comma list of those; month names
 * JAN..DEC and day names SUN..SAT (case-insensitive); day-of-week 0 or 7 is
 * Sunday. As in Vixie cron, when both day-of-month and day-of-week are
 * restricted (neither starts with `*`), a day matches if either matches.
 * Macros: @hourly @daily (= @midnight) @weekly @monthly @yearly (= @annually).
 *
 * Two more schedules parse here but are not cron expressions: `@every
 * <duration>` (Dkron's; e.g. `@every 1h30m`: units d h m s, largest first,
 * 1s to 365d) fires every duration measured from an anchor, the DAG's
 * start_date, and `@once` fires once, at the anchor. cron_get_kind tells
 * them apart; cron_next and cron_prev refuse them (the scheduler's
 * timetable evaluates them).
 *
 * Times are matched against wall-clock time in the time zone. Across DST:
 * a wall-clock time that does not exist (spring forward) fires at the first
 * instant after the gap (02:30 in a 02:00->03:00 gap fires at 03:00 local);
 * a wall-clock time that happens twice (fall back) fires once, at the first
 * occurrence. */
#ifndef DAGQ_CRON_H
#define DAGQ_CRON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct cron_expr cron_expr; /* opaque */

typedef enum cron_kind {
    CRON_CRON,  /* five fields or a macro that stands for them */
    CRON_EVERY, /* @every <duration> */
    CRON_ONCE,  /* @once */
} cron_kind;

/* Parses expr. Returns 0 and a new *out (free with cron_free), or -1 with the
 * problem in errbuf, naming the field: "hour: 25 is out of range 0-23". */
/* Days since 1970-01-01 to a proleptic Gregorian date (y, m 1-12, d 1-31),
 * with no time zone and no range limit (Hinnant's days_to_civil). */
void cron_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

int cron_parse(const char *expr, cron_expr **out, char *errbuf, size_t errlen);
void cron_free(cron_expr *c);

cron_kind cron_get_kind(const cron_expr *c);
/* The period of an @every schedule in seconds (0 for the other kinds). */
long long cron_every_seconds(const cron_expr *c);

/* The first instant strictly after `after` (unix seconds) at which c fires in
 * time zone tz (an IANA name such as "Europe/Berlin"; NULL or "" means UTC).
 * Returns 0 and *next, or -1 with the reason in errbuf (unknown time zone, no
 * match within 5 years, e.g. "0 0 30 2 *"). Not thread-safe (it may switch the
 * process's TZ): call it from one thread. */
int cron_next(const cron_expr *c, const char *tz, time_t after, time_t *next, char *errbuf,
              size_t errlen);

/* The last instant at or before `at` at which c fires (same rules), used to
 * find the latest complete data interval. Returns 0 and *prev, or -1. */
int cron_prev(const cron_expr *c, const char *tz, time_t at, time_t *prev, char *errbuf,
              size_t errlen);

#endif
