/* backfill — the scheduler's side of backfills (the SQL is
 * sql/011f_etl_backfill.sql). Which backfill runs start, in their order
 * and within their caps, is decided with the DAGs' own runs in
 * dagq.runs_to_start (runs.h starts them); this step ends the backfills
 * whose every run has ended (dagq.finish_backfills) and says so. Called
 * inside a pass's transaction. */
#ifndef DAGQ_BACKFILL_H
#define DAGQ_BACKFILL_H

#include "db.h"

#include <stddef.h>

/* *done counts the backfills that ended. Returns DB_OK or a db error code
 * (errbuf). */
int backfill_step(db *d, int *done, char *errbuf, size_t errlen);

#endif
