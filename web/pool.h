/* pool — a fixed set of metastore connections shared by dagq-web's request
 * threads. A request takes one for its whole transaction and gives it back;
 * a connection found lost is reconnected (one attempt) when next taken. */
#ifndef DAGQ_POOL_H
#define DAGQ_POOL_H

#include "db.h"

#include <stddef.h>

typedef struct pool pool; /* opaque */

/* n connections to conninfo (NULL: libpq's defaults), each running
 * session_sql first. Nothing connects yet. Free with pool_free. */
pool *pool_new(const char *conninfo, int n, const char *session_sql);
void pool_free(pool *p);

/* A connected db, waiting at most wait_ms for a free one. Returns DB_OK and
 * *out (give it back with pool_give), or DB_ECONN with the reason (no
 * connection free in time, or the database unreachable). */
int pool_take(pool *p, int wait_ms, db **out, char *errbuf, size_t errlen);
void pool_give(pool *p, db *d);

#endif
