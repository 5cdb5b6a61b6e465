/* results — finished tries whose outcome is not yet in the metastore.
 *
 * A result is never dropped. Every result ready when the loop flushes is
 * written with one dagq.finish_tries (one statement, one commit); a lost
 * connection keeps them for when the database is back; a batch that fails
 * for a passing reason (a lock held elsewhere, a deadlock) is tried again
 * at once, and one that fails otherwise is written result by result, so a
 * result the metastore refuses never holds back the others. Alone, a
 * result that fails is tried again with backoff (up to 5 s apart), after
 * three such failures it is written without its output (the note says
 * why), and after three more it is given back to the scheduler as a retry
 * (dagq.release_try), which is tried until it is written. */
#ifndef DAGQ_RESULTS_H
#define DAGQ_RESULTS_H

#include "db.h"
#include "metrics.h"

typedef struct results results; /* opaque */

/* The worker's identity, borrowed: it must outlive the list. */
results *results_new(const char *worker, const char *incarnation, metrics *m);
void results_free(results *r);

/* A try ended. note may be NULL; output is taken over (may be NULL); dag,
 * task and group are copied. retry_in_s: the delay before the next try
 * should this one count as failed. */
void results_add(results *r, long long ti, int try_number, int ok, int exit_code, double retry_in_s,
                 const char *note, char *output, long long truncated, const char *dag,
                 const char *task, const char *group);

/* Writes what is due; keeps the rest. now: monotonic seconds. */
void results_flush(results *r, db *d, double now);

int results_pending(const results *r);

/* Seconds until the next result is due to be written (0: now; -1: none). */
double results_next_in(const results *r, double now);

#endif
