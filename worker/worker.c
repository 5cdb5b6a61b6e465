#include "worker.h"

#include "backoff.h"
#include "child.h"
#include "db.h"
#include "intake.h"
#include "clock.h"
#include "log.h"
#include "mem.h"
#include "msg.h"
#include "pgarray.h"
#include "results.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define KILL_GRACE_S 5.0  /* TERM, then KILL this long after */
#define CHECK_EVERY_S 0.5 /* how often running tries are checked against the metastore */

/* The columns of dagq.claim_tries. */
enum {
    CL_TI,
    CL_TRY,
    CL_COMMAND,
    CL_ENV,
    CL_TIMEOUT,
    CL_DAG,
    CL_TASK,
    CL_RUN,
    CL_LOGICAL_DATE,
    CL_MAX_TRIES,
    CL_RETRY_DELAY,
    CL_EXP_BACKOFF,
    CL_MAX_RETRY_DELAY
};

/* A try this worker runs. */
typedef struct run {
    child *ch;
    long long ti, run_id;
    int try_number, exp_backoff, exited, status, timed_out;
    long long log_sent; /* output bytes (kept + truncated) last written as progress */
    double retry_delay, max_retry_delay;
    double started, deadline, kill_at; /* monotonic seconds; 0 = none */
    char dag[MSG_ID_MAX], task[MSG_ID_MAX], group[MSG_ID_MAX];
    struct run *next;
} run;

struct worker {
    worker_conf conf;
    db *d;
    intake *in;
    results *res;
    char host[256], incarnation[40];
    int nrunning, draining, slots_shown;
    run *runs;
    double next_heartbeat, next_db_attempt, drain_deadline, take_after, next_check;
    int db_attempt;
    /* the worker's environment less its own settings and the database's
     * (credentials are not the tasks' business): every task's base, built
     * once; the strings are environ's */
    char **base_env;
    size_t nbase_env;
    struct pollfd *pfds;
    int cap;
};

/* A version 4 UUID from the kernel's random source. */
static void worker_draw_incarnation(char out[40])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_error("getrandom failed; cannot draw an incarnation id", "error=\"%s\"",
                      strerror(errno));
            abort();
        }
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* Connection settings and secrets a task must not inherit: dagq's own
 * (DAGQ_*: the database and broker URLs among them) and libpq's (PG*). */
static int worker_env_private(const char *kv)
{
    return !strncmp(kv, "DAGQ_", 5) || !strncmp(kv, "PG", 2);
}

static void worker_base_env(worker *w)
{
    size_t n = 0;
    while (environ[n])
        n++;
    w->base_env = mem_calloc(n + 1, sizeof *w->base_env);
    for (size_t i = 0; i < n; i++)
        if (!worker_env_private(environ[i]))
            w->base_env[w->nbase_env++] = environ[i];
}

/* A statement in flight, for /healthz: through a pooler, a database that is
 * down leaves the call waiting rather than failing. */
static void worker_db_call(void *arg, int begin)
{
    metrics_server_call(arg, METRICS_DATABASE, begin);
}

worker *worker_new(const worker_conf *conf)
{
    worker *w = mem_calloc(1, sizeof *w);
    w->conf = *conf;
    gethostname(w->host, sizeof w->host - 1);
    worker_draw_incarnation(w->incarnation);
    worker_base_env(w);
    w->d = db_new(conf->database_url, "dagq-worker");
    db_set_unnamed(w->d, 1); /* nothing kept on the session: poolers welcome (README) */
    if (conf->metrics)
        db_on_call(w->d, worker_db_call, conf->metrics);
    w->res = results_new(conf->name, w->incarnation, conf->metrics);
    return w;
}

void worker_free(worker *w)
{
    if (!w)
        return;
    intake_stop(w->in);
    results_free(w->res);
    db_free(w->d);
    mem_free(w->base_env);
    mem_free(w->pfds);
    mem_free(w);
}

const char *worker_incarnation(const worker *w)
{
    return w->incarnation;
}

/* ---- database ------------------------------------------------------------------ */

/* Reconnects without blocking the loop for long: one attempt per backoff step. */
static int worker_db_ok(worker *w)
{
    if (db_connected(w->d))
        return 1;
    double t = clock_now_s();
    if (t < w->next_db_attempt)
        return 0;
    char err[512], q[512];
    if (db_connect(w->d, err, sizeof err) == DB_OK) {
        w->db_attempt = 0;
        w->next_heartbeat = 0; /* heartbeat at once */
        metrics_server_up(w->conf.metrics, METRICS_DATABASE, 1);
        log_info("connected to the database", "worker=%s", w->conf.name);
        return 1;
    }
    metrics_server_up(w->conf.metrics, METRICS_DATABASE, 0);
    int ms = backoff_reconnect_ms(w->db_attempt++);
    w->next_db_attempt = t + ms / 1000.0;
    log_warn("database unreachable, retrying", "worker=%s retry_in_ms=%d error=\"%s\"",
             w->conf.name, ms, log_quote(err, q, sizeof q));
    return 0;
}

/* A try the metastore no longer gives this incarnation (zombie verdict, a
 * user's action) must not go on running beside its retry. */
static void worker_stop_unheld(worker *w, PGresult *held)
{
    for (run *x = w->runs; x; x = x->next) {
        if (x->exited || x->kill_at)
            continue;
        int is_held = 0;
        for (int i = 0; i < PQntuples(held) && !is_held; i++)
            is_held = strtoll(PQgetvalue(held, i, 0), NULL, 10) == x->ti;
        if (!is_held && clock_now_s() - x->started > 1.0) {
            log_warn("try was taken away from this worker; stopping it",
                     "dag=%s run=%lld task=%s ti=%lld try=%d worker=%s", x->dag, x->run_id, x->task,
                     x->ti, x->try_number, w->conf.name);
            child_signal(x->ch, SIGTERM);
            x->kill_at = clock_now_s() + KILL_GRACE_S;
        }
    }
}

/* Appends "{a,b,...}" of the running tries' ti ids (or try numbers) to a
 * new string (caller frees). */
static char *worker_try_array(const worker *w, int tries)
{
    size_t cap = 3, o = 0;
    for (const run *x = w->runs; x; x = x->next)
        cap += 22;
    char *a = mem_alloc(cap);
    a[o++] = '{';
    for (const run *x = w->runs; x; x = x->next)
        o += (size_t)snprintf(a + o, cap - o, "%s%lld", o > 1 ? "," : "",
                              tries ? (long long)x->try_number : x->ti);
    a[o++] = '}';
    a[o] = '\0';
    return a;
}

/* A user's stop or mark (or a verdict) takes a running try away in the
 * metastore; the worker finds out here, twice a second while it runs
 * tries, with one primary-key lookup per try (no LISTEN: this works
 * through a transaction-pooling PgBouncer), and stops the try's process
 * group: TERM now, KILL after KILL_GRACE_S. */
static void worker_check_tries(worker *w)
{
    if (!w->runs || !worker_db_ok(w))
        return;
    char *tis = worker_try_array(w, 0), *tries = worker_try_array(w, 1);
    const char *p[4] = {w->conf.name, w->incarnation, tis, tries};
    PGresult *r;
    char err[512], q[512];
    int rc = db_query(w->d, "worker_lost_tries",
                      "SELECT * FROM dagq.worker_lost_tries($1, $2::uuid, $3::bigint[], $4::int[])",
                      4, p, &r, err, sizeof err);
    mem_free(tis);
    mem_free(tries);
    if (rc) {
        log_warn("checking the running tries failed", "worker=%s error=\"%s\"", w->conf.name,
                 log_quote(err, q, sizeof q));
        return;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        long long ti = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        int try_number = atoi(PQgetvalue(r, i, 1));
        for (run *x = w->runs; x; x = x->next) {
            if (x->ti != ti || x->try_number != try_number || x->exited || x->kill_at)
                continue;
            log_warn("try taken away in the metastore; stopping its process group",
                     "dag=%s run=%lld task=%s ti=%lld try=%d worker=%s state=%s note=\"%s\"",
                     x->dag, x->run_id, x->task, x->ti, x->try_number, w->conf.name,
                     PQgetisnull(r, i, 2) ? "-" : PQgetvalue(r, i, 2),
                     log_quote(PQgetvalue(r, i, 3), q, sizeof q));
            child_signal(x->ch, SIGTERM);
            x->kill_at = clock_now_s() + KILL_GRACE_S;
        }
    }
    PQclear(r);
}

/* Registers or refreshes this incarnation's row. Returns 0, or -1 when the
 * database could not be reached or refused. */
static int worker_heartbeat(worker *w, const char *state)
{
    if (!worker_db_ok(w))
        return -1;
    char pid[16], slots[16], running[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    snprintf(slots, sizeof slots, "%d", w->conf.slots);
    snprintf(running, sizeof running, "%d", w->nrunning);
    /* groups as a text[] literal; names are [A-Za-z0-9_.-] so no quoting */
    size_t cap = 3;
    for (int i = 0; i < w->conf.ngroups; i++)
        cap += strlen(w->conf.groups[i]) + 3;
    char *arr = mem_alloc(cap);
    size_t o = 0;
    arr[o++] = '{';
    for (int i = 0; i < w->conf.ngroups; i++)
        o += (size_t)snprintf(arr + o, cap - o, "%s\"%s\"", i ? "," : "", w->conf.groups[i]);
    arr[o++] = '}';
    arr[o] = '\0';
    const char *p[8] = {w->conf.name, w->incarnation, w->host, pid, arr, slots, running, state};
    PGresult *r;
    char err[512], q[512];
    int rc = db_query(w->d, "worker_heartbeat",
                      "SELECT * FROM dagq.worker_heartbeat($1, $2::uuid, $3, $4, $5, $6, $7, $8)",
                      8, p, &r, err, sizeof err);
    mem_free(arr);
    if (rc) {
        log_warn("heartbeat failed", "worker=%s error=\"%s\"", w->conf.name,
                 log_quote(err, q, sizeof q));
        return -1;
    }
    worker_stop_unheld(w, r);
    PQclear(r);
    return 0;
}

/* ---- starting a try ------------------------------------------------------------- */

/* The task's environment: the base, its DAGQ_* variables first (so nothing
 * overrides them), then the run's params and the task's env (the claim's
 * NAME=value strings). */
static char **worker_env(worker *w, const run *x, PGresult *claim, int row)
{
    char **extra = NULL;
    int nextra = 0;
    if (db_text_array(PQgetvalue(claim, row, CL_ENV), &extra, &nextra) != 0)
        nextra = 0; /* the claim's own array: cannot be malformed, but never crash */
    char **e = mem_calloc(w->nbase_env + 6 + (size_t)nextra + 1, sizeof *e);
    memcpy(e, w->base_env, w->nbase_env * sizeof *e);
    size_t k = w->nbase_env;
    e[k++] = mem_printf("DAGQ_DAG_ID=%s", x->dag);
    e[k++] = mem_printf("DAGQ_TASK_ID=%s", x->task);
    e[k++] = mem_printf("DAGQ_RUN_ID=%lld", x->run_id);
    e[k++] = mem_printf("DAGQ_TRY_NUMBER=%d", x->try_number);
    e[k++] = mem_printf("DAGQ_LOGICAL_DATE=%s", PQgetvalue(claim, row, CL_LOGICAL_DATE));
    e[k++] = mem_printf("DAGQ_WORKER=%s", w->conf.name);
    for (int i = 0; i < nextra; i++)
        e[k++] = extra[i]; /* ownership moves to e */
    mem_free(extra);
    e[k] = NULL;
    return e;
}

static void worker_env_free(const worker *w, char **e)
{
    for (size_t i = w->nbase_env; e[i]; i++)
        mem_free(e[i]);
    mem_free(e);
}

/* The try claimed in row `row` of a claim, as the claim describes it. */
static run *worker_run_new(PGresult *claim, int row, const char *group)
{
    run *x = mem_calloc(1, sizeof *x);
    x->ti = strtoll(PQgetvalue(claim, row, CL_TI), NULL, 10);
    x->try_number = atoi(PQgetvalue(claim, row, CL_TRY));
    x->run_id = strtoll(PQgetvalue(claim, row, CL_RUN), NULL, 10);
    snprintf(x->dag, sizeof x->dag, "%s", PQgetvalue(claim, row, CL_DAG));
    snprintf(x->task, sizeof x->task, "%s", PQgetvalue(claim, row, CL_TASK));
    snprintf(x->group, sizeof x->group, "%s", group);
    x->retry_delay = atof(PQgetvalue(claim, row, CL_RETRY_DELAY));
    x->exp_backoff = PQgetvalue(claim, row, CL_EXP_BACKOFF)[0] == 't';
    x->max_retry_delay = atof(PQgetvalue(claim, row, CL_MAX_RETRY_DELAY));
    x->started = clock_now_s();
    if (!PQgetisnull(claim, row, CL_TIMEOUT))
        x->deadline = x->started + atof(PQgetvalue(claim, row, CL_TIMEOUT));
    return x;
}

static void worker_add_result(worker *w, const run *x, int ok, int exit_code, const char *note,
                              char *output, long long truncated)
{
    double retry_in =
        ok ? 0
           : backoff_retry_delay(x->retry_delay, x->try_number, x->exp_backoff, x->max_retry_delay);
    results_add(w->res, x->ti, x->try_number, ok, exit_code, retry_in, note, output, truncated,
                x->dag, x->task, x->group);
}

/* Starts the claimed try x (row `row` of the claim). */
static void worker_spawn(worker *w, run *x, PGresult *claim, int row)
{
    metrics_ti_state(w->conf.metrics, x->group, "running", 1);
    char **envp = worker_env(w, x, claim, row);
    child *ch = NULL;
    char serr[256], q[300];
    if (child_spawn(PQgetvalue(claim, row, CL_COMMAND), envp, w->conf.run_as, &ch, serr,
                    sizeof serr) != 0) {
        char *note = mem_printf("cannot start the command: %s", serr);
        log_error("cannot start the command", "ti=%lld try=%d error=\"%s\"", x->ti, x->try_number,
                  log_quote(serr, q, sizeof q));
        worker_add_result(w, x, 0, -1, note, NULL, 0);
        mem_free(note);
        mem_free(x);
        intake_set_running(w->in, w->nrunning); /* the slot intake_claimed held */
    } else {
        x->ch = ch;
        x->next = w->runs;
        w->runs = x;
        w->nrunning++;
        intake_set_running(w->in, w->nrunning);
        log_info("try started", "dag=%s run=%lld task=%s ti=%lld try=%d pid=%d", x->dag, x->run_id,
                 x->task, x->ti, x->try_number, (int)child_pid(ch));
    }
    worker_env_free(w, envp);
}

/* The messages of one turn: taken from the intake and decoded, claimed in
 * one statement. */
typedef struct take_batch {
    intake_item **items;
    msg_task *msgs;
    int n;
} take_batch;

/* Takes up to `room` decodable messages; undecodable ones go to the
 * dead-letter queue. */
static void worker_take_msgs(worker *w, take_batch *b, int room)
{
    char err[512], q[512];
    intake_item *it;
    while (b->n < room && (it = intake_take(w->in)) != NULL) {
        if (msg_decode(it->msg->data, it->msg->len, &b->msgs[b->n], err, sizeof err) != 0) {
            char reason[600];
            snprintf(reason, sizeof reason, "undecodable message: %s", err);
            log_warn("malformed message sent to the dead-letter queue",
                     "group=%s id=%s reason=\"%s\"", it->group, it->msg->id,
                     log_quote(reason, q, sizeof q));
            intake_done(w->in, it, reason);
            continue;
        }
        b->items[b->n++] = it;
    }
}

/* Puts the batch back in the intake, in its order. */
static void worker_unget_batch(worker *w, take_batch *b)
{
    for (int i = b->n - 1; i >= 0; i--)
        intake_unget(w->in, b->items[i]);
    b->n = 0;
}

/* One dagq.claim_tries for the batch: *claim gets the rows of the tries
 * claimed. Returns 0; or -1 when the batch was decided without a claim
 * (put back when the database cannot answer now, dropped otherwise). */
static int worker_claim_batch(worker *w, take_batch *b, PGresult **claim)
{
    char err[512], q[512];
    pgarray tis, tries;
    pgarray_init(&tis);
    pgarray_init(&tries);
    for (int i = 0; i < b->n; i++) {
        pgarray_add_ll(&tis, (long long)b->msgs[i].ti);
        pgarray_add_ll(&tries, b->msgs[i].try_number);
    }
    const char *p[5] = {pgarray_lit(&tis), pgarray_lit(&tries), w->conf.name, w->incarnation,
                        w->host};
    int rc =
        db_query(w->d, "worker_claim", "SELECT * FROM dagq.claim_tries($1, $2, $3, $4::uuid, $5)",
                 5, p, claim, err, sizeof err);
    if (rc == DB_OK) {
        metrics_counter_add(w->conf.metrics, "dagq_worker_batches_total", "op=\"claim\"", 1);
        metrics_counter_add(w->conf.metrics, "dagq_worker_batch_items_total", "op=\"claim\"", b->n);
    } else if (rc == DB_ECONN || (rc == DB_EQUERY && db_error_transient(w->d))) {
        worker_unget_batch(w, b);
        w->take_after = clock_now_s() + 0.2;
    } else if (rc) {
        log_error("claim failed; messages dropped (the scheduler re-pushes a try left queued)",
                  "tries=%d ti=%s error=\"%s\"", b->n, pgarray_lit(&tis),
                  log_quote(err, q, sizeof q));
        for (int i = 0; i < b->n; i++)
            intake_done(w->in, b->items[i], NULL);
        b->n = 0;
        w->next_heartbeat = 0; /* perhaps our row went away: register again */
    }
    pgarray_free(&tis);
    pgarray_free(&tries);
    return rc ? -1 : 0;
}

/* The claim's row for message m, or -1 (a duplicate or stale message). A
 * row is used once: a try named twice in the batch starts once. */
static int worker_claim_row(PGresult *claim, const msg_task *m, char *used)
{
    for (int r = 0; r < PQntuples(claim); r++)
        if (!used[r] && strtoll(PQgetvalue(claim, r, CL_TI), NULL, 10) == m->ti &&
            atoi(PQgetvalue(claim, r, CL_TRY)) == m->try_number) {
            used[r] = 1;
            return r;
        }
    return -1;
}

/* Takes what the intake holds, as many as there are free slots, claims it
 * in one statement and one commit, and starts what was claimed. */
static void worker_take(worker *w)
{
    int room = w->conf.slots - w->nrunning;
    if (room <= 0)
        return;
    take_batch b = {mem_calloc((size_t)room, sizeof *b.items),
                    mem_calloc((size_t)room, sizeof *b.msgs), 0};
    worker_take_msgs(w, &b, room);
    PGresult *claim = NULL;
    if (b.n > 0 && !worker_db_ok(w))
        worker_unget_batch(w, &b);
    if (b.n == 0 || worker_claim_batch(w, &b, &claim) != 0)
        goto out;
    char *used = mem_calloc((size_t)PQntuples(claim) + 1, 1);
    for (int i = 0; i < b.n; i++) {
        intake_item *it = b.items[i];
        int row = worker_claim_row(claim, &b.msgs[i], used);
        if (row < 0) {
            log_debug("duplicate or stale message dropped", "ti=%lld try=%d group=%s id=%s",
                      (long long)b.msgs[i].ti, b.msgs[i].try_number, it->group, it->msg->id);
            intake_done(w->in, it, NULL);
            continue;
        }
        /* claimed: the message has done its job */
        run *x = worker_run_new(claim, row, it->group);
        intake_claimed(w->in, it);
        worker_spawn(w, x, claim, row);
    }
    mem_free(used);
    PQclear(claim);
out:
    mem_free(b.items);
    mem_free(b.msgs);
}

/* ---- children ------------------------------------------------------------------ */

static void worker_reap(worker *w)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (run *x = w->runs; x; x = x->next) {
            if (child_pid(x->ch) == pid) {
                x->exited = 1;
                x->status = status;
                child_exited(x->ch);
                break;
            }
        }
    }
}

/* The outcome of an exited try: ok, exit code, and a note when not obvious. */
static int worker_outcome(const run *x, int *code, char *note, size_t len)
{
    int ok = 0;
    *code = -1;
    note[0] = '\0';
    if (WIFEXITED(x->status)) {
        *code = WEXITSTATUS(x->status);
        ok = *code == 0 && !x->timed_out;
        if (*code != 0)
            snprintf(note, len, "exit code %d", *code);
    } else if (WIFSIGNALED(x->status)) {
        *code = 128 + WTERMSIG(x->status);
        snprintf(note, len, "killed by signal %d", WTERMSIG(x->status));
    }
    if (x->timed_out) {
        ok = 0;
        snprintf(note, len, "timed out after %.0fs (execution_timeout)", x->deadline - x->started);
    }
    return ok;
}

static void worker_collect(worker *w)
{
    run **pp = &w->runs;
    while (*pp) {
        run *x = *pp;
        if (!x->exited) {
            pp = &x->next;
            continue;
        }
        int code;
        char note[128];
        int ok = worker_outcome(x, &code, note, sizeof note);
        long long truncated;
        char *out = child_output(x->ch, &truncated);
        worker_add_result(w, x, ok, code, note[0] ? note : NULL, out, truncated);
        *pp = x->next;
        child_free(x->ch);
        mem_free(x);
        w->nrunning--;
        intake_set_running(w->in, w->nrunning);
    }
}

/* With each heartbeat, the output of running tries that grew since the last
 * one goes to dagq.task_log (dagq.log_progress, fenced on the try still
 * being ours), so a log can be followed while its task runs. A failure is
 * logged and tried again at the next heartbeat; the final write is
 * finish_try's, as before. */
static void worker_log_progress(worker *w)
{
    if (!worker_db_ok(w))
        return;
    for (run *x = w->runs; x; x = x->next) {
        long long truncated;
        if (x->exited)
            continue;
        char *out = child_output(x->ch, &truncated);
        long long n = (long long)strlen(out) + truncated;
        if (n != x->log_sent) {
            char ti[32], try_s[16], tr[32], err[1024];
            snprintf(ti, sizeof ti, "%lld", x->ti);
            snprintf(try_s, sizeof try_s, "%d", x->try_number);
            snprintf(tr, sizeof tr, "%lld", truncated);
            const char *p[6] = {ti, try_s, w->conf.name, w->incarnation, out, tr};
            if (db_query(w->d, "worker_log_progress",
                         "SELECT dagq.log_progress($1, $2, $3, $4::uuid, $5, $6)", 6, p, NULL, err,
                         sizeof err) == DB_OK)
                x->log_sent = n;
            else
                log_warn("writing a running try's output failed", "ti=%lld try=%d error=\"%s\"",
                         x->ti, x->try_number, err);
        }
        mem_free(out);
    }
}

static void worker_timeouts(worker *w, double t)
{
    for (run *x = w->runs; x; x = x->next) {
        if (x->exited)
            continue;
        if (x->deadline && !x->timed_out && t >= x->deadline) {
            log_warn("execution timeout: stopping the task's process group",
                     "dag=%s run=%lld task=%s ti=%lld try=%d timeout_s=%.0f", x->dag, x->run_id,
                     x->task, x->ti, x->try_number, x->deadline - x->started);
            x->timed_out = 1;
            child_signal(x->ch, SIGTERM);
            x->kill_at = t + KILL_GRACE_S;
        } else if (x->kill_at && t >= x->kill_at) {
            child_signal(x->ch, SIGKILL);
            x->kill_at = t + 3600; /* once */
        }
    }
}

/* Gives one killed try back to the scheduler. */
static void worker_release(worker *w, run *x, const char *why)
{
    char ti[32], tr[16], err[512], q[512];
    snprintf(ti, sizeof ti, "%lld", x->ti);
    snprintf(tr, sizeof tr, "%d", x->try_number);
    const char *p[5] = {ti, tr, w->conf.name, w->incarnation, why};
    if (db_query(w->d, "worker_release", "SELECT dagq.release_try($1, $2, $3, $4::uuid, $5)", 5, p,
                 NULL, err, sizeof err) == DB_OK) {
        metrics_ti_state(w->conf.metrics, x->group, "up_for_retry", 1);
        log_warn("try given back to the scheduler", "dag=%s task=%s ti=%lld try=%d reason=\"%s\"",
                 x->dag, x->task, x->ti, x->try_number, why);
    } else {
        log_warn("could not give the try back; it becomes a zombie and is retried",
                 "dag=%s task=%s ti=%lld try=%d error=\"%s\"", x->dag, x->task, x->ti,
                 x->try_number, log_quote(err, q, sizeof q));
    }
}

/* Gives every running try back (drain timeout, second signal): kill the
 * process groups, record the tries as released. */
static void worker_release_all(worker *w, const char *why)
{
    for (run *x = w->runs; x; x = x->next)
        child_signal(x->ch, SIGKILL);
    for (run *x = w->runs; x; x = x->next) {
        int status;
        if (!x->exited && waitpid(child_pid(x->ch), &status, 0) > 0) {
            x->exited = 1;
            child_exited(x->ch);
        }
        if (worker_db_ok(w))
            worker_release(w, x, why);
    }
    while (w->runs) {
        run *x = w->runs;
        w->runs = x->next;
        child_free(x->ch);
        mem_free(x);
    }
    w->nrunning = 0;
}

/* ---- the loop --------------------------------------------------------------------- */

/* Waits for output, children, messages, or the next deadline. */
static void worker_wait(worker *w, double t)
{
    int n = 1;
    if (w->cap < w->nrunning + 1) {
        w->cap = (w->nrunning + 1) * 2;
        w->pfds = mem_realloc(w->pfds, sizeof *w->pfds * (size_t)w->cap);
    }
    w->pfds[0] = (struct pollfd){w->conf.wake_rd, POLLIN, 0};
    for (run *x = w->runs; x; x = x->next)
        if (child_fd(x->ch) >= 0)
            w->pfds[n++] = (struct pollfd){child_fd(x->ch), POLLIN, 0};
    double wait = 1.0;
    if (w->next_heartbeat - t < wait)
        wait = w->next_heartbeat - t;
    for (run *x = w->runs; x; x = x->next) {
        if (x->deadline && !x->timed_out && x->deadline - t < wait)
            wait = x->deadline - t;
        if (x->kill_at && x->kill_at - t < wait)
            wait = x->kill_at - t;
    }
    if (w->runs && w->next_check - t < wait)
        wait = w->next_check - t;
    double rin = results_next_in(w->res, t);
    if (rin >= 0 && rin < wait)
        wait = rin;
    if (w->take_after > t && w->take_after - t < wait)
        wait = w->take_after - t;
    int ms = wait <= 0 ? 0 : (int)(wait * 1000.0) + 1;
    int pr = poll(w->pfds, (nfds_t)n, ms);
    if (pr > 0 && (w->pfds[0].revents & POLLIN)) {
        char buf[256];
        while (read(w->conf.wake_rd, buf, sizeof buf) > 0)
            ;
    }
    /* pfds[1..] follow w->runs: read only the pipes that have something
     * (worker_reap drains what is left of a child that exited) */
    int k = 1;
    for (run *x = w->runs; x && pr > 0; x = x->next)
        if (child_fd(x->ch) >= 0 && w->pfds[k++].revents)
            child_read(x->ch);
}

/* Registers before taking anything (a claim needs the row). Returns 0, or
 * -1 when asked to stop first. */
static int worker_register(worker *w, volatile sig_atomic_t *stop)
{
    while (!*stop) {
        if (worker_heartbeat(w, "up") == 0) {
            w->next_heartbeat = clock_now_s() + w->conf.heartbeat_s;
            return 0;
        }
        struct pollfd p = {w->conf.wake_rd, POLLIN, 0};
        poll(&p, 1, 200);
    }
    return -1;
}

/* One turn of the loop once woken. */
static void worker_turn(worker *w)
{
    worker_reap(w);
    worker_collect(w);
    double t = clock_now_s();
    worker_timeouts(w, t);
    if (results_pending(w->res) && worker_db_ok(w))
        results_flush(w->res, w->d, t);
    if (w->in && t >= w->take_after)
        worker_take(w);
    if (w->runs && t >= w->next_check) {
        worker_check_tries(w);
        w->next_check = t + CHECK_EVERY_S;
    }
    if (w->nrunning != w->slots_shown) {
        metrics_worker_slots(w->conf.metrics, w->nrunning, w->conf.slots);
        w->slots_shown = w->nrunning;
    }
    if (t >= w->next_heartbeat) {
        worker_heartbeat(w, w->draining ? "draining" : "up");
        worker_log_progress(w);
        w->next_heartbeat = t + w->conf.heartbeat_s;
    }
}

/* SIGTERM/SIGINT: no new tries, leave the consumer groups. */
static void worker_drain(worker *w, double t)
{
    w->draining = 1;
    w->drain_deadline = t + w->conf.drain_timeout_s;
    log_info("draining: no new tasks", "worker=%s running=%d drain_timeout_s=%.0f", w->conf.name,
             w->nrunning, w->conf.drain_timeout_s);
    intake_stop(w->in);
    w->in = NULL;
    worker_heartbeat(w, "draining");
}

void worker_run(worker *w, volatile sig_atomic_t *stop, volatile sig_atomic_t *stop_now,
                volatile sig_atomic_t *hup)
{
    metrics_worker_slots(w->conf.metrics, 0, w->conf.slots);
    if (worker_register(w, stop) == 0)
        w->in = intake_start(w->conf.queue, w->conf.groups, w->conf.ngroups, w->conf.slots,
                             w->conf.wake_wr, w->conf.metrics);
    for (;;) {
        double t = clock_now_s();
        if (*hup) {
            *hup = 0;
            log_info("SIGHUP: nothing to reload; going on", "worker=%s", w->conf.name);
        }
        if (*stop && !w->draining)
            worker_drain(w, t);
        if (w->draining && w->nrunning > 0 && (*stop_now || t >= w->drain_deadline))
            worker_release_all(w, *stop_now ? "worker stopped at once (second signal)"
                                            : "worker drain timeout");
        if (w->draining && w->nrunning == 0) {
            if (results_pending(w->res) && worker_db_ok(w))
                results_flush(w->res, w->d, t);
            if (!results_pending(w->res) || *stop_now)
                break;
        }
        worker_wait(w, t);
        worker_turn(w);
    }
    if (worker_db_ok(w)) {
        const char *p[2] = {w->conf.name, w->incarnation};
        char err[512];
        db_query(w->d, "worker_gone", "SELECT dagq.worker_gone($1, $2::uuid)", 2, p, NULL, err,
                 sizeof err);
    }
    log_info("worker stopped", "worker=%s incarnation=%s", w->conf.name, w->incarnation);
}
