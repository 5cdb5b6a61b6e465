/* retention — `dagq-scheduler --retention AGE`: the scheduler prunes the
 * finished history as it goes. From the pass's housekeeping (about once a
 * second), while there is something to prune, one batch of
 * dagq.prune_history (sql/014_retention.sql): at most RETENTION_BATCH
 * finished runs that ended longer ago than AGE, with their task instances,
 * tries, logs and events, and events of no run as old; when a batch finds
 * less than a full batch the next waits a minute. A batch locks only what it
 * deletes and skips rows someone holds, so it never waits; it runs under a
 * savepoint, so a batch that fails is logged, rolled back alone, and tried
 * again a minute later while the pass goes on. */
#ifndef DAGQ_RETENTION_H
#define DAGQ_RETENTION_H

#include "db.h"

#include <stddef.h>

#define RETENTION_BATCH 200 /* runs per batch */

typedef struct retention retention; /* opaque */

/* older_than_s: the age of what is pruned, > 0. Free with retention_free. */
retention *retention_new(double older_than_s);
void retention_free(retention *r); /* retention_free(NULL) does nothing */

/* One step of the pass's housekeeping, inside its transaction; now is
 * clock_now_s(). r NULL (no --retention): does nothing. Returns 0, or
 * DB_ECONN when the connection was lost (the pass fails as it would). */
int retention_housekeeping(retention *r, db *d, double now, char *errbuf, size_t errlen);

#endif
