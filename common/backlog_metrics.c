#include "backlog_metrics.h"

#include "clock.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>

/* The gauges per worker group, in the view's column order; the broker's
 * backlog last. */
static const char *const backlog_metrics_gauges[] = {
    "dagq_tries_queued",       "dagq_tries_ready",      "dagq_tries_running",
    "dagq_group_live_workers", "dagq_group_free_slots", "dagq_oldest_queued_try_age_seconds",
    "dagq_queue_backlog"};

static struct {
    double last; /* when it last ran (clock_now_s), 0: never */
    int failing; /* the query failed last time: warned once */
} backlog_metrics_state;

/* The broker's backlog of group into its gauge. */
static void backlog_metrics_broker(metrics *m, queue *q, const char *group, const char *labels)
{
    char err[512], qe[600];
    int64_t backlog = 0;
    int rc = queue_backlog(q, group, &backlog, err, sizeof err);
    if (rc == QUEUE_OK) {
        metrics_server_up(m, METRICS_BROKER, 1);
        metrics_gauge_set(m, "dagq_queue_backlog", labels, (double)backlog);
    } else if (rc == QUEUE_ECONN) {
        metrics_server_up(m, METRICS_BROKER, 0);
    } else {
        log_debug("cannot read the broker backlog", "group=%s error=\"%s\"", group,
                  log_quote(err, qe, sizeof qe));
    }
}

int backlog_metrics_collect(metrics *m, db *d, queue *q, double every_s)
{
    if (!m || !d || !db_connected(d))
        return 0;
    double t = clock_now_s();
    if (backlog_metrics_state.last && t - backlog_metrics_state.last < every_s)
        return 0;
    backlog_metrics_state.last = t;
    char err[512], qe[600];
    PGresult *r;
    int rc = db_query(d, "metrics_backlog",
                      "SELECT worker_group, queued, ready, running, live_workers, free_slots,"
                      "       oldest_queued_age_s FROM dagq.worker_group_backlog",
                      0, NULL, &r, err, sizeof err);
    if (rc == DB_ECONN)
        return rc;
    if (rc) {
        if (!backlog_metrics_state.failing)
            log_warn("cannot read the backlog for /metrics (is the schema migrated?)",
                     "error=\"%s\"", log_quote(err, qe, sizeof qe));
        backlog_metrics_state.failing = 1;
        return 0;
    }
    backlog_metrics_state.failing = 0;
    for (size_t k = 0; k < sizeof backlog_metrics_gauges / sizeof backlog_metrics_gauges[0]; k++)
        metrics_gauge_zero(m, backlog_metrics_gauges[k]);
    for (int i = 0; i < PQntuples(r); i++) {
        const char *group = PQgetvalue(r, i, 0);
        char g[600], labels[700];
        metrics_label_escape(group, g, sizeof g);
        snprintf(labels, sizeof labels, "group=\"%s\"", g);
        for (int col = 1; col <= 6; col++)
            metrics_gauge_set(m, backlog_metrics_gauges[col - 1], labels,
                              strtod(PQgetvalue(r, i, col), NULL));
        if (q)
            backlog_metrics_broker(m, q, group, labels);
    }
    PQclear(r);
    return 0;
}
