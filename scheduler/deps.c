#include "deps.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>

int deps_step(db *d, metrics *m, int *decided, int *expired, char *errbuf, size_t errlen)
{
    PGresult *r;
    *decided = *expired = 0;
    int rc = db_query(d, "deps_propagate", "SELECT dagq.propagate_external()", 0, NULL, &r, errbuf,
                      errlen);
    if (rc)
        return rc;
    *decided = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (*decided)
        log_debug("waits on other DAGs decided", "n=%d", *decided);
    rc = db_query(d, "deps_expire", "SELECT * FROM dagq.expire_external_waits()", 0, NULL, &r,
                  errbuf, errlen);
    if (rc)
        return rc;
    *expired = PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++) {
        char q[1024];
        metrics_ti_state(m, PQgetvalue(r, i, 4), "failed", 1);
        log_warn("task instance timed out waiting for other DAGs",
                 "dag=%s run=%s task=%s ti=%s note=\"%s\"", PQgetvalue(r, i, 2),
                 PQgetvalue(r, i, 1), PQgetvalue(r, i, 3), PQgetvalue(r, i, 0),
                 log_quote(PQgetvalue(r, i, 5), q, sizeof q));
    }
    PQclear(r);
    return DB_OK;
}
