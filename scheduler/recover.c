#include "recover.h"

#include "backoff.h"
#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One zombie verdict (row i of find_zombies), in savepoint "zombie". */
static int recover_one(db *d, metrics *m, PGresult *r, int i, double threshold_s, char *errbuf,
                       size_t errlen)
{
    int try_number = atoi(PQgetvalue(r, i, 1));
    double delay = backoff_retry_delay(atof(PQgetvalue(r, i, 8)), try_number,
                                       PQgetvalue(r, i, 9)[0] == 't', atof(PQgetvalue(r, i, 10)));
    char *note = mem_printf("zombie: worker %s sent no heartbeat for %.0fs", PQgetvalue(r, i, 6),
                            atof(PQgetvalue(r, i, 11)));
    char thr[32], dl[32];
    snprintf(thr, sizeof thr, "%.3f", threshold_s);
    snprintf(dl, sizeof dl, "%.3f", delay);
    const char *u[7] = {PQgetvalue(r, i, 0),
                        PQgetvalue(r, i, 1),
                        PQgetvalue(r, i, 6),
                        PQgetvalue(r, i, 7),
                        thr,
                        dl,
                        note};
    PGresult *a;
    int rc =
        db_query(d, "recover_abandon", "SELECT dagq.abandon_try($1, $2, $3, $4::uuid, $5, $6, $7)",
                 7, u, &a, errbuf, errlen);
    mem_free(note);
    if (rc)
        return rc;
    if (!PQgetisnull(a, 0, 0)) {
        metrics_ti_state(m, PQgetvalue(r, i, 12), PQgetvalue(a, 0, 0), 1);
        log_warn("zombie try taken away",
                 "dag=%s run=%s task=%s ti=%s try=%d worker=%s incarnation=%s silent_s=%.0f "
                 "new_state=%s",
                 PQgetvalue(r, i, 3), PQgetvalue(r, i, 5), PQgetvalue(r, i, 4), PQgetvalue(r, i, 0),
                 try_number, PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), atof(PQgetvalue(r, i, 11)),
                 PQgetvalue(a, 0, 0));
    }
    PQclear(a);
    return DB_OK;
}

int recover_zombies(db *d, metrics *m, double threshold_s, int limit, char *errbuf, size_t errlen)
{
    char thr[32], lim[16];
    snprintf(thr, sizeof thr, "%.3f", threshold_s);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[2] = {thr, lim};
    PGresult *r;
    int rc = db_query(d, "recover_zombies", "SELECT * FROM dagq.find_zombies($1, $2)", 2, p, &r,
                      errbuf, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == DB_OK; i++) {
        if ((rc = db_savepoint(d, "zombie", errbuf, errlen)))
            break;
        rc = recover_one(d, m, r, i, threshold_s, errbuf, errlen);
        if (rc == DB_OK) {
            rc = db_release(d, "zombie", errbuf, errlen);
        } else if (rc == DB_EQUERY) {
            /* a try held by someone else now (its worker finishing it, a
             * user's clear): judged again next time */
            char q[512];
            log_warn("zombie verdict deferred", "ti=%s error=\"%s\"", PQgetvalue(r, i, 0),
                     log_quote(errbuf, q, sizeof q));
            rc = db_rollback_to(d, "zombie", errbuf, errlen);
        }
    }
    PQclear(r);
    return rc;
}

int recover_requeue(db *d, double timeout_s, int limit, PGresult **out, char *errbuf, size_t errlen)
{
    char to[32], lim[16];
    snprintf(to, sizeof to, "%.3f", timeout_s);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[2] = {to, lim};
    int rc = db_query(d, "recover_requeue", "SELECT * FROM dagq.requeue_stale($1, $2)", 2, p, out,
                      errbuf, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(*out); i++)
        log_warn("queued try not started in time; pushing it again",
                 "dag=%s run=%s task=%s ti=%s try=%s group=%s queued_timeout_s=%.0f",
                 PQgetvalue(*out, i, 2), PQgetvalue(*out, i, 4), PQgetvalue(*out, i, 3),
                 PQgetvalue(*out, i, 0), PQgetvalue(*out, i, 1), PQgetvalue(*out, i, 5), timeout_s);
    return DB_OK;
}

int recover_warn_missing_workers(db *d, char *errbuf, size_t errlen)
{
    PGresult *r;
    int rc = db_query(d, "recover_missing", "SELECT * FROM dagq.groups_without_workers()", 0, NULL,
                      &r, errbuf, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++)
        log_warn("worker group has queued tries and no live worker; they wait on the broker "
                 "until a worker of the group starts",
                 "group=%s queued=%s oldest_queued_s=%.0f", PQgetvalue(r, i, 0),
                 PQgetvalue(r, i, 1), atof(PQgetvalue(r, i, 2)));
    PQclear(r);
    return DB_OK;
}

int recover_prune_workers(db *d, char *errbuf, size_t errlen)
{
    PGresult *r;
    int rc =
        db_query(d, "recover_prune", "SELECT dagq.prune_workers()", 0, NULL, &r, errbuf, errlen);
    if (rc)
        return rc;
    if (atoi(PQgetvalue(r, 0, 0)) > 0)
        log_info("pruned the rows of workers gone for a day", "workers=%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return DB_OK;
}
