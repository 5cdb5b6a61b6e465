/* metrics — what a dagq daemon tells its operator: a registry of Prometheus
 * counters, gauges and histograms, and the health of the process's two
 * servers (PostgreSQL and the broker). The collector that reads the scaling
 * figures (backlog per worker group) from the metastore and the broker is
 * backlog_metrics.h, so this header needs neither libpq nor queue.h.
 *
 * Threads: every function may be called from any thread; the registry is
 * guarded by one mutex (the HTTP server's thread renders while the main loop
 * and the worker's consumer threads write). Every function taking a metrics
 * does nothing when it is NULL, so a daemon without --http-port calls the
 * same hooks at no cost.
 *
 * Metric names (all prefixed dagq_) are listed with their help text in
 * metrics.c; docs/operating.md describes them for operators. */
#ifndef DAGQ_METRICS_H
#define DAGQ_METRICS_H

#include <stddef.h>

typedef struct metrics metrics; /* opaque */

/* The servers whose loss /healthz reports. */
#define METRICS_DATABASE 0
#define METRICS_BROKER 1

/* program: "dagq-scheduler" or "dagq-worker" (copied). Free with metrics_free. */
metrics *metrics_new(const char *program);
void metrics_free(metrics *m); /* NULL does nothing */

/* Adds v to the counter name{labels}. labels is a Prometheus label list
 * without braces, e.g. `state="success"`, or NULL; values must already be
 * escaped (metrics_label_escape). */
void metrics_counter_add(metrics *m, const char *name, const char *labels, double v);
void metrics_gauge_set(metrics *m, const char *name, const char *labels, double v);
/* One observation of a histogram in seconds (buckets 1 ms .. 10 s). */
void metrics_histogram_observe(metrics *m, const char *name, const char *labels, double v);

/* A label value escaped for the text format (\\, \", \n) into buf. */
void metrics_label_escape(const char *s, char *buf, size_t len);

/* Shorthands for the figures the daemons count. */
/* n more task instances of group moved to state */
void metrics_ti_state(metrics *m, const char *group, const char *state, long long n);
void metrics_run_finished(metrics *m, const char *state);
void metrics_worker_slots(metrics *m, int busy, int slots);

/* Tells the registry that server (METRICS_DATABASE or METRICS_BROKER) was
 * reached (up = 1) or found unreachable (up = 0) now. A change from down to
 * up after the first up counts one reconnect (dagq_reconnects_total). */
void metrics_server_up(metrics *m, int server, int up);
/* A blocking call to the server began (1) or ended (0). One in flight for
 * longer than the health timeout fails metrics_healthy as the server being
 * unreachable: through PgBouncer, a PostgreSQL that is down leaves the
 * worker's connection up and its call queued, not failed. */
void metrics_server_call(metrics *m, int server, int begin);

/* Scheduler: the outcome of a pass. ok = 0 counts a failed pass and, when
 * passes keep failing for longer than the health timeout, makes
 * metrics_healthy fail with why (the last error, already redacted). */
void metrics_pass_result(metrics *m, int ok, const char *why);

/* 1 when no server has been down for longer than timeout_s, and scheduling
 * passes have not been failing for longer than that, else 0 with the reason
 * ("database unreachable for 12s") in reason. */
int metrics_healthy(metrics *m, double timeout_s, char *reason, size_t len);

/* Sets every gauge called name, whatever its labels, to 0 (groups that went
 * away then read 0, not their last figure). */
void metrics_gauge_zero(metrics *m, const char *name);

/* The registry in Prometheus text format (version 0.0.4). Caller frees with
 * mem_free. */
char *metrics_render(metrics *m);

#endif
