/* migrate — the ordered migrations of sql/, embedded at build time.
 * Applied by `dagq db migrate`: each in its own transaction, recorded in
 * dagq.schema_migrations, under an advisory lock so two migrators at once are
 * safe; running it again applies nothing. */
#ifndef DAGQ_MIGRATE_H
#define DAGQ_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

typedef struct migrate_file {
    const char *name; /* "001_schema" */
    const char *sql;
} migrate_file;

extern const migrate_file migrate__files[]; /* ends with {0, 0} */

/* Applies what is missing. *applied counts the migrations applied now.
 * Returns 0, or -1 with the failing migration and the server's words. */
int migrate_run(PGconn *conn, int *applied, char *errbuf, size_t errlen);

/* The newest migration recorded in the database, or "" if none. */
int migrate_current(PGconn *conn, char *name, size_t len, char *errbuf, size_t errlen);

#endif
