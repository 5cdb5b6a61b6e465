#include "timeouts.h"

#include "log.h"

int timeouts_step(db *d, metrics *m, int *ended, char *errbuf, size_t errlen)
{
    PGresult *r;
    int rc = db_query(d, "timeouts_runs", "SELECT * FROM dagq.time_out_runs()", 0, NULL, &r, errbuf,
                      errlen);
    if (rc)
        return rc;
    *ended = PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++) {
        log_warn("run timed out", "dag=%s run=%s note=\"%s\"", PQgetvalue(r, i, 1),
                 PQgetvalue(r, i, 0), PQgetvalue(r, i, 2));
        metrics_run_finished(m, "failed");
    }
    PQclear(r);
    return DB_OK;
}
