/* deps — the scheduler's side of dependencies between DAGs (the SQL is
 * sql/011c_etl_deps.sql): each pass decides the waits of task instances on
 * other DAGs that recent ends may decide (dagq.propagate_external: driven
 * by the ends flagged ext_pending, never a scan of the waiting rows), and
 * fails the task instances whose execution_timeout passed while they
 * waited (dagq.expire_external_waits). DAG triggers need no step of their
 * own: a run's success fires them in the same transaction (finish_runs).
 * Called inside a pass's transaction. */
#ifndef DAGQ_DEPS_H
#define DAGQ_DEPS_H

#include "db.h"
#include "metrics.h"

#include <stddef.h>

/* Decides what it can; *decided counts the waits decided and *expired the
 * task instances failed for waiting too long. m may be NULL. Returns DB_OK
 * or a db error code (errbuf). */
int deps_step(db *d, metrics *m, int *decided, int *expired, char *errbuf, size_t errlen);

#endif
