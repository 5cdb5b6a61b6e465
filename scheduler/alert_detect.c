#include "alert_detect.h"

#include "clock.h"
#include "db.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALERT_DETECT_EVERY_MS 1000

/* One call of dagq.alert_detect; logs what it wrote. */
static int alert_detect_once(const alert_detect_conf *c, db *d)
{
    char secs[32], err[1024], q[1024];
    snprintf(secs, sizeof secs, "%.3f", c->missing_after_s);
    const char *p[1] = {secs};
    PGresult *r;
    int rc = db_query(d, "alert_detect", "SELECT what, n FROM dagq.alert_detect($1)", 1, p, &r, err,
                      sizeof err);
    if (rc == DB_EQUERY)
        log_warn("alert detection failed; trying again", "name=%s error=\"%s\"", c->name,
                 log_quote(err, q, sizeof q));
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *what = PQgetvalue(r, i, 0);
        long long n = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        if (!strcmp(what, "pending")) {
            metrics_gauge_set(c->metrics, "dagq_alerts_pending", NULL, (double)n);
        } else if (n > 0) {
            char labels[64];
            snprintf(labels, sizeof labels, "event=\"%s\"", what);
            metrics_counter_add(c->metrics, "dagq_alert_events_detected_total", labels, (double)n);
            log_info("time-based alert events written", "name=%s event=%s count=%lld", c->name,
                     what, n);
        }
    }
    PQclear(r);
    return DB_OK;
}

void *alert_detect_main(void *arg)
{
    const alert_detect_conf *c = arg;
    db *d = db_new(c->database_url, "dagq-alert-detect");
    db_set_session_sql(d, "SET lock_timeout = '2s'");
    while (!*c->stop) {
        if (!db_connected(d) && db_ensure(d, c->stop) != DB_OK)
            continue;
        alert_detect_once(c, d);
        for (int t = 0; t < ALERT_DETECT_EVERY_MS && !*c->stop; t += 100)
            clock_sleep_ms(100);
    }
    db_free(d);
    return NULL;
}
