#include "results.h"

#include "backoff.h"
#include "log.h"
#include "mem.h"
#include "msg.h"

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
    int failures;   /* lasting failures so far */
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

/* Writes x: the whole result, the result without its output, or the try
 * given back, by how often it failed. *res holds the new state (NULL: the
 * try had been taken away). */
static int results_write(results *r, db *d, result *x, PGresult **res, char *err, size_t errlen)
{
    char ti[32], tr[16];
    snprintf(ti, sizeof ti, "%lld", x->ti);
    snprintf(tr, sizeof tr, "%d", x->try_number);
    if (x->failures >= RESULTS_MINIMAL_TRIES) {
        const char *p[5] = {ti, tr, r->worker, r->incarnation,
                            "given back: the worker could not record the try's result"};
        return db_query(d, "worker_release_unrecorded",
                        "SELECT dagq.release_try($1, $2, $3, $4::uuid, $5)", 5, p, res, err,
                        errlen);
    }
    char code[16], delay[32], trunc[32];
    snprintf(code, sizeof code, "%d", x->exit_code);
    snprintf(delay, sizeof delay, "%.3f", x->retry_in);
    snprintf(trunc, sizeof trunc, "%lld", x->truncated);
    int minimal = x->failures >= RESULTS_FULL_TRIES;
    char *note = minimal ? mem_printf("%s%s(output not kept: it could not be recorded)",
                                      x->note ? x->note : "", x->note ? " " : "")
                         : NULL;
    const char *p[10] = {ti,
                         tr,
                         r->worker,
                         r->incarnation,
                         x->ok ? "t" : "f",
                         x->exit_code >= 0 ? code : NULL,
                         delay,
                         minimal ? note : x->note,
                         minimal ? "" : x->output,
                         minimal ? "0" : trunc};
    int rc = db_query(d, "worker_finish",
                      "SELECT dagq.finish_try($1, $2, $3, $4::uuid, $5, $6, $7, $8, $9, $10)", 10,
                      p, res, err, errlen);
    mem_free(note);
    return rc;
}

/* The result was written (*res holds the new state or NULL). */
static void results_done(results *r, result *x, PGresult *res)
{
    if (PQgetisnull(res, 0, 0)) {
        log_warn("try was taken away before it finished; result discarded",
                 "dag=%s task=%s ti=%lld try=%d worker=%s", x->dag, x->task, x->ti, x->try_number,
                 r->worker);
    } else {
        const char *st = PQgetvalue(res, 0, 0);
        metrics_ti_state(r->m, x->group, st, 1);
        log_info(x->failures >= RESULTS_MINIMAL_TRIES ? "try given back" : "try finished",
                 "dag=%s task=%s ti=%lld try=%d state=%s exit_code=%d", x->dag, x->task, x->ti,
                 x->try_number, st, x->exit_code);
    }
}

void results_flush(results *r, db *d, double now)
{
    result **pp = &r->head;
    while (*pp) {
        result *x = *pp;
        if (x->next_at > now) {
            pp = &x->next;
            continue;
        }
        PGresult *res = NULL;
        char err[512], q[512];
        int rc = results_write(r, d, x, &res, err, sizeof err);
        if (rc == DB_ECONN)
            return; /* kept; written when the database is back */
        if (rc == DB_EQUERY) {
            int transient = db_error_transient(d);
            if (!transient)
                x->failures++;
            x->next_at = now + (transient ? 0.05 : backoff_reconnect_ms(x->failures - 1) / 1000.0);
            log_write(transient ? LOG_WARN : LOG_ERROR,
                      transient ? "cannot record the result yet; trying again"
                                : "cannot record the result; trying again",
                      "dag=%s task=%s ti=%lld try=%d failures=%d error=\"%s\"", x->dag, x->task,
                      x->ti, x->try_number, x->failures, log_quote(err, q, sizeof q));
            pp = &x->next;
            continue;
        }
        results_done(r, x, res);
        PQclear(res);
        *pp = x->next;
        r->n--;
        results_drop(x);
    }
}
