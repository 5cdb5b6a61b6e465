/* clock — the monotonic clock every part of dagq measures intervals and
 * deadlines with (CLOCK_MONOTONIC: never jumps with the wall clock). For
 * timestamps that are written down (logs, the metastore) use the wall clock
 * instead. */
#ifndef DAGQ_CLOCK_H
#define DAGQ_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Seconds since an arbitrary fixed point, with nanosecond resolution. */
double clock_now_s(void);

/* Milliseconds since the same point. */
int64_t clock_now_ms(void);

/* The CLOCK_MONOTONIC time ms milliseconds from now, for
 * pthread_cond_timedwait on a condition variable whose clock is
 * CLOCK_MONOTONIC (ms <= 0: now). */
struct timespec clock_after_ms(int64_t ms);

/* Sleeps ms milliseconds, going on after signals. */
void clock_sleep_ms(int ms);

#endif
