/* timetable — which data intervals of a scheduled DAG are due.
 * Airflow's semantics: a scheduled run covers [start, end) between two
 * consecutive cron fire times, has logical_date = start, and is created once
 * end has passed. With catchup, every missed interval since start_date is
 * created in order; without it, only the latest complete one.
 *
 * `@every <duration>` fires at start_date + k * duration (created_at without
 * a start_date), with the same interval rules; `@once` has one interval,
 * [start_date, start_date], and nothing after it. The database evaluates
 * the same schedules for backfills (dagq.schedule_intervals in
 * sql/011_etl_schedules.sql), to the second. */
#ifndef DAGQ_TIMETABLE_H
#define DAGQ_TIMETABLE_H

#include <stddef.h>

typedef struct timetable_dag {
    const char *schedule; /* cron expression, macro, @every <duration> or @once */
    const char *timezone;
    long long start_date; /* unix seconds; 0 = none (then created_at counts) */
    long long end_date;   /* 0 = none */
    long long created_at;
    int catchup;
    long long next_start; /* the stored next interval; 0/0 = compute it */
    long long next_end;
} timetable_dag;

#define TIMETABLE_DONE (-1LL) /* no more intervals (past end_date) */

/* The interval the DAG should next get a run for, at time now:
 * (*start, *end). *end may be in the future (not due yet), or *end ==
 * TIMETABLE_DONE. Returns 0, or -1 with errbuf (bad schedule or time zone). */
int timetable_next(const timetable_dag *d, long long now, long long *start, long long *end,
                   char *errbuf, size_t errlen);

/* The interval after [start, end): (end, next fire after end). */
int timetable_after(const timetable_dag *d, long long end, long long *nstart, long long *nend,
                    char *errbuf, size_t errlen);

#endif
