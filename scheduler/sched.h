/* sched — one scheduler: polls the metastore, moves task instances through
 * the state machine with the SQL functions of sql/, and pushes the news that
 * a try may start onto the queue of its worker group.
 *
 * A pass runs in one transaction under a transaction-level advisory lock, so
 * of several schedulers (HA) one passes at a time and a crashed one never
 * holds the lock; messages are pushed after COMMIT (DESIGN.md). In a pass:
 * runs due by schedule are created (at housekeeping, when a run ended, or
 * when the next schedule is due), zombies judged and lost messages re-pushed
 * (housekeeping), runs past their dagrun_timeout failed (timeouts.h),
 * queued runs and backfill runs started (runs.h), waits on other DAGs
 * decided (deps.h), trigger rules settled, ready tries queued, finished
 * runs ended (firing DAG triggers), finished backfills ended (backfill.h).
 * Run creation and queueing happen in the same pass, so neither starves
 * the other. */
#ifndef DAGQ_SCHED_H
#define DAGQ_SCHED_H

#include "db.h"
#include "metrics.h"
#include "queue.h"
#include "retention.h"

#include <stddef.h>

typedef struct sched_conf {
    double heartbeat_timeout_s; /* running try without heartbeat for this long: zombie */
    double queued_timeout_s;    /* queued try not started after this long: push again */
    int batch;                  /* most tries queued in one pass */
    int housekeeping_ms;  /* how often zombies, stale queued tries and schedules are checked */
    metrics *metrics;     /* borrowed; NULL: not counted (no --http-port) */
    retention *retention; /* borrowed; NULL: the history is kept (no --retention) */
} sched_conf;

typedef struct sched_stats {
    long long passes;    /* committed passes */
    double last_pass_ms; /* duration of the last committed pass, push included */
} sched_stats;

typedef struct sched sched; /* opaque */

/* d and q are borrowed: they must outlive the scheduler. */
sched *sched_new(const sched_conf *conf, db *d, queue *q);
void sched_free(sched *s);

/* One pass. Returns > 0 when there may be more to do at once (a full batch,
 * a run that ended and may free a max_active_runs slot, a pass to retry
 * after a deadlock), 0 when done or when another scheduler holds the lock,
 * a negative DB_ECONN / QUEUE_ECONN when a server is unreachable, or
 * DB_EQUERY when the pass failed (logged; sched_last_error says why). */
int sched_pass(sched *s);

/* How long the loop may sleep before the next pass, at most poll_ms: less
 * when a retry or a schedule comes due sooner. */
int sched_wait_ms(const sched *s, int poll_ms);

/* Tells the scheduler the database connection was (re)established now: zombie
 * detection waits one heartbeat timeout after that, so workers that lost the
 * database too have time to heartbeat again (no false zombie alarms). */
void sched_db_connected(sched *s);

const sched_stats *sched_get_stats(const sched *s);

/* The error of the last failed pass ("" when none). */
const char *sched_last_error(const sched *s);

#endif
