/* recover — the scheduler's housekeeping for tries that went astray:
 * zombies (running tries whose worker incarnation stopped heartbeating),
 * queued tries whose message may have been lost (pushed again, bounded per
 * worker group), worker groups that have queued work and no live worker,
 * and the rows of long-gone workers. Called inside a pass's transaction;
 * each zombie verdict is taken in its own savepoint, so one try that cannot
 * be judged now (a lock held elsewhere) waits for the next pass. */
#ifndef DAGQ_RECOVER_H
#define DAGQ_RECOVER_H

#include "db.h"
#include "metrics.h"

#include <stddef.h>

/* Takes away the tries of worker incarnations silent for threshold_s:
 * up_for_retry (after their retry delay) or failed. Returns DB_OK or a db
 * error code. */
int recover_zombies(db *d, metrics *m, double threshold_s, int limit, char *errbuf, size_t errlen);

/* Marks tries queued longer than timeout_s for a push again; *out holds them
 * (the columns of dagq.requeue_stale; caller PQclear()s). */
int recover_requeue(db *d, double timeout_s, int limit, PGresult **out, char *errbuf,
                    size_t errlen);

/* Logs (warn) every worker group that has queued tries and no live worker.
 * Returns DB_OK or a db error code. */
int recover_warn_missing_workers(db *d, char *errbuf, size_t errlen);

/* Deletes rows of workers silent for a day that hold no running try. */
int recover_prune_workers(db *d, char *errbuf, size_t errlen);

#endif
