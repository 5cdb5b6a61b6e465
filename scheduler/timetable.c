#include "timetable.h"

#include "cron.h"

#include <stdio.h>

/* @every and @once are measured from start_date, else from created_at. */
static long long timetable_anchor(const timetable_dag *d)
{
    return d->start_date ? d->start_date : d->created_at;
}

/* a / b rounded down, for b > 0 and any a. */
static long long timetable_floor_div(long long a, long long b)
{
    return a / b - (a % b != 0 && a < 0);
}

/* @every p: fires at anchor + k * p. The interval to run next at `now`
 * when nothing is stored: the first one (catchup), or the latest complete
 * one (without catchup, once the first has ended). */
static void timetable_every_next(const timetable_dag *d, long long p, long long now,
                                 long long *start, long long *end)
{
    long long a = timetable_anchor(d);
    long long le = a + timetable_floor_div(now - a, p) * p; /* the last fire at or before now */
    if (d->next_start || d->next_end) {
        *start = d->next_start;
        *end = d->next_end;
        if (!d->catchup && *end <= now && le - p > *start) {
            *start = le - p;
            *end = le;
        }
        return;
    }
    *start = a;
    *end = a + p;
    if (!d->catchup && le - p >= a) {
        *start = le - p;
        *end = le;
    }
}

int timetable_after(const timetable_dag *d, long long end, long long *nstart, long long *nend,
                    char *errbuf, size_t errlen)
{
    cron_expr *c;
    if (cron_parse(d->schedule, &c, errbuf, errlen))
        return -1;
    int rc = 0;
    *nstart = end;
    if (cron_get_kind(c) == CRON_ONCE) {
        *nend = TIMETABLE_DONE; /* its one interval is behind it */
    } else if (cron_get_kind(c) == CRON_EVERY) {
        *nend = end + cron_every_seconds(c);
    } else {
        time_t n;
        rc = cron_next(c, d->timezone, (time_t)end, &n, errbuf, errlen) ? -1 : 0;
        *nend = (long long)n;
    }
    cron_free(c);
    if (rc)
        return -1;
    if (d->end_date && *nstart > d->end_date)
        *nend = TIMETABLE_DONE;
    return 0;
}

/* A cron schedule's next interval (see timetable_next). */
static int timetable_cron_next(const timetable_dag *d, const cron_expr *c, long long now,
                               long long *start, long long *end, char *errbuf, size_t errlen)
{
    time_t s = 0, e = 0;
    if (d->next_start || d->next_end) {
        s = (time_t)d->next_start;
        e = (time_t)d->next_end;
        if (!d->catchup && e <= now) {
            /* the scheduler was away: without catchup, jump to the latest
             * complete interval */
            time_t le, ls;
            if (cron_prev(c, d->timezone, (time_t)now, &le, errbuf, errlen) == 0 &&
                cron_prev(c, d->timezone, le - 1, &ls, errbuf, errlen) == 0 && ls > s) {
                s = ls;
                e = le;
            }
        }
    } else {
        /* no interval yet: the first fire at or after base starts the first */
        long long base = timetable_anchor(d);
        time_t first_s, first_e, le, ls;
        if (cron_next(c, d->timezone, (time_t)(base - 1), &first_s, errbuf, errlen) ||
            cron_next(c, d->timezone, first_s, &first_e, errbuf, errlen))
            return -1;
        if (!d->catchup && cron_prev(c, d->timezone, (time_t)now, &le, errbuf, errlen) == 0 &&
            cron_prev(c, d->timezone, le - 1, &ls, errbuf, errlen) == 0 && ls >= first_s) {
            s = ls; /* without catchup: the latest complete interval */
            e = le;
        } else {
            s = first_s;
            e = first_e;
        }
    }
    *start = (long long)s;
    *end = (long long)e;
    return 0;
}

int timetable_next(const timetable_dag *d, long long now, long long *start, long long *end,
                   char *errbuf, size_t errlen)
{
    cron_expr *c;
    if (cron_parse(d->schedule, &c, errbuf, errlen))
        return -1;
    int rc = 0;
    switch (cron_get_kind(c)) {
    case CRON_ONCE:
        /* one interval, [anchor, anchor]; once created, nothing is due */
        if (d->next_start || d->next_end) {
            *start = d->next_start;
            *end = d->next_end;
        } else {
            *start = *end = timetable_anchor(d);
        }
        break;
    case CRON_EVERY:
        timetable_every_next(d, cron_every_seconds(c), now, start, end);
        break;
    default:
        rc = timetable_cron_next(d, c, now, start, end, errbuf, errlen);
    }
    cron_free(c);
    if (rc)
        return -1;
    if (d->end_date && *start > d->end_date)
        *end = TIMETABLE_DONE;
    return 0;
}
