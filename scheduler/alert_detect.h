/* alert_detect — the detector thread of alerts.h: once a second it calls
 * dagq.alert_detect, which writes the time-based events (run_late at a
 * run's deadline, workers_missing after --workers-missing-after), each once
 * whatever number of schedulers call it, and it exports the number of
 * pending deliveries (dagq_alerts_pending). */
#ifndef DAGQ_ALERT_DETECT_H
#define DAGQ_ALERT_DETECT_H

#include "metrics.h"

typedef struct alert_detect_conf {
    const char *name;         /* for logs */
    const char *database_url; /* borrowed */
    double missing_after_s;
    metrics *metrics;   /* borrowed, may be NULL */
    volatile int *stop; /* the thread returns soon after *stop != 0 */
} alert_detect_conf;

/* The thread's body: arg is an alert_detect_conf *. Returns NULL. */
void *alert_detect_main(void *arg);

#endif
