/* backlog_metrics — the scheduler's collector of the scaling figures: reads
 * the database-side backlog (the view dagq.worker_group_backlog) and the
 * broker-side backlog (queue_backlog) of every worker group into the gauges
 * of a metrics registry. Its own module so that metrics.h, and http.h with
 * it, need neither libpq nor queue.h.
 *
 * Threads: called by one thread (the scheduler's loop). Its pacing (when it
 * last ran, whether the last query failed) is this module's, shared by every
 * registry of the process: a process has one. */
#ifndef DAGQ_BACKLOG_METRICS_H
#define DAGQ_BACKLOG_METRICS_H

#include "db.h"
#include "metrics.h"
#include "queue.h"

/* Collects at most once per every_s seconds. m, d and q are borrowed (m and
 * q may be NULL: then nothing, or no broker figures). Returns DB_ECONN when
 * the database was lost, else 0; the broker's state is reported through
 * metrics_server_up. */
int backlog_metrics_collect(metrics *m, db *d, queue *q, double every_s);

#endif
