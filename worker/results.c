#include "results.h"

#include "backoff.h"
#include "log.h"
#include "mem.h"
#include "msg.h"
#include "pgarray.h"

#include <stdio.h>
#include <string.h>

#define RESULTS_FULL_TRIES 3    /* failures before the output is left out */
#define RESULTS_MINIMAL_TRIES 6 /* failures before the try is given back */

typedef struct result {
    long long ti;
    int try_number, ok, exit_code;
    double retry_in;
    char *note, *output;
    long long truncated;
    char dag[MSG_ID_MAX], task[MSG_ID_MAX], group[MSG_ID_MAX];
    int failures;   /* lasting failures so far (written alone) */
    int solo;       /* a batch with it failed: written alone from now on */
    int done;       /* written: to be unlinked */
    double next_at; /* monotonic: not before */
    struct result *next;
} result;

struct results {
    const char *worker, *incarnation;
    metrics *m;
    result *head;
    int n;
};

results *results_new(const char *worker, const char *incarnation, metrics *m)
{
    results *r = mem_calloc(1, sizeof *r);
    r->worker = worker;
    r->incarnation = incarnation;
    r->m = m;
    return r;
}

static void results_drop(result *x)
{
    mem_free(x->note);
    mem_free(x->output);
    mem_free(x);
}

void results_free(results *r)
{
    if (!r)
        return;
    for (result *x = r->head, *next; x; x = next) {
        next = x->next;
        results_drop(x);
    }
    mem_free(r);
}

void results_add(results *r, long long ti, int try_number, int ok, int exit_code, double retry_in_s,
                 const char *note, char *output, long long truncated, const char *dag,
                 const char *task, const char *group)
{
    result *x = mem_calloc(1, sizeof *x);
    x->ti = ti;
    x->try_number = try_number;
    x->ok = ok;
    x->exit_code = exit_code;
    x->retry_in = retry_in_s;
    x->note = mem_strdup(note);
    x->output = output ? output : mem_strdup("");
    x->truncated = truncated;
    snprintf(x->dag, sizeof x->dag, "%s", dag);
    snprintf(x->task, sizeof x->task, "%s", task);
    snprintf(x->group, sizeof x->group, "%s", group);
    result **pp = &r->head;
    while (*pp)
        pp = &(*pp)->next;
    *pp = x;
    r->n++;
}

int results_pending(const results *r)
{
    return r->n;
}

double results_next_in(const results *r, double now)
{
    double best = -1;
    for (const result *x = r->head; x; x = x->next) {
        double in = x->next_at > now ? x->next_at - now : 0;
        if (best < 0 || in < best)
            best = in;
    }
    return best;
}

/* The arrays of dagq.finish_tries, one element per result. */
typedef struct finish_args {
    pgarray ti, tr, ok, code, delay, note, out, trunc;
} finish_args;

static void finish_args_add(finish_args *f, const result *x)
{
    int minimal = x->failures >= RESULTS_FULL_TRIES;
    pgarray_add_ll(&f->ti, x->ti);
    pgarray_add_ll(&f->tr, x->try_number);
    pgarray_add_bool(&f->ok, x->ok);
    if (x->exit_code >= 0)
        pgarray_add_ll(&f->code, x->exit_code);
    else
        pgarray_add(&f->code, NULL);
    pgarray_add_double(&f->delay, x->retry_in);
    if (minimal) {
        char *note = mem_printf("%s%s(output not kept: it could not be recorded)",
                                x->note ? x->note : "", x->note ? " " : "");
        pgarray_add(&f->note, note);
        mem_free(note);
    } else {
        pgarray_add(&f->note, x->note);
    }
    pgarray_add(&f->out, minimal ? "" : x->output);
    pgarray_add_ll(&f->trunc, minimal ? 0 : x->truncated);
}

/* One dagq.finish_tries for xs[0..n): *res gets a row per result, in their
 * order, its new state NULL when the try had been taken away. Each result
 * goes whole, or without its output when writing it failed three times. */
static int results_finish(results *r, db *d, result **xs, int n, PGresult **res, char *err,
                          size_t errlen)
{
    finish_args f;
    pgarray *all[] = {&f.ti, &f.tr, &f.ok, &f.code, &f.delay, &f.note, &f.out, &f.trunc};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        pgarray_init(all[k]);
    for (int i = 0; i < n; i++)
        finish_args_add(&f, xs[i]);
    const char *p[10] = {pgarray_lit(&f.ti),    pgarray_lit(&f.tr),   r->worker,
                         r->incarnation,        pgarray_lit(&f.ok),   pgarray_lit(&f.code),
                         pgarray_lit(&f.delay), pgarray_lit(&f.note), pgarray_lit(&f.out),
                         pgarray_lit(&f.trunc)};
    int rc =
        db_query(d, "worker_finish",
                 "SELECT * FROM dagq.finish_tries($1, $2, $3, $4::uuid, $5, $6, $7, $8, $9, $10)",
                 10, p, res, err, errlen);
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        pgarray_free(all[k]);
    if (rc == DB_OK) {
        metrics_counter_add(r->m, "dagq_worker_batches_total", "op=\"finish\"", 1);
        metrics_counter_add(r->m, "dagq_worker_batch_items_total", "op=\"finish\"", n);
    }
    if (rc == DB_OK && PQntuples(*res) != n) {
        snprintf(err, errlen, "dagq.finish_tries answered %d rows for %d results", PQntuples(*res),
                 n);
        PQclear(*res);
        *res = NULL;
        return DB_EQUERY;
    }
    return rc;
}

/* Gives x's try back (its result could not be written six times). *res
 * holds the new state, or NULL when the try had been taken away. */
static int results_release(results *r, db *d, result *x, PGresult **res, char *err, size_t errlen)
{
    char ti[32], tr[16];
    snprintf(ti, sizeof ti, "%lld", x->ti);
    snprintf(tr, sizeof tr, "%d", x->try_number);
    const char *p[5] = {ti, tr, r->worker, r->incarnation,
                        "given back: the worker could not record the try's result"};
    return db_query(d, "worker_release_unrecorded",
                    "SELECT dagq.release_try($1, $2, $3, $4::uuid, $5)", 5, p, res, err, errlen);
}

/* x was written: st its new state, or NULL when the try had been taken away. */
static void results_done(results *r, result *x, const char *st)
{
    if (!st) {
        log_warn("try was taken away before it finished; result discarded",
                 "dag=%s task=%s ti=%lld try=%d worker=%s", x->dag, x->task, x->ti, x->try_number,
                 r->worker);
    } else {
        metrics_ti_state(r->m, x->group, st, 1);
        log_info(x->failures >= RESULTS_MINIMAL_TRIES ? "try given back" : "try finished",
                 "dag=%s task=%s ti=%lld try=%d state=%s exit_code=%d", x->dag, x->task, x->ti,
                 x->try_number, st, x->exit_code);
    }
}

/* Unlinks and frees the results whose done flag is set. */
static void results_sweep(results *r)
{
    for (result **pp = &r->head; *pp;) {
        result *x = *pp;
        if (!x->done) {
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        r->n--;
        results_drop(x);
    }
}

/* Every due result that has never failed, in one statement and one commit.
 * Returns DB_ECONN when the connection went (all kept); a batch that fails
 * otherwise is tried again result by result (results_flush_one), so one
 * result the metastore refuses never holds back the others. */
static int results_flush_batch(results *r, db *d, double now)
{
    result **xs = mem_calloc((size_t)r->n + 1, sizeof *xs);
    int n = 0;
    for (result *x = r->head; x; x = x->next)
        if (!x->solo && x->next_at <= now)
            xs[n++] = x;
    int rc = DB_OK;
    if (n > 0) {
        PGresult *res = NULL;
        char err[512], q[512];
        rc = results_finish(r, d, xs, n, &res, err, sizeof err);
        if (rc == DB_OK) {
            for (int i = 0; i < n; i++) {
                results_done(r, xs[i], PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2));
                xs[i]->done = 1;
            }
            PQclear(res);
            results_sweep(r);
        } else if (rc == DB_EQUERY) {
            int transient = db_error_transient(d);
            log_warn(transient ? "cannot record the results yet; trying again"
                               : "cannot record a batch of results; writing them one by one",
                     "results=%d error=\"%s\"", n, log_quote(err, q, sizeof q));
            for (int i = 0; i < n; i++) {
                if (transient)
                    xs[i]->next_at = now + 0.05;
                else
                    xs[i]->solo = 1;
            }
        }
    }
    mem_free(xs);
    return rc;
}

/* Writes x alone: the whole result, the result without its output, or the
 * try given back, by how often it failed. Returns DB_ECONN when the
 * connection went. */
static int results_flush_one(results *r, db *d, result *x, double now)
{
    PGresult *res = NULL;
    char err[512], q[512];
    int rc = x->failures >= RESULTS_MINIMAL_TRIES
                 ? results_release(r, d, x, &res, err, sizeof err)
                 : results_finish(r, d, &x, 1, &res, err, sizeof err);
    if (rc == DB_ECONN)
        return rc; /* kept; written when the database is back */
    if (rc == DB_EQUERY) {
        int transient = db_error_transient(d);
        if (!transient)
            x->failures++;
        x->next_at = now + (transient ? 0.05 : backoff_reconnect_ms(x->failures - 1) / 1000.0);
        log_write(transient ? LOG_WARN : LOG_ERROR,
                  transient ? "cannot record the result yet; trying again"
                            : "cannot record the result; trying again",
                  "dag=%s task=%s ti=%lld try=%d failures=%d error=\"%s\"", x->dag, x->task, x->ti,
                  x->try_number, x->failures, log_quote(err, q, sizeof q));
        return rc;
    }
    int col = x->failures >= RESULTS_MINIMAL_TRIES ? 0 : 2;
    results_done(r, x, PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col));
    PQclear(res);
    x->done = 1;
    return DB_OK;
}

void results_flush(results *r, db *d, double now)
{
    if (results_flush_batch(r, d, now) == DB_ECONN)
        return;
    for (result *x = r->head; x; x = x->next)
        if (x->solo && x->next_at <= now && results_flush_one(r, d, x, now) == DB_ECONN)
            break;
    results_sweep(r);
}
