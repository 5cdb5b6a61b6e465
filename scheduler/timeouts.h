/* timeouts — runs that outlive their DAG's dagrun_timeout (the SQL is
 * dagq.time_out_runs in sql/011e_etl_actions.sql): each pass fails the
 * running runs past their deadline, stopping their running tries (their
 * workers see it within a second) and starting nothing more of them, with
 * a note saying why on the run and each task instance it ended, and
 * run_timed_out and run_failed events. A run whose rows someone else holds
 * waits for a later pass. Called inside a pass's transaction. */
#ifndef DAGQ_TIMEOUTS_H
#define DAGQ_TIMEOUTS_H

#include "db.h"
#include "metrics.h"

#include <stddef.h>

/* *ended counts the runs timed out. m may be NULL. Returns DB_OK or a db
 * error code (errbuf). */
int timeouts_step(db *d, metrics *m, int *ended, char *errbuf, size_t errlen);

#endif
