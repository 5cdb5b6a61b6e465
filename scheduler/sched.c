#include "sched.h"

#include "backoff.h"
#include "log.h"
#include "mem.h"
#include "msg.h"
#include "timetable.h"
#include "tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The advisory lock of a scheduling pass ("dagqsch" folded into an int8). */
#define SCHED_LOCK_KEY "7234031785934611"

struct sched {
    sched_conf conf;
    db *d;
    queue *q;
    sched_stats stats;
    double connected_at; /* monotonic seconds of the last (re)connect */
    double last_housekeeping;
    int repushed_once; /* the startup re-push has been done */
    msg_task *pending; /* committed, not yet pushed */
    int npending, cappending;
};

static double sched_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
    s->connected_at = sched_now();
    return s;
}

void sched_free(sched *s)
{
    if (!s)
        return;
    mem_free(s->pending);
    mem_free(s);
}

void sched_db_connected(sched *s)
{
    s->connected_at = sched_now();
}

const sched_stats *sched_get_stats(const sched *s)
{
    return &s->stats;
}

static long long sched_ll(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* ---- run creation from schedules ------------------------------------------------ */

static int sched_create_runs(sched *s, char *err, size_t errlen)
{
    PGresult *r;
    int rc = db_query(s->d, "sched_due_dags",
                      "SELECT d.dag_id, d.schedule, d.timezone,"
                      " floor(extract(epoch FROM d.start_date))::bigint,"
                      " floor(extract(epoch FROM d.end_date))::bigint, d.catchup,"
                      " floor(extract(epoch FROM d.next_dagrun_start))::bigint,"
                      " floor(extract(epoch FROM d.next_dagrun_end))::bigint,"
                      " floor(extract(epoch FROM d.created_at))::bigint, d.max_active_runs,"
                      " (SELECT count(*) FROM dagq.dag_run x WHERE x.dag_id = d.dag_id"
                      "   AND x.state IN ('queued', 'running')),"
                      " floor(extract(epoch FROM clock_timestamp()))::bigint"
                      " FROM dagq.dag d"
                      " WHERE d.schedule IS NOT NULL AND NOT d.is_paused"
                      "   AND (d.next_dagrun_end IS NULL OR d.next_dagrun_end <= clock_timestamp())"
                      " ORDER BY d.next_dagrun_end NULLS FIRST LIMIT 500",
                      0, NULL, &r, err, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *dag_id = PQgetvalue(r, i, 0);
        timetable_dag t = {
            .schedule = PQgetvalue(r, i, 1),
            .timezone = PQgetvalue(r, i, 2),
            .start_date = sched_ll(r, i, 3),
            .end_date = sched_ll(r, i, 4),
            .catchup = PQgetvalue(r, i, 5)[0] == 't',
            .next_start = sched_ll(r, i, 6),
            .next_end = sched_ll(r, i, 7),
            .created_at = sched_ll(r, i, 8),
        };
        long long max_active = sched_ll(r, i, 9), active = sched_ll(r, i, 10);
        long long now = sched_ll(r, i, 11);
        long long st, en;
        char terr[256];
        if (timetable_next(&t, now, &st, &en, terr, sizeof terr)) {
            /* the database checks schedules on insert, so this is a disagreement
             * between the SQL and C parsers: park the DAG until its schedule is
             * edited (that resets next_dagrun_*) and say why */
            log_error("schedule cannot be evaluated; DAG parked until its schedule changes",
                      "dag=%s schedule=\"%s\" timezone=%s error=\"%s\"", dag_id, t.schedule,
                      t.timezone, terr);
            const char *p[1] = {dag_id};
            rc = db_query(s->d, "sched_park_dag",
                          "UPDATE dagq.dag SET next_dagrun_start = NULL,"
                          " next_dagrun_end = 'infinity' WHERE dag_id = $1",
                          1, p, NULL, err, errlen);
            if (rc)
                goto out;
            continue;
        }
        while (en != TIMETABLE_DONE && en <= now && active < max_active) {
            char a[32], b[32];
            snprintf(a, sizeof a, "%lld", st);
            snprintf(b, sizeof b, "%lld", en);
            const char *p[3] = {dag_id, a, b};
            PGresult *ins;
            rc = db_query(s->d, "sched_insert_run",
                          "INSERT INTO dagq.dag_run (dag_id, run_type, logical_date,"
                          " data_interval_start, data_interval_end)"
                          " VALUES ($1, 'scheduled', to_timestamp($2::bigint),"
                          " to_timestamp($2::bigint), to_timestamp($3::bigint))"
                          " ON CONFLICT (dag_id, logical_date) WHERE run_type = 'scheduled'"
                          " DO NOTHING RETURNING run_id",
                          3, p, &ins, err, errlen);
            if (rc)
                goto out;
            if (PQntuples(ins) == 1) {
                active++;
                log_info("run created", "dag=%s run=%s interval_start=%lld interval_end=%lld",
                         dag_id, PQgetvalue(ins, 0, 0), st, en);
            }
            PQclear(ins);
            if (timetable_after(&t, en, &st, &en, terr, sizeof terr)) {
                log_error("schedule cannot be evaluated", "dag=%s error=\"%s\"", dag_id, terr);
                break;
            }
        }
        char a[32], b[32];
        snprintf(a, sizeof a, "%lld", st);
        snprintf(b, sizeof b, "%lld", en);
        const char *p[3] = {dag_id, a, en == TIMETABLE_DONE ? NULL : b};
        rc = db_query(s->d, "sched_set_next",
                      "UPDATE dagq.dag SET next_dagrun_start = to_timestamp($2::bigint),"
                      " next_dagrun_end = COALESCE(to_timestamp($3::bigint), 'infinity')"
                      " WHERE dag_id = $1",
                      3, p, NULL, err, errlen);
        if (rc)
            goto out;
    }
    rc = 0;
out:
    PQclear(r);
    return rc;
}

/* ---- starting queued runs ---------------------------------------------------------- */

/* Renders the templated commands of a run that was just started. A command
 * that does not render fails its task instance with the reason as its note
 * (downstream tasks then follow their trigger rules). */
static int sched_render_run(sched *s, const char *run_id, char *err, size_t errlen)
{
    PGresult *tis = NULL, *ctx = NULL;
    tmpl_var *vars = NULL;
    const char *p[1] = {run_id};
    int rc = db_query(s->d, "sched_templated",
                      "SELECT ti_id, task_id, command FROM dagq.task_instance"
                      " WHERE run_id = $1 AND strpos(command, '{{') > 0",
                      1, p, &tis, err, errlen);
    if (rc || PQntuples(tis) == 0)
        goto out;
    rc = db_query(s->d, "sched_run_ctx",
                  "SELECT r.dag_id, floor(extract(epoch FROM r.logical_date))::bigint,"
                  " floor(extract(epoch FROM r.data_interval_start))::bigint,"
                  " floor(extract(epoch FROM r.data_interval_end))::bigint,"
                  " p.key, COALESCE(p.value #>> '{}', ''), COALESCE(r.conf ? p.key, true)"
                  " FROM dagq.dag_run r JOIN dagq.dag d ON d.dag_id = r.dag_id"
                  " LEFT JOIN LATERAL jsonb_each(d.params || r.conf) p ON true"
                  " WHERE r.run_id = $1",
                  1, p, &ctx, err, errlen);
    if (rc || PQntuples(ctx) == 0)
        goto out;
    int nparams = PQgetisnull(ctx, 0, 4) ? 0 : PQntuples(ctx);
    size_t nvars = 8 + (size_t)nparams;
    vars = mem_calloc(nvars, sizeof *vars);
    char dates[5][40];
    tmpl_date_vars(sched_ll(ctx, 0, 1), sched_ll(ctx, 0, 2), sched_ll(ctx, 0, 3), vars, dates);
    vars[5] = (tmpl_var){"run_id", run_id, TMPL_FROM_DAG};
    vars[6] = (tmpl_var){"dag_id", PQgetvalue(ctx, 0, 0), TMPL_FROM_DAG};
    char **names = mem_calloc((size_t)nparams + 1, sizeof *names);
    for (int i = 0; i < nparams; i++) {
        names[i] = mem_printf("params.%s", PQgetvalue(ctx, i, 4));
        tmpl_origin o = PQgetvalue(ctx, i, 6)[0] == 'f' ? TMPL_FROM_DAG : TMPL_FROM_CONF;
        vars[8 + i] = (tmpl_var){names[i], PQgetvalue(ctx, i, 5), o};
    }
    for (int i = 0; i < PQntuples(tis) && rc == 0; i++) {
        const char *task_id = PQgetvalue(tis, i, 1);
        vars[7] = (tmpl_var){"task_id", task_id, TMPL_FROM_DAG};
        char *out = NULL;
        char terr[512];
        if (tmpl_render(PQgetvalue(tis, i, 2), vars, nvars, &out, terr, sizeof terr) == 0) {
            const char *u[2] = {PQgetvalue(tis, i, 0), out};
            rc = db_query(s->d, "sched_set_command",
                          "UPDATE dagq.task_instance SET command = $2 WHERE ti_id = $1", 2, u, NULL,
                          err, errlen);
        } else {
            char *note = mem_printf("template error: %s", terr);
            log_warn("command does not render; task instance failed", "run=%s task=%s error=\"%s\"",
                     run_id, task_id, terr);
            const char *u[2] = {PQgetvalue(tis, i, 0), note};
            rc = db_query(s->d, "sched_fail_render",
                          "UPDATE dagq.task_instance SET state = 'failed',"
                          " ended_at = clock_timestamp(), note = $2"
                          " WHERE ti_id = $1 AND state = 'scheduled'",
                          2, u, NULL, err, errlen);
            mem_free(note);
        }
        mem_free(out);
    }
    for (int i = 0; i < nparams; i++)
        mem_free(names[i]);
    mem_free(names);
out:
    mem_free(vars);
    PQclear(tis);
    PQclear(ctx);
    return rc;
}

/* Returns DB_OK and sets *started to the number of runs started. */
static int sched_start_runs(sched *s, int *started, char *err, size_t errlen)
{
    *started = 0;
    PGresult *r;
    int rc = db_query(
        s->d, "sched_startable_runs",
        "SELECT q.run_id, q.dag_id FROM ("
        "  SELECT r.run_id, r.dag_id, r.logical_date,"
        "   row_number() OVER (PARTITION BY r.dag_id ORDER BY r.logical_date, r.run_id) AS rk"
        "  FROM dagq.dag_run r WHERE r.state = 'queued') q"
        " JOIN dagq.dag d ON d.dag_id = q.dag_id"
        " WHERE NOT d.is_paused AND q.rk <= d.max_active_runs -"
        "  (SELECT count(*) FROM dagq.dag_run x WHERE x.dag_id = q.dag_id AND x.state = 'running')"
        " ORDER BY q.logical_date, q.run_id LIMIT 100",
        0, NULL, &r, err, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        const char *p[1] = {PQgetvalue(r, i, 0)};
        PGresult *st;
        rc = db_query(s->d, "sched_start_run", "SELECT dagq.start_run($1)", 1, p, &st, err, errlen);
        if (rc)
            break;
        long long n = sched_ll(st, 0, 0);
        PQclear(st);
        if (n < 0)
            continue;
        (*started)++;
        log_info("run started", "dag=%s run=%s tasks=%lld", PQgetvalue(r, i, 1), p[0], n);
        rc = sched_render_run(s, p[0], err, errlen);
    }
    PQclear(r);
    return rc;
}

/* ---- zombies ------------------------------------------------------------------------ */

static int sched_zombies(sched *s, char *err, size_t errlen)
{
    char thr[32], lim[16];
    snprintf(thr, sizeof thr, "%.3f", s->conf.heartbeat_timeout_s);
    snprintf(lim, sizeof lim, "%d", s->conf.batch);
    const char *p[2] = {thr, lim};
    PGresult *r;
    int rc = db_query(s->d, "sched_zombies", "SELECT * FROM dagq.find_zombies($1, $2)", 2, p, &r,
                      err, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        int try_number = (int)sched_ll(r, i, 1);
        double delay =
            backoff_retry_delay(atof(PQgetvalue(r, i, 7)), try_number,
                                PQgetvalue(r, i, 8)[0] == 't', atof(PQgetvalue(r, i, 9)));
        char *note = mem_printf("zombie: worker %s sent no heartbeat for %.0fs",
                                PQgetvalue(r, i, 6), atof(PQgetvalue(r, i, 10)));
        char d[32];
        snprintf(d, sizeof d, "%.3f", delay);
        const char *u[4] = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), d, note};
        PGresult *a;
        rc = db_query(s->d, "sched_abandon", "SELECT dagq.abandon_try($1, $2, $3, $4)", 4, u, &a,
                      err, errlen);
        if (rc == 0) {
            if (!PQgetisnull(a, 0, 0)) {
                metrics_ti_state(s->conf.metrics, PQgetvalue(r, i, 11), PQgetvalue(a, 0, 0), 1);
                log_warn("zombie try taken away",
                         "dag=%s run=%s task=%s ti=%s try=%d worker=%s "
                         "silent_s=%.0f new_state=%s",
                         PQgetvalue(r, i, 3), PQgetvalue(r, i, 5), PQgetvalue(r, i, 4),
                         PQgetvalue(r, i, 0), try_number, PQgetvalue(r, i, 6),
                         atof(PQgetvalue(r, i, 10)), PQgetvalue(a, 0, 0));
            }
            PQclear(a);
        }
        mem_free(note);
    }
    PQclear(r);
    return rc;
}

/* ---- queueing ------------------------------------------------------------------------ */

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
    char err[512];
    int rc = 0, pushed = 0;
    for (int i = 0; i < s->npending; i++) {
        msg_task *m = &s->pending[i];
        char *buf;
        size_t len;
        if (msg_encode(m, &buf, &len, err, sizeof err)) {
            log_error("cannot encode task message", "ti=%lld error=\"%s\"", (long long)m->ti, err);
            continue;
        }
        rc = queue_push(s->q, m->group, buf, len, err, sizeof err);
        mem_free(buf);
        if (rc) {
            log_warn("push failed; tries wait for the re-push", "group=%s error=\"%s\"", m->group,
                     err);
            break;
        }
        pushed++;
    }
    if (rc == 0 && pushed) {
        rc = queue_flush(s->q, 10000, err, sizeof err);
        if (rc)
            log_warn("push failed; tries wait for the re-push", "error=\"%s\"", err);
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

static int sched_queue(sched *s, int *full, char *err, size_t errlen)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", s->conf.batch);
    const char *p[1] = {lim};
    PGresult *r;
    /* first what trigger rules decide without running (upstream_failed,
     * skipped), counted by group and state */
    int rc = db_query(s->d, "sched_settle", "SELECT * FROM dagq.settle_trigger_rules()", 0, NULL,
                      &r, err, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++)
        metrics_ti_state(s->conf.metrics, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                         sched_ll(r, i, 2));
    PQclear(r);
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

/* Pushes again the tries left 'queued' longer than the queued timeout. */
static int sched_requeue_stale(sched *s, char *err, size_t errlen)
{
    PGresult *r;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", s->conf.batch);
    /* A scheduler that just started cannot know whether its predecessor died
     * between COMMIT and push: its first housekeeping re-pushes what has been
     * queued for a couple of seconds instead of waiting the whole timeout
     * (a duplicate is harmless, the claim is fenced). */
    double timeout = s->conf.queued_timeout_s;
    if (!s->repushed_once && timeout > 2.0)
        timeout = 2.0;
    char to[32];
    snprintf(to, sizeof to, "%.3f", timeout);
    const char *q[2] = {to, lim};
    int rc = db_query(s->d, "sched_requeue", "SELECT * FROM dagq.requeue_stale($1, $2)", 2, q, &r,
                      err, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++)
        log_warn("queued try not started in time; pushing it again",
                 "dag=%s run=%s task=%s ti=%s try=%s group=%s queued_timeout_s=%.0f",
                 PQgetvalue(r, i, 2), PQgetvalue(r, i, 4), PQgetvalue(r, i, 3), PQgetvalue(r, i, 0),
                 PQgetvalue(r, i, 1), PQgetvalue(r, i, 5), s->conf.queued_timeout_s);
    s->repushed_once = 1;
    sched_collect(s, r);
    PQclear(r);
    return 0;
}

static int sched_finish_runs(sched *s, char *err, size_t errlen)
{
    PGresult *r;
    int rc = db_query(s->d, "sched_finish_runs", "SELECT * FROM dagq.finish_runs()", 0, NULL, &r,
                      err, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        log_info("run finished", "dag=%s run=%s state=%s", PQgetvalue(r, i, 1), PQgetvalue(r, i, 0),
                 PQgetvalue(r, i, 2));
        metrics_run_finished(s->conf.metrics, PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return 0;
}

int sched_pass(sched *s)
{
    char err[1024];
    double t0 = sched_now();
    int full = 0, rc;
    int kept = s->npending; /* unpushed messages of earlier passes */
    int housekeeping = (t0 - s->last_housekeeping) * 1000.0 >= s->conf.housekeeping_ms;

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
    if (housekeeping) {
        if ((rc = sched_create_runs(s, err, sizeof err)))
            goto fail;
        /* no zombie verdicts until workers had a heartbeat timeout to reach
         * the database we just reached */
        if (t0 - s->connected_at >= s->conf.heartbeat_timeout_s &&
            (rc = sched_zombies(s, err, sizeof err)))
            goto fail;
        if ((rc = sched_requeue_stale(s, err, sizeof err)))
            goto fail;
    }
    int started = 0;
    if ((rc = sched_start_runs(s, &started, err, sizeof err)))
        goto fail;
    if (started) {
        /* commit new runs' task instances at once and queue them in the next
         * pass: the first tries start sooner than after one long transaction */
        full = 1;
        goto commit;
    }
    if ((rc = sched_queue(s, &full, err, sizeof err)))
        goto fail;
    if ((rc = sched_finish_runs(s, err, sizeof err)))
        goto fail;
commit:
    if ((rc = db_exec(s->d, "COMMIT", err, sizeof err)))
        goto fail;
    if (housekeeping)
        s->last_housekeeping = t0;
    s->stats.passes++;
    int prc = 0;
    if (s->npending)
        prc = sched_push_pending(s);
    s->stats.last_pass_ms = (sched_now() - t0) * 1000.0;
    if (prc == QUEUE_ECONN)
        return QUEUE_ECONN;
    return full ? 1 : 0;

fail:
    s->npending = kept; /* this pass did not commit: nothing of it to push */
    if (rc != DB_ECONN) {
        log_error("scheduling pass failed", "error=\"%s\"", err);
        char ignore[256];
        db_exec(s->d, "ROLLBACK", ignore, sizeof ignore);
    }
    return rc;
}
