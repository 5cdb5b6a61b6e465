#include "sched.h"

#include "backfill.h"
#include "clock.h"
#include "deps.h"
#include "log.h"
#include "mem.h"
#include "msg.h"
#include "pgarray.h"
#include "recover.h"
#include "runs.h"
#include "timeouts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The advisory lock of a scheduling pass ("dagqsch" folded into an int8). */
#define SCHED_LOCK_KEY "7234031785934611"
#define SCHED_START_MAX 100        /* most runs started in one pass */
#define SCHED_MISSING_EVERY_S 10.0 /* how often groups without workers are reported */
#define SCHED_PRUNE_EVERY_S 600.0  /* how often rows of long-gone workers are pruned */
#define SCHED_STARTUP_REPUSH_S 2.0 /* a fresh scheduler re-pushes tries queued this long */
#define SCHED_WOKE_MAX 10000       /* more run ids than this woke a pass: look at every run */

struct sched {
    sched_conf conf;
    db *d;
    queue *q;
    sched_stats stats;
    double connected_at; /* monotonic seconds of the last (re)connect */
    double last_housekeeping, last_missing, last_prune;
    int repushed_once;     /* the startup re-push has been done */
    int want_create;       /* a run ended: look for due runs at once */
    double next_dag_due;   /* monotonic time a schedule comes due; 0: none */
    double next_timer_due; /* monotonic time a retry comes due; 0: none */
    /* What woke the next pass: the run ids of end notifications (finish_runs
     * then looks at those runs only), or anything else, or nothing (it
     * looks at every running run). */
    pgarray woke;
    int woke_any, woke_other;
    msg_task *pending; /* committed, not yet pushed */
    int npending, cappending;
    char last_error[1024];
};

/* A notification on the metastore connection: a positive number is the
 * run of a task's end that may have ended it (sent after its commit);
 * "dag", a DAG defined or changed: look for runs to create. */
static void sched_notified(void *arg, const char *payload)
{
    sched *s = arg;
    char *end;
    long long id = strtoll(payload, &end, 10);
    s->woke_any = 1;
    if (!strcmp(payload, "dag"))
        s->want_create = 1;
    if (!*payload || *end || id <= 0 || s->woke.n >= SCHED_WOKE_MAX)
        s->woke_other = 1;
    else
        pgarray_add_ll(&s->woke, id);
}

sched *sched_new(const sched_conf *conf, db *d, queue *q)
{
    sched *s = mem_calloc(1, sizeof *s);
    s->conf = *conf;
    if (s->conf.batch <= 0)
        s->conf.batch = 1000;
    if (s->conf.housekeeping_ms <= 0)
        s->conf.housekeeping_ms = 1000;
    s->d = d;
    s->q = q;
    s->connected_at = clock_now_s();
    pgarray_init(&s->woke);
    s->woke_other = 1; /* the first pass looks at every run */
    db_on_notify(d, sched_notified, s);
    return s;
}

void sched_free(sched *s)
{
    if (!s)
        return;
    db_on_notify(s->d, NULL, NULL);
    pgarray_free(&s->woke);
    mem_free(s->pending);
    mem_free(s);
}

void sched_db_connected(sched *s)
{
    s->connected_at = clock_now_s();
    s->woke_other = 1; /* notifications may have been lost */
}

const sched_stats *sched_get_stats(const sched *s)
{
    return &s->stats;
}

const char *sched_last_error(const sched *s)
{
    return s->last_error;
}

int sched_wait_ms(const sched *s, int poll_ms)
{
    double due = s ? s->next_dag_due : 0;
    if (s && s->next_timer_due && (!due || s->next_timer_due < due))
        due = s->next_timer_due;
    if (!due)
        return poll_ms;
    double ms = (due - clock_now_s()) * 1000.0 + 1.0;
    if (ms < 0)
        return 0;
    return ms < poll_ms ? (int)ms : poll_ms;
}

static long long sched_ll(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* ---- pushing what committed ------------------------------------------------------ */

/* Adds the tries of r (the columns of dagq.queue_ready) to the push list. */
static void sched_collect(sched *s, PGresult *r)
{
    int n = PQntuples(r);
    if (s->npending + n > s->cappending) {
        s->cappending = (s->npending + n) * 2;
        s->pending = mem_realloc(s->pending, sizeof *s->pending * (size_t)s->cappending);
    }
    for (int i = 0; i < n; i++) {
        msg_task *m = &s->pending[s->npending++];
        memset(m, 0, sizeof *m);
        m->ti = sched_ll(r, i, 0);
        m->try_number = (int32_t)sched_ll(r, i, 1);
        snprintf(m->dag, sizeof m->dag, "%s", PQgetvalue(r, i, 2));
        snprintf(m->task, sizeof m->task, "%s", PQgetvalue(r, i, 3));
        m->run = sched_ll(r, i, 4);
        snprintf(m->group, sizeof m->group, "%s", PQgetvalue(r, i, 5));
        m->queued_at = sched_ll(r, i, 6);
    }
}

/* Pushes what committed passes queued. On failure the messages are kept and
 * pushed again after the next pass (duplicates are harmless: the claim is
 * fenced); if the scheduler dies meanwhile, the tries stay 'queued' in the
 * metastore and the queued-timeout re-push of any scheduler brings them back.
 * Nothing is lost, it only waits. */
static int sched_push_pending(sched *s)
{
    char err[512], q[512];
    int rc = 0, pushed = 0;
    for (int i = 0; i < s->npending; i++) {
        msg_task *m = &s->pending[i];
        char *buf;
        size_t len;
        if (msg_encode(m, &buf, &len, err, sizeof err)) {
            log_error("cannot encode task message", "ti=%lld error=\"%s\"", (long long)m->ti,
                      log_quote(err, q, sizeof q));
            continue;
        }
        rc = queue_push(s->q, m->group, buf, len, err, sizeof err);
        mem_free(buf);
        if (rc) {
            log_warn("push failed; tries wait for the re-push", "group=%s error=\"%s\"", m->group,
                     log_quote(err, q, sizeof q));
            break;
        }
        pushed++;
    }
    if (rc == 0 && pushed) {
        rc = queue_flush(s->q, 10000, err, sizeof err);
        if (rc)
            log_warn("push failed; tries wait for the re-push", "error=\"%s\"",
                     log_quote(err, q, sizeof q));
    }
    if (rc) {
        if (s->npending > 100000) {
            log_warn("too many unpushed tries kept; leaving them to the re-push", "unpushed=%d",
                     s->npending);
            s->npending = 0;
        }
        return rc;
    }
    s->npending = 0;
    return rc;
}

/* ---- the steps of a pass ----------------------------------------------------------- */

/* Trigger rules first (upstream_failed, skipped, counted by group and
 * state), then the ready tries. Sets *full when the batch was filled,
 * *settled when a trigger rule ended task instances. */
static int sched_queue(sched *s, int *full, int *settled, char *err, size_t errlen)
{
    PGresult *r;
    int rc = db_query(s->d, "sched_settle", "SELECT * FROM dagq.settle_trigger_rules()", 0, NULL,
                      &r, err, errlen);
    if (rc)
        return rc;
    *settled = PQntuples(r) > 0;
    for (int i = 0; i < PQntuples(r); i++)
        metrics_ti_state(s->conf.metrics, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                         sched_ll(r, i, 2));
    PQclear(r);
    char lim[16];
    snprintf(lim, sizeof lim, "%d", s->conf.batch);
    const char *p[1] = {lim};
    rc = db_query(s->d, "sched_queue_ready", "SELECT * FROM dagq.queue_ready($1)", 1, p, &r, err,
                  errlen);
    if (rc)
        return rc;
    *full = PQntuples(r) >= s->conf.batch;
    for (int i = 0; i < PQntuples(r); i++) {
        metrics_ti_state(s->conf.metrics, PQgetvalue(r, i, 5), "queued", 1);
        log_debug("queued", "dag=%s run=%s task=%s ti=%s try=%s group=%s", PQgetvalue(r, i, 2),
                  PQgetvalue(r, i, 4), PQgetvalue(r, i, 3), PQgetvalue(r, i, 0),
                  PQgetvalue(r, i, 1), PQgetvalue(r, i, 5));
    }
    sched_collect(s, r);
    PQclear(r);
    return 0;
}

/* Ends the runs that are over among runs (an array literal of run ids), or
 * among every running run when runs is NULL. */
static int sched_finish_runs(sched *s, const char *runs, int *finished, char *err, size_t errlen)
{
    PGresult *r;
    const char *p[1] = {runs};
    int rc = runs ? db_query(s->d, "sched_finish_runs_of", "SELECT * FROM dagq.finish_runs_of($1)",
                             1, p, &r, err, errlen)
                  : db_query(s->d, "sched_finish_runs", "SELECT * FROM dagq.finish_runs()", 0, NULL,
                             &r, err, errlen);
    if (rc)
        return rc;
    *finished = PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++) {
        log_info("run finished", "dag=%s run=%s state=%s", PQgetvalue(r, i, 1), PQgetvalue(r, i, 0),
                 PQgetvalue(r, i, 2));
        metrics_run_finished(s->conf.metrics, PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return 0;
}

/* When the next timer comes due: a retry, a run's deadline (dagrun_timeout)
 * or a wait's (an external dependency's execution_timeout); the ones already
 * due wait for a freed slot, which wakes the scheduler by itself. Cheap
 * (index probes): read after every pass, since any task's end may have set
 * one. The delay is the database's, from now: counted from the pass's start
 * it would wake the scheduler early by the pass's duration, before the
 * thing is due. */
static int sched_next_timer(sched *s, char *err, size_t errlen)
{
    PGresult *r;
    int rc = db_query(s->d, "sched_next_timer",
                      "SELECT extract(epoch FROM LEAST("
                      " (SELECT min(t.next_retry_at) FROM dagq.task_instance t"
                      "   WHERE t.state = 'up_for_retry' AND t.next_retry_at > clock_timestamp()),"
                      " (SELECT min(r.deadline) FROM dagq.dag_run r"
                      "   WHERE r.state = 'running' AND r.deadline > clock_timestamp()),"
                      " (SELECT min(t.ext_deadline) FROM dagq.task_instance t"
                      "   WHERE t.state = 'scheduled' AND t.ext_deadline > clock_timestamp()))"
                      " - clock_timestamp())::float8",
                      0, NULL, &r, err, errlen);
    if (rc)
        return rc;
    s->next_timer_due = PQgetisnull(r, 0, 0) ? 0 : clock_now_s() + atof(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

/* When the next schedule comes due: the soonest next interval end of a
 * scheduled DAG that could get a run (not paused, parked or at its
 * max_active_runs; one not computed yet is due now). Read in the passes
 * that create runs (at most about once a second), and when a DAG changes. */
static int sched_next_dag(sched *s, char *err, size_t errlen)
{
    PGresult *r;
    int rc =
        db_query(s->d, "sched_next_dag",
                 "SELECT bool_or(d.next_dagrun_end IS NULL),"
                 "       extract(epoch FROM min(d.next_dagrun_end) - clock_timestamp())::float8"
                 " FROM dagq.dag d"
                 " WHERE d.schedule IS NOT NULL AND NOT d.is_paused AND d.parked_reason IS NULL"
                 "   AND (d.next_dagrun_end IS NULL OR d.next_dagrun_end < 'infinity')"
                 "   AND (SELECT count(*) FROM dagq.dag_run x WHERE x.dag_id = d.dag_id"
                 "         AND x.state IN ('queued', 'running')) < d.max_active_runs",
                 0, NULL, &r, err, errlen);
    if (rc)
        return rc;
    /* a DAG whose next interval is not computed yet is due now */
    double now = clock_now_s();
    int uncomputed = !PQgetisnull(r, 0, 0) && PQgetvalue(r, 0, 0)[0] == 't';
    double in = PQgetisnull(r, 0, 1) ? -1 : atof(PQgetvalue(r, 0, 1));
    if (uncomputed)
        s->next_dag_due = now;
    else
        s->next_dag_due = PQgetisnull(r, 0, 1) ? 0 : now + (in > 0 ? in : 0);
    PQclear(r);
    return 0;
}

/* Zombies, lost messages, groups without workers, old worker rows. */
static int sched_housekeeping(sched *s, double t0, char *err, size_t errlen)
{
    int rc;
    /* no zombie verdicts until workers had a heartbeat timeout to reach the
     * database we just reached */
    if (t0 - s->connected_at >= s->conf.heartbeat_timeout_s &&
        (rc = recover_zombies(s->d, s->conf.metrics, s->conf.heartbeat_timeout_s, s->conf.batch,
                              err, errlen)))
        return rc;
    /* A scheduler that just started cannot know whether its predecessor died
     * between COMMIT and push: its first housekeeping re-pushes what has been
     * queued for a couple of seconds instead of waiting the whole timeout (a
     * duplicate is harmless, the claim is fenced). */
    double timeout = s->conf.queued_timeout_s;
    if (!s->repushed_once && timeout > SCHED_STARTUP_REPUSH_S)
        timeout = SCHED_STARTUP_REPUSH_S;
    PGresult *r;
    if ((rc = recover_requeue(s->d, timeout, s->conf.batch, &r, err, errlen)))
        return rc;
    s->repushed_once = 1;
    sched_collect(s, r);
    PQclear(r);
    if (t0 - s->last_missing >= SCHED_MISSING_EVERY_S) {
        if ((rc = recover_warn_missing_workers(s->d, err, errlen)))
            return rc;
        s->last_missing = t0;
    }
    if (t0 - s->last_prune >= SCHED_PRUNE_EVERY_S) {
        if ((rc = recover_prune_workers(s->d, err, errlen)))
            return rc;
        s->last_prune = t0;
    }
    if ((rc = retention_housekeeping(s->conf.retention, s->d, t0, err, errlen)))
        return rc;
    return 0;
}

/* The steps under the lock; *more is set when another pass should follow at
 * once. runs: the runs that end notifications woke the pass for (an array
 * literal), or NULL: look at every running run. */
static int sched_steps(sched *s, double t0, int housekeeping, const char *runs, int *more,
                       char *err, size_t errlen)
{
    int rc, n, full = 0, settled = 0, finished = 0, timed_out = 0, decided, expired, backfills;
    long long tis;
    /* a wake may come a hair before the due time the database computed */
    int create =
        housekeeping || s->want_create || (s->next_dag_due && t0 + 0.01 >= s->next_dag_due);
    log_debug("pass", "housekeeping=%d create=%d want=%d next_dag_due_in=%.3f", housekeeping,
              create, s->want_create, s->next_dag_due ? s->next_dag_due - t0 : -1.0);
    if (create && (rc = runs_create(s->d, s->conf.metrics, &n, err, errlen)))
        return rc;
    if (housekeeping && (rc = sched_housekeeping(s, t0, err, errlen)))
        return rc;
    if ((rc = timeouts_step(s->d, s->conf.metrics, &timed_out, err, errlen)))
        return rc;
    if ((rc = runs_start(s->d, s->conf.metrics, SCHED_START_MAX, &n, &tis, err, errlen)))
        return rc;
    if ((rc = deps_step(s->d, s->conf.metrics, &decided, &expired, err, errlen)))
        return rc;
    if ((rc = sched_queue(s, &full, &settled, err, errlen)))
        return rc;
    /* what this pass ended itself may have ended any run */
    if (housekeeping || settled || timed_out || decided || expired || n)
        runs = NULL;
    if ((rc = sched_finish_runs(s, runs, &finished, err, errlen)))
        return rc;
    if ((rc = backfill_step(s->d, &backfills, err, errlen)))
        return rc;
    if ((rc = sched_next_timer(s, err, errlen)))
        return rc;
    if (create && (rc = sched_next_dag(s, err, errlen)))
        return rc;
    /* a run that ended (or timed out) frees a slot and may complete waits
     * and DAG triggers: look again at once */
    finished += timed_out;
    s->want_create = finished > 0;
    *more = full || finished > 0 || n >= SCHED_START_MAX;
    return 0;
}

int sched_pass(sched *s)
{
    char err[1024], q[1024];
    double t0 = clock_now_s();
    int more = 0, rc;
    int kept = s->npending; /* unpushed messages of earlier passes */
    int housekeeping = (t0 - s->last_housekeeping) * 1000.0 >= s->conf.housekeeping_ms;
    s->last_error[0] = '\0';

    if ((rc = db_exec(s->d, "BEGIN", err, sizeof err)))
        goto fail;
    PGresult *lk;
    rc = db_query(s->d, "sched_lock", "SELECT pg_try_advisory_xact_lock(" SCHED_LOCK_KEY ")", 0,
                  NULL, &lk, err, sizeof err);
    if (rc)
        goto fail;
    int have_lock = PQgetvalue(lk, 0, 0)[0] == 't';
    PQclear(lk);
    if (!have_lock) {
        /* another scheduler is passing; it heard the same notifications */
        rc = db_exec(s->d, "ROLLBACK", err, sizeof err);
        if (rc == 0 && s->npending && sched_push_pending(s) == QUEUE_ECONN)
            return QUEUE_ECONN;
        return rc;
    }
    /* the runs this pass was woken for, and only those, unless something
     * else woke it (or nothing: a poll) */
    pgarray woke = s->woke; /* this pass's; the next collects afresh */
    int targeted = s->woke_any && !s->woke_other;
    pgarray_init(&s->woke);
    s->woke_any = s->woke_other = 0;
    rc = sched_steps(s, t0, housekeeping, targeted ? pgarray_lit(&woke) : NULL, &more, err,
                     sizeof err);
    pgarray_free(&woke);
    if (rc)
        goto fail;
    if ((rc = db_exec(s->d, "COMMIT", err, sizeof err)))
        goto fail;
    if (housekeeping)
        s->last_housekeeping = t0;
    s->stats.passes++;
    int prc = 0;
    if (s->npending)
        prc = sched_push_pending(s);
    s->stats.last_pass_ms = (clock_now_s() - t0) * 1000.0;
    if (prc == QUEUE_ECONN)
        return QUEUE_ECONN;
    return more ? 1 : 0;

fail:
    s->npending = kept; /* this pass did not commit: nothing of it to push */
    s->woke_other = 1;  /* nor did it end the runs it was woken for */
    if (rc == DB_ECONN)
        return rc;
    snprintf(s->last_error, sizeof s->last_error, "%s", err);
    char ignore[256];
    db_exec(s->d, "ROLLBACK", ignore, sizeof ignore);
    if (db_error_transient(s->d)) {
        /* a deadlock or a lock held elsewhere: nothing is wrong, try again */
        log_warn("scheduling pass rolled back; retrying", "error=\"%s\"",
                 log_quote(err, q, sizeof q));
        return 1;
    }
    log_error("scheduling pass failed", "error=\"%s\"", log_quote(err, q, sizeof q));
    return DB_EQUERY;
}
