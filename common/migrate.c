#include "migrate.h"

#include "mem.h"

#include <stdio.h>
#include <string.h>

/* An arbitrary constant naming the migration lock ("dagq" in ASCII). */
#define MIGRATE_LOCK_KEY "1684105585"

static int migrate_exec(PGconn *c, const char *sql, const char *what, char *errbuf, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        snprintf(errbuf, errlen, "%s: %s", what, PQresultErrorMessage(r));
        size_t n = strlen(errbuf);
        while (n && errbuf[n - 1] == '\n')
            errbuf[--n] = '\0';
    }
    PQclear(r);
    return ok ? 0 : -1;
}

int migrate_current(PGconn *c, char *name, size_t len, char *errbuf, size_t errlen)
{
    name[0] = '\0';
    PGresult *r = PQexec(c, "SELECT to_regclass('dagq.schema_migrations') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(errbuf, errlen, "reading migrations: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return 0;
    r = PQexec(c, "SELECT name FROM dagq.schema_migrations ORDER BY name DESC LIMIT 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(errbuf, errlen, "reading migrations: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    if (PQntuples(r) == 1)
        snprintf(name, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int migrate_run(PGconn *c, int *applied, char *errbuf, size_t errlen)
{
    *applied = 0;
    /* Session-level advisory lock: a second migrator waits here, then finds
     * everything applied. */
    if (migrate_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")",
                     "taking the migration lock", errbuf, errlen))
        return -1;
    int rc = -1;
    if (migrate_exec(c,
                     "CREATE SCHEMA IF NOT EXISTS dagq;"
                     "CREATE TABLE IF NOT EXISTS dagq.schema_migrations ("
                     " name text PRIMARY KEY,"
                     " applied_at timestamptz NOT NULL DEFAULT now())",
                     "creating dagq.schema_migrations", errbuf, errlen))
        goto out;
    for (const migrate_file *f = migrate__files; f->name; f++) {
        const char *params[1] = {f->name};
        PGresult *r = PQexecParams(c, "SELECT 1 FROM dagq.schema_migrations WHERE name = $1", 1,
                                   NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(errbuf, errlen, "reading migrations: %s", PQresultErrorMessage(r));
            PQclear(r);
            goto out;
        }
        int done = PQntuples(r) > 0;
        PQclear(r);
        if (done)
            continue;
        char what[256];
        snprintf(what, sizeof what, "migration %s", f->name);
        if (migrate_exec(c, "BEGIN", what, errbuf, errlen))
            goto out;
        /* nothing a migration creates in the schema is PUBLIC's (a
         * per-schema default privilege cannot take back the global one that
         * makes every new function executable by PUBLIC) */
        if (migrate_exec(c, f->sql, what, errbuf, errlen) ||
            migrate_exec(c, "REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA dagq FROM PUBLIC", what,
                         errbuf, errlen)) {
            char keep[1024];
            snprintf(keep, sizeof keep, "%s", errbuf);
            migrate_exec(c, "ROLLBACK", what, errbuf, errlen);
            snprintf(errbuf, errlen, "%s", keep);
            goto out;
        }
        r = PQexecParams(c, "INSERT INTO dagq.schema_migrations (name) VALUES ($1)", 1, NULL,
                         params, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(errbuf, errlen, "recording %s: %s", f->name, PQresultErrorMessage(r));
        PQclear(r);
        if (!ok) {
            char keep[1024];
            snprintf(keep, sizeof keep, "%s", errbuf);
            migrate_exec(c, "ROLLBACK", what, errbuf, errlen);
            snprintf(errbuf, errlen, "%s", keep);
            goto out;
        }
        if (migrate_exec(c, "COMMIT", what, errbuf, errlen))
            goto out;
        (*applied)++;
    }
    rc = 0;
out:;
    char ignore[256];
    migrate_exec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")",
                 "releasing the migration lock", ignore, sizeof ignore);
    return rc;
}
