#include "timetable.h"

#include "cron.h"

#include <stdio.h>

int timetable_after(const timetable_dag *d, long long end, long long *nstart, long long *nend,
                    char *errbuf, size_t errlen)
{
    cron_expr *c;
    if (cron_parse(d->schedule, &c, errbuf, errlen))
        return -1;
    time_t n;
    int rc = cron_next(c, d->timezone, (time_t)end, &n, errbuf, errlen);
    cron_free(c);
    if (rc)
        return -1;
    *nstart = end;
    *nend = (long long)n;
    if (d->end_date && *nstart > d->end_date)
        *nend = TIMETABLE_DONE;
    return 0;
}

int timetable_next(const timetable_dag *d, long long now, long long *start, long long *end,
                   char *errbuf, size_t errlen)
{
    cron_expr *c;
    if (cron_parse(d->schedule, &c, errbuf, errlen))
        return -1;
    int rc = -1;
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
        long long base = d->start_date ? d->start_date : d->created_at;
        time_t first_s, first_e, le, ls;
        if (cron_next(c, d->timezone, (time_t)(base - 1), &first_s, errbuf, errlen) ||
            cron_next(c, d->timezone, first_s, &first_e, errbuf, errlen))
            goto out;
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
    if (d->end_date && *start > d->end_date)
        *end = TIMETABLE_DONE;
    rc = 0;
out:
    cron_free(c);
    return rc;
}
