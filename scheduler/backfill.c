#include "backfill.h"

#include "log.h"

int backfill_step(db *d, int *done, char *errbuf, size_t errlen)
{
    PGresult *r;
    int rc = db_query(d, "backfill_finish", "SELECT * FROM dagq.finish_backfills()", 0, NULL, &r,
                      errbuf, errlen);
    if (rc)
        return rc;
    *done = PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++)
        log_info("backfill done", "dag=%s backfill=%s runs=\"%s\"", PQgetvalue(r, i, 1),
                 PQgetvalue(r, i, 0), PQgetvalue(r, i, 2));
    PQclear(r);
    return DB_OK;
}
