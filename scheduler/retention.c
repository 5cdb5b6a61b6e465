#include "retention.h"

#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>

#define RETENTION_IDLE_S 60.0 /* after a batch that was not full, or failed */

struct retention {
    double older_than_s;
    double next_at; /* monotonic seconds of the next batch */
    char secs[32];  /* older_than_s as the statement's parameter */
};

retention *retention_new(double older_than_s)
{
    retention *r = mem_calloc(1, sizeof *r);
    r->older_than_s = older_than_s;
    snprintf(r->secs, sizeof r->secs, "%.3f", older_than_s);
    return r;
}

void retention_free(retention *r)
{
    mem_free(r);
}

/* The batch, its counts in got[5]. */
static int retention_batch(retention *r, db *d, long long got[5], char *errbuf, size_t errlen)
{
    char batch[16];
    snprintf(batch, sizeof batch, "%d", RETENTION_BATCH);
    const char *p[2] = {r->secs, batch};
    PGresult *res;
    int rc =
        db_query(d, "retention_prune",
                 "SELECT * FROM dagq.prune_history(make_interval(secs => $1::float8), $2::int)", 2,
                 p, &res, errbuf, errlen);
    if (rc)
        return rc;
    for (int k = 0; k < 5; k++)
        got[k] = atoll(PQgetvalue(res, 0, k));
    PQclear(res);
    return 0;
}

int retention_housekeeping(retention *r, db *d, double now, char *errbuf, size_t errlen)
{
    if (!r || now < r->next_at)
        return 0;
    int rc = db_savepoint(d, "retention", errbuf, errlen);
    if (rc)
        return rc;
    long long got[5] = {0};
    rc = retention_batch(r, d, got, errbuf, errlen);
    if (rc == DB_ECONN)
        return rc;
    if (rc) {
        char q[1024], ignore[256];
        log_warn("pruning the history failed; trying again in a minute", "error=\"%s\"",
                 log_quote(errbuf, q, sizeof q));
        r->next_at = now + RETENTION_IDLE_S;
        /* only the batch is undone: the pass goes on */
        rc = db_rollback_to(d, "retention", ignore, sizeof ignore);
        return rc == DB_ECONN ? rc : 0;
    }
    if ((rc = db_release(d, "retention", errbuf, errlen)))
        return rc;
    int full = got[0] >= RETENTION_BATCH || got[4] >= 10LL * RETENTION_BATCH;
    r->next_at = full ? now : now + RETENTION_IDLE_S;
    if (got[0] || got[4])
        log_info("pruned finished history",
                 "runs=%lld task_instances=%lld tries=%lld logs=%lld events=%lld "
                 "older_than_s=%.0f",
                 got[0], got[1], got[2], got[3], got[4], r->older_than_s);
    return 0;
}
