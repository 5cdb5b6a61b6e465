/* worker — one dagq worker process: consumes its worker groups' queues
 * (intake.h), claims each try in the metastore with the fenced UPDATE of
 * DESIGN.md, runs it (child.h), heartbeats, and writes the result back
 * (results.h).
 *
 * A worker process has a name and an incarnation: a random id drawn when
 * it starts. Claims, finishes and heartbeats carry both, so a worker
 * restarted under the same name never inherits the tries of the process it
 * replaces.
 *
 * Threads: the intake's consumer threads and its settler thread do every
 * broker call; the thread that calls worker_run owns the database
 * connection and the children and waits in poll(2) on a self-pipe (woken by
 * the consumers and by the caller's signal handlers) and the children's
 * output pipes, so a stalled broker never delays a heartbeat. */
#ifndef DAGQ_WORKER_H
#define DAGQ_WORKER_H

#include "child.h"
#include "metrics.h"
#include "queue.h"

#include <signal.h>

typedef struct worker_conf {
    const char *name; /* --name or host:pid */
    char **groups;    /* borrowed, ngroups of them */
    int ngroups;
    int slots;              /* tries run at once */
    double heartbeat_s;     /* between heartbeats */
    double drain_timeout_s; /* on stop: how long running tries may finish */
    const char *database_url;
    const queue_conf *queue;      /* borrowed, must outlive the worker */
    metrics *metrics;             /* borrowed, may be NULL */
    int wake_rd, wake_wr;         /* the self-pipe: signal handlers write to wake_wr */
    const child_identity *run_as; /* borrowed; NULL: tasks run as the worker's user */
} worker_conf;

typedef struct worker worker; /* opaque */

/* Copies conf (the pointers in it are borrowed). */
worker *worker_new(const worker_conf *conf);
void worker_free(worker *w);

/* The incarnation id drawn by worker_new ("8-4-4-4-12" hex). */
const char *worker_incarnation(const worker *w);

/* Runs until *stop: then drains (no new tries; running ones may finish
 * within the drain timeout, then are given back), or at once when *stop_now
 * is set too. *hup is cleared and logged (nothing is reloadable). */
void worker_run(worker *w, volatile sig_atomic_t *stop, volatile sig_atomic_t *stop_now,
                volatile sig_atomic_t *hup);

#endif
