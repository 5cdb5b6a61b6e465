#include "runs.h"

#include "log.h"
#include "mem.h"
#include "timetable.h"
#include "tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long runs_ll(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int runs_park(db *d, metrics *m, const char *dag_id, const char *reason, char *errbuf,
              size_t errlen)
{
    const char *p[2] = {dag_id, reason};
    PGresult *r;
    int rc = db_query(d, "runs_park", "SELECT dagq.park_dag($1, $2)", 2, p, &r, errbuf, errlen);
    if (rc)
        return rc;
    if (PQgetvalue(r, 0, 0)[0] == 't') {
        char q[600];
        log_error("DAG parked: the scheduler cannot evaluate or start it; every other DAG goes "
                  "on, and editing its definition unparks it",
                  "dag=%s reason=\"%s\"", dag_id, log_quote(reason, q, sizeof q));
        metrics_counter_add(m, "dagq_dags_parked_total", NULL, 1);
    }
    PQclear(r);
    return DB_OK;
}

/* After a DAG's statement failed inside savepoint sp: undoes it, then parks
 * the DAG for a lasting failure or leaves it to the next pass for a
 * transient one. Returns DB_OK or DB_ECONN. */
static int runs_contain(db *d, metrics *m, const char *sp, const char *dag_id, const char *what,
                        int rc, char *errbuf, size_t errlen)
{
    if (rc == DB_ECONN)
        return rc;
    char why[1024], q[1024];
    snprintf(why, sizeof why, "%s: %s", what, errbuf);
    int transient = db_error_transient(d);
    if ((rc = db_rollback_to(d, sp, errbuf, errlen)))
        return rc; /* the pass cannot go on: it starts over */
    if (transient) {
        log_warn("DAG left for the next pass", "dag=%s reason=\"%s\"", dag_id,
                 log_quote(why, q, sizeof q));
        return DB_OK;
    }
    return runs_park(d, m, dag_id, why, errbuf, errlen);
}

/* The due DAGs: scheduled, unpaused, unparked, below max_active_runs (a
 * backfill's runs waiting for their turn do not count), each with the row
 * version read (xmin: the next interval is stored only if no edit came
 * since, dagq.set_next_dagrun's fence), with
 * every time converted so that no stored value can fail the query (a value
 * out of range comes back as a problem to park the DAG for). */
static const char *const runs_due_sql =
    "SELECT d.dag_id, d.schedule, d.timezone,"
    " CASE WHEN isfinite(d.start_date) THEN floor(extract(epoch FROM d.start_date))::bigint END,"
    " CASE WHEN isfinite(d.end_date) THEN floor(extract(epoch FROM d.end_date))::bigint END,"
    " d.catchup,"
    " CASE WHEN isfinite(d.next_dagrun_start)"
    "      THEN floor(extract(epoch FROM d.next_dagrun_start))::bigint END,"
    " CASE WHEN isfinite(d.next_dagrun_end)"
    "      THEN floor(extract(epoch FROM d.next_dagrun_end))::bigint END,"
    " floor(extract(epoch FROM d.created_at))::bigint, d.max_active_runs, a.n,"
    " floor(extract(epoch FROM clock_timestamp()))::bigint,"
    " COALESCE(dagq.date_problem('start_date', d.start_date),"
    "          dagq.date_problem('end_date', d.end_date)),"
    " d.xmin::text"
    " FROM dagq.dag d"
    " CROSS JOIN LATERAL (SELECT count(*) AS n FROM dagq.dag_run x"
    "                      WHERE x.dag_id = d.dag_id AND (x.state = 'running'"
    "                        OR (x.state = 'queued' AND x.backfill_id IS NULL))) a"
    " WHERE d.schedule IS NOT NULL AND NOT d.is_paused AND d.parked_reason IS NULL"
    "   AND (d.next_dagrun_end IS NULL OR d.next_dagrun_end <= clock_timestamp())"
    "   AND a.n < d.max_active_runs"
    " ORDER BY d.next_dagrun_end NULLS FIRST LIMIT 500";

/* Inserts the due runs of one DAG (row i of the due query) and stores its
 * next interval. Returns DB_OK, a db error, or 1 (errbuf) when the
 * schedule cannot be evaluated. */
static int runs_create_one(db *d, PGresult *r, int i, int *created, char *errbuf, size_t errlen)
{
    const char *dag_id = PQgetvalue(r, i, 0);
    timetable_dag t = {
        .schedule = PQgetvalue(r, i, 1),
        .timezone = PQgetvalue(r, i, 2),
        .start_date = runs_ll(r, i, 3),
        .end_date = runs_ll(r, i, 4),
        .catchup = PQgetvalue(r, i, 5)[0] == 't',
        .next_start = runs_ll(r, i, 6),
        .next_end = runs_ll(r, i, 7),
        .created_at = runs_ll(r, i, 8),
    };
    long long max_active = runs_ll(r, i, 9), active = runs_ll(r, i, 10), now = runs_ll(r, i, 11);
    long long st, en;
    if (timetable_next(&t, now, &st, &en, errbuf, errlen))
        return 1;
    int rc;
    while (en != TIMETABLE_DONE && en <= now && active < max_active) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%lld", st);
        snprintf(b, sizeof b, "%lld", en);
        const char *p[3] = {dag_id, a, b};
        PGresult *ins;
        rc = db_query(d, "runs_insert", "SELECT dagq.create_scheduled_run($1, $2, $3)", 3, p, &ins,
                      errbuf, errlen);
        if (rc)
            return rc;
        if (!PQgetisnull(ins, 0, 0)) {
            active++;
            (*created)++;
            log_info("run created", "dag=%s run=%s interval_start=%lld interval_end=%lld", dag_id,
                     PQgetvalue(ins, 0, 0), st, en);
        }
        PQclear(ins);
        if (timetable_after(&t, en, &st, &en, errbuf, errlen))
            return 1;
    }
    char a[32], b[32];
    snprintf(a, sizeof a, "%lld", st);
    snprintf(b, sizeof b, "%lld", en);
    /* an edit committed since the read wins: it notifies, and the next pass
     * computes the interval from what it wrote */
    const char *p[4] = {dag_id, a, en == TIMETABLE_DONE ? NULL : b, PQgetvalue(r, i, 13)};
    return db_query(d, "runs_set_next", "SELECT dagq.set_next_dagrun($1, $2, $3, $4::xid)", 4, p,
                    NULL, errbuf, errlen);
}

int runs_create(db *d, metrics *m, int *created, char *errbuf, size_t errlen)
{
    *created = 0;
    PGresult *r;
    int rc = db_query(d, "runs_due", runs_due_sql, 0, NULL, &r, errbuf, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *dag_id = PQgetvalue(r, i, 0);
        if (!PQgetisnull(r, i, 12)) {
            if ((rc = runs_park(d, m, dag_id, PQgetvalue(r, i, 12), errbuf, errlen)))
                goto out;
            continue;
        }
        if ((rc = db_savepoint(d, "dag_runs", errbuf, errlen)))
            goto out;
        rc = runs_create_one(d, r, i, created, errbuf, errlen);
        if (rc == 1) {
            /* the database checks schedules on insert, so this is a row
             * written before that check, or a disagreement between the SQL
             * and C parsers */
            char why[1024];
            snprintf(why, sizeof why, "schedule \"%s\" (timezone %s) cannot be evaluated: %s",
                     PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), errbuf);
            if ((rc = db_rollback_to(d, "dag_runs", errbuf, errlen)) ||
                (rc = runs_park(d, m, dag_id, why, errbuf, errlen)))
                goto out;
            continue;
        }
        if (rc == DB_OK)
            rc = db_release(d, "dag_runs", errbuf, errlen);
        else
            rc = runs_contain(d, m, "dag_runs", dag_id, "creating runs", rc, errbuf, errlen);
        if (rc)
            goto out;
    }
out:
    PQclear(r);
    return rc;
}

/* ---- starting queued runs ------------------------------------------------------ */

/* The template variables of a run: dates, ids and the frozen params. */
typedef struct runs_vars {
    tmpl_var *v;
    size_t n;
    char **names;
    int nparams;
    char dates[5][40];
} runs_vars;

static void runs_vars_free(runs_vars *rv)
{
    for (int i = 0; i < rv->nparams; i++)
        mem_free(rv->names[i]);
    mem_free(rv->names);
    mem_free(rv->v);
}

/* Fills rv from ctx (rows: dag, logical date, interval, param key, value,
 * whether the value came from the run's conf). */
static void runs_vars_fill(runs_vars *rv, PGresult *ctx, const char *run_id)
{
    rv->nparams = PQgetisnull(ctx, 0, 4) ? 0 : PQntuples(ctx);
    rv->n = 8 + (size_t)rv->nparams;
    rv->v = mem_calloc(rv->n, sizeof *rv->v);
    tmpl_date_vars(runs_ll(ctx, 0, 1), runs_ll(ctx, 0, 2), runs_ll(ctx, 0, 3), rv->v, rv->dates);
    rv->v[5] = (tmpl_var){"run_id", run_id, TMPL_FROM_DAG};
    rv->v[6] = (tmpl_var){"dag_id", PQgetvalue(ctx, 0, 0), TMPL_FROM_DAG};
    rv->names = mem_calloc((size_t)rv->nparams + 1, sizeof *rv->names);
    for (int i = 0; i < rv->nparams; i++) {
        rv->names[i] = mem_printf("params.%s", PQgetvalue(ctx, i, 4));
        /* a value a run's conf gave (or overrode) is never trusted raw */
        tmpl_origin o = PQgetvalue(ctx, i, 6)[0] == 'f' ? TMPL_FROM_DAG : TMPL_FROM_CONF;
        rv->v[8 + i] = (tmpl_var){rv->names[i], PQgetvalue(ctx, i, 5), o};
    }
}

/* Renders the templated commands of a run that was just started. */
static int runs_render(db *d, metrics *m, const char *run_id, char *errbuf, size_t errlen)
{
    PGresult *tis = NULL, *ctx = NULL;
    runs_vars rv = {0};
    const char *p[1] = {run_id};
    int rc = db_query(d, "runs_templated",
                      "SELECT ti_id, task_id, command FROM dagq.task_instance"
                      " WHERE run_id = $1 AND strpos(command, '{{') > 0",
                      1, p, &tis, errbuf, errlen);
    if (rc || PQntuples(tis) == 0)
        goto out;
    rc = db_query(d, "runs_ctx",
                  "SELECT r.dag_id,"
                  " floor(extract(epoch FROM r.logical_date))::bigint,"
                  " floor(extract(epoch FROM r.data_interval_start))::bigint,"
                  " floor(extract(epoch FROM r.data_interval_end))::bigint,"
                  " p.key, COALESCE(p.value #>> '{}', ''), COALESCE(r.conf ? p.key, true)"
                  " FROM dagq.dag_run r"
                  " LEFT JOIN LATERAL jsonb_each(COALESCE(r.params, '{}')) p ON true"
                  " WHERE r.run_id = $1",
                  1, p, &ctx, errbuf, errlen);
    if (rc || PQntuples(ctx) == 0)
        goto out;
    runs_vars_fill(&rv, ctx, run_id);
    for (int i = 0; i < PQntuples(tis) && rc == 0; i++) {
        const char *task_id = PQgetvalue(tis, i, 1);
        rv.v[7] = (tmpl_var){"task_id", task_id, TMPL_FROM_DAG};
        char *out = NULL, terr[512], q[600];
        if (tmpl_render(PQgetvalue(tis, i, 2), rv.v, rv.n, &out, terr, sizeof terr) == 0) {
            const char *u[2] = {PQgetvalue(tis, i, 0), out};
            rc = db_query(d, "runs_set_command", "SELECT dagq.set_command($1, $2)", 2, u, NULL,
                          errbuf, errlen);
        } else {
            char *note = mem_printf("template error: %s", terr);
            log_warn("command does not render; task instance failed", "run=%s task=%s error=\"%s\"",
                     run_id, task_id, log_quote(terr, q, sizeof q));
            const char *u[2] = {PQgetvalue(tis, i, 0), note};
            rc = db_query(d, "runs_fail_render", "SELECT dagq.fail_unrendered($1, $2)", 2, u, NULL,
                          errbuf, errlen);
            metrics_counter_add(m, "dagq_task_instances_failed_unscheduled_total", NULL, 1);
            mem_free(note);
        }
        mem_free(out);
    }
out:
    runs_vars_free(&rv);
    PQclear(tis);
    PQclear(ctx);
    return rc;
}

/* Starts one run inside savepoint "run_start". Returns DB_OK (with *n the
 * number of task instances, -1 when another scheduler took it) or an error. */
static int runs_start_one(db *d, metrics *m, const char *run_id, long long *n, char *errbuf,
                          size_t errlen)
{
    const char *p[1] = {run_id};
    PGresult *st;
    int rc = db_query(d, "runs_start", "SELECT dagq.start_run($1)", 1, p, &st, errbuf, errlen);
    if (rc)
        return rc;
    *n = runs_ll(st, 0, 0);
    PQclear(st);
    if (*n < 0)
        return DB_OK;
    return runs_render(d, m, run_id, errbuf, errlen);
}

int runs_start(db *d, metrics *m, int max, int *started, long long *tis, char *errbuf,
               size_t errlen)
{
    *started = 0;
    *tis = 0;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", max);
    const char *lp[1] = {lim};
    PGresult *r;
    /* which runs may start (max_active_runs, backfills' order and caps) is
     * the database's decision; a backfill's reruns are done in it */
    int rc = db_query(d, "runs_startable", "SELECT run_id, dag_id FROM dagq.runs_to_start($1)", 1,
                      lp, &r, errbuf, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *run_id = PQgetvalue(r, i, 0), *dag_id = PQgetvalue(r, i, 1);
        if ((rc = db_savepoint(d, "run_start", errbuf, errlen)))
            break;
        long long n = -1;
        rc = runs_start_one(d, m, run_id, &n, errbuf, errlen);
        if (rc == DB_OK) {
            if ((rc = db_release(d, "run_start", errbuf, errlen)))
                break;
            if (n >= 0) {
                (*started)++;
                *tis += n;
                log_info("run started", "dag=%s run=%s tasks=%lld", dag_id, run_id, n);
            }
            continue;
        }
        char what[64];
        snprintf(what, sizeof what, "starting run %s", run_id);
        if ((rc = runs_contain(d, m, "run_start", dag_id, what, rc, errbuf, errlen)))
            break;
    }
    PQclear(r);
    return rc;
}
