/* scheduler — the dagq-scheduler daemon's loop: keeps a connection to the
 * metastore (LISTENing for the workers' and users' notifications) and one
 * to the broker, reconnecting both with backoff and saying so, and runs
 * scheduling passes (sched.h) when notified, when a retry or a schedule
 * comes due, and at least every poll interval. */
#ifndef DAGQ_SCHEDULER_H
#define DAGQ_SCHEDULER_H

#include "metrics.h"
#include "queue.h"
#include "sched.h"

#include <signal.h>

typedef struct scheduler_conf {
    const char *name;         /* for logs */
    const char *database_url; /* borrowed */
    const queue_conf *queue;  /* borrowed */
    sched_conf sched;         /* copied; its metrics pointer borrowed */
    int poll_interval_ms;     /* the fallback poll */
    metrics *metrics;         /* borrowed, may be NULL */
} scheduler_conf;

/* Runs until *stop is set (the pass under way finishes first). *hup is
 * cleared and logged. Returns 0, or 1 when the broker configuration is
 * rejected (a fatal error, logged). */
int scheduler_run(const scheduler_conf *conf, volatile sig_atomic_t *stop,
                  volatile sig_atomic_t *hup);

#endif
