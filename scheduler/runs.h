/* runs — the scheduler's side of DAG runs: creating the runs schedules call
 * for, and starting queued runs (task instances and edges frozen, commands
 * rendered). Called inside a scheduling pass's transaction.
 *
 * One DAG never stops the others: each DAG's run creation and each run's
 * start happens in its own savepoint. A statement that fails for a reason
 * worth retrying (a lock held by someone else, a deadlock) leaves that DAG
 * for the next pass; any other failure parks the DAG (dagq.park_dag: the
 * reason in dag.parked_reason, a dag_parked event, an error in the log and
 * dagq_dags_parked_total), and the pass goes on. */
#ifndef DAGQ_RUNS_H
#define DAGQ_RUNS_H

#include "db.h"
#include "metrics.h"

#include <stddef.h>

/* Creates the runs due for scheduled DAGs (Airflow's interval rules, at most
 * max_active_runs active per DAG; DAGs already at that limit are not even
 * read, so they never crowd out the others). *created counts new runs.
 * Returns DB_OK, or a db error code (errbuf) when the pass cannot go on; a
 * DAG's own failure is handled as above and does not fail the call. m may
 * be NULL. */
int runs_create(db *d, metrics *m, int *created, char *errbuf, size_t errlen);

/* Starts at most max queued runs that max_active_runs allows (oldest first;
 * then backfills' runs in their order, within their own caps: the database
 * decides, dagq.runs_to_start), rendering their commands; a command that does not render fails its
 * task instance with the reason as its note. *started counts started runs and *tis their task
 * instances. Returns DB_OK or a db error code. */
int runs_start(db *d, metrics *m, int max, int *started, long long *tis, char *errbuf,
               size_t errlen);

/* Parks dag_id with reason (unless already parked) and says so. Returns
 * DB_OK, DB_ECONN, or DB_EQUERY. */
int runs_park(db *d, metrics *m, const char *dag_id, const char *reason, char *errbuf,
              size_t errlen);

#endif
