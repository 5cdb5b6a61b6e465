/* dagq-worker — consumes its worker groups' queues, claims each try in the
 * metastore with the fenced UPDATE of DESIGN.md, runs it, heartbeats while it
 * runs, and writes the result back.
 *
 * Threads: one consumer thread per group (intake.c) fills an inbox; this main
 * thread owns the database connection and the children, and waits in poll(2)
 * on a self-pipe (woken by the consumers and by SIGCHLD) and the children's
 * output pipes. */
#include "backoff.h"
#include "child.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "http.h"
#include "intake.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "msg.h"
#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define KILL_GRACE_S 5.0 /* TERM, then KILL this long after */

static volatile sig_atomic_t stop_requested, stop_now;
static int wake_pipe[2] = {-1, -1};

static void on_stop(int sig)
{
    (void)sig;
    if (stop_requested)
        stop_now = 1;
    stop_requested = 1;
    char b = 1;
    ssize_t w = write(wake_pipe[1], &b, 1);
    (void)w;
}

static void on_child(int sig)
{
    (void)sig;
    int saved = errno;
    char b = 1;
    ssize_t w = write(wake_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

static daemon_opts dopt;
static char *opt_name;
static long long opt_slots, opt_heartbeat_interval, opt_drain_timeout, opt_reclaim_idle;
static config_list opt_groups;

static const config_option options[] = {
    {"group", CONFIG_LIST, "default", "worker group to consume (repeatable)", &opt_groups},
    {"slots", CONFIG_INT, NULL, "tasks run in parallel (default: the number of CPUs)", &opt_slots,
     1, 4096},
    {"name", CONFIG_STRING, NULL, "this worker's name (default host:pid)", &opt_name},
    {"heartbeat-interval", CONFIG_INT, "5", "seconds between heartbeats to the metastore",
     &opt_heartbeat_interval, 1, 3600},
    {"drain-timeout", CONFIG_INT, "60",
     "on SIGTERM, seconds to let running tasks finish before giving them back as retries",
     &opt_drain_timeout, 0, 86400},
    {"reclaim-idle-ms", CONFIG_INT, "30000",
     "Redis: reclaim messages a dead consumer left unacknowledged this long", &opt_reclaim_idle,
     100, 86400000},
    DAEMON_OPTIONS(&dopt),
    {NULL}};

/* A try this worker runs. */
typedef struct run {
    child *ch;
    long long ti, run_id;
    int try_number, exp_backoff, exited, status, timed_out;
    double retry_delay, max_retry_delay;
    double started, deadline, kill_at; /* monotonic seconds; 0 = none */
    char dag[MSG_ID_MAX], task[MSG_ID_MAX], group[MSG_ID_MAX];
    struct run *next;
} run;

/* A finished try whose result is not yet in the metastore. */
typedef struct result {
    long long ti;
    int try_number, ok, exit_code;
    double retry_in;
    char *note, *output;
    long long truncated;
    char dag[MSG_ID_MAX], task[MSG_ID_MAX], group[MSG_ID_MAX];
    struct result *next;
} result;

typedef struct worker {
    db *d;
    intake *in;
    char name[300], host[256];
    char **groups;
    int ngroups, slots, nrunning;
    run *runs;
    result *results;
    double next_heartbeat, next_db_attempt;
    int db_attempt;
    int draining;
    double drain_deadline;
    metrics *m; /* NULL without --http-port */
    /* the worker's environment less its own DAGQ_* settings (credentials
     * among them are not the tasks' business): every task's base, built
     * once; the strings are environ's */
    char **base_env;
    size_t nbase_env;
} worker;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- database ------------------------------------------------------------------ */

/* Reconnects without blocking the loop for long: one attempt per backoff step. */
static int worker_db_ok(worker *w)
{
    if (db_connected(w->d))
        return 1;
    double t = now_s();
    if (t < w->next_db_attempt)
        return 0;
    char err[512];
    if (db_connect(w->d, err, sizeof err) == DB_OK) {
        w->db_attempt = 0;
        w->next_heartbeat = 0; /* heartbeat at once */
        metrics_server_up(w->m, METRICS_DATABASE, 1);
        log_info("connected to the database", "worker=%s", w->name);
        return 1;
    }
    metrics_server_up(w->m, METRICS_DATABASE, 0);
    int ms = backoff_reconnect_ms(w->db_attempt++);
    w->next_db_attempt = t + ms / 1000.0;
    log_warn("database unreachable, retrying", "worker=%s retry_in_ms=%d error=\"%s\"", w->name, ms,
             err);
    return 0;
}

static void worker_heartbeat(worker *w, const char *state)
{
    if (!worker_db_ok(w))
        return;
    char pid[16], slots[16], running[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    snprintf(slots, sizeof slots, "%d", w->slots);
    snprintf(running, sizeof running, "%d", w->nrunning);
    /* groups as a text[] literal; names are [A-Za-z0-9_.-] so no quoting */
    size_t cap = 3;
    for (int i = 0; i < w->ngroups; i++)
        cap += strlen(w->groups[i]) + 3;
    char *arr = mem_alloc(cap);
    size_t o = 0;
    arr[o++] = '{';
    for (int i = 0; i < w->ngroups; i++) {
        o += (size_t)snprintf(arr + o, cap - o, "%s\"%s\"", i ? "," : "", w->groups[i]);
    }
    arr[o++] = '}';
    arr[o] = '\0';
    const char *p[7] = {w->name, w->host, pid, arr, slots, running, state};
    PGresult *r;
    char err[512];
    int rc = db_query(w->d, "worker_heartbeat",
                      "SELECT * FROM dagq.worker_heartbeat($1, $2, $3, $4, $5, $6, $7)", 7, p, &r,
                      err, sizeof err);
    mem_free(arr);
    if (rc) {
        log_warn("heartbeat failed", "worker=%s error=\"%s\"", w->name, err);
        return;
    }
    /* a try the metastore no longer gives us (zombie verdict, a user's
     * action) must not go on running beside its retry */
    for (run *x = w->runs; x; x = x->next) {
        if (x->exited || x->kill_at)
            continue;
        int held = 0;
        for (int i = 0; i < PQntuples(r) && !held; i++)
            held = strtoll(PQgetvalue(r, i, 0), NULL, 10) == x->ti;
        if (!held && now_s() - x->started > 1.0) {
            log_warn("try was taken away from this worker; stopping it",
                     "dag=%s run=%lld task=%s ti=%lld try=%d worker=%s", x->dag, x->run_id, x->task,
                     x->ti, x->try_number, w->name);
            child_signal(x->ch, SIGTERM);
            x->kill_at = now_s() + KILL_GRACE_S;
        }
    }
    PQclear(r);
}

/* Writes results back; keeps those that meet a lost connection. */
static void worker_flush_results(worker *w)
{
    result **pp = &w->results;
    while (*pp) {
        if (!worker_db_ok(w))
            return;
        result *x = *pp;
        char ti[32], tr[16], code[16], delay[32], trunc[32];
        snprintf(ti, sizeof ti, "%lld", x->ti);
        snprintf(tr, sizeof tr, "%d", x->try_number);
        snprintf(code, sizeof code, "%d", x->exit_code);
        snprintf(delay, sizeof delay, "%.3f", x->retry_in);
        snprintf(trunc, sizeof trunc, "%lld", x->truncated);
        const char *p[9] = {
            ti,      tr,        w->name, x->ok ? "t" : "f", x->exit_code >= 0 ? code : NULL, delay,
            x->note, x->output, trunc};
        PGresult *r;
        char err[512];
        int rc = db_query(w->d, "worker_finish",
                          "SELECT dagq.finish_try($1, $2, $3, $4, $5, $6, $7, $8, $9)", 9, p, &r,
                          err, sizeof err);
        if (rc == DB_ECONN)
            return; /* kept; written when the database is back */
        if (rc) {
            log_error("cannot record the result; the try will be retried as a zombie",
                      "dag=%s task=%s ti=%lld try=%d error=\"%s\"", x->dag, x->task, x->ti,
                      x->try_number, err);
        } else {
            if (PQgetisnull(r, 0, 0))
                log_warn("try was taken away before it finished; result discarded",
                         "dag=%s task=%s ti=%lld try=%d worker=%s", x->dag, x->task, x->ti,
                         x->try_number, w->name);
            else {
                metrics_ti_state(w->m, x->group, PQgetvalue(r, 0, 0), 1);
                log_info("try finished", "dag=%s task=%s ti=%lld try=%d state=%s exit_code=%d",
                         x->dag, x->task, x->ti, x->try_number, PQgetvalue(r, 0, 0), x->exit_code);
            }
            PQclear(r);
        }
        *pp = x->next;
        mem_free(x->note);
        mem_free(x->output);
        mem_free(x);
    }
}

/* ---- starting a try ------------------------------------------------------------- */

static void worker_base_env(worker *w)
{
    size_t n = 0;
    while (environ[n])
        n++;
    w->base_env = mem_calloc(n + 1, sizeof *w->base_env);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "DAGQ_", 5) != 0)
            w->base_env[w->nbase_env++] = environ[i];
}

/* The task's environment: the base, its DAGQ_* variables and its env. */
static char **worker_env(worker *w, const msg_task *m, PGresult *claim, PGresult *env)
{
    size_t extra = 6 + (env ? (size_t)PQntuples(env) : 0);
    char **e = mem_calloc(w->nbase_env + extra + 1, sizeof *e);
    memcpy(e, w->base_env, w->nbase_env * sizeof *e);
    size_t k = w->nbase_env;
    e[k++] = mem_printf("DAGQ_DAG_ID=%s", PQgetvalue(claim, 0, 3));
    e[k++] = mem_printf("DAGQ_TASK_ID=%s", PQgetvalue(claim, 0, 4));
    e[k++] = mem_printf("DAGQ_RUN_ID=%s", PQgetvalue(claim, 0, 5));
    e[k++] = mem_printf("DAGQ_TRY_NUMBER=%d", m->try_number);
    e[k++] = mem_printf("DAGQ_LOGICAL_DATE=%s", PQgetvalue(claim, 0, 6));
    e[k++] = mem_printf("DAGQ_WORKER=%s", w->name);
    for (int i = 0; env && i < PQntuples(env); i++)
        e[k++] = mem_printf("%s=%s", PQgetvalue(env, i, 0), PQgetvalue(env, i, 1));
    e[k] = NULL;
    return e;
}

static void worker_env_free(const worker *w, char **e)
{
    for (size_t i = w->nbase_env; e[i]; i++)
        mem_free(e[i]);
    mem_free(e);
}

static void worker_add_result(worker *w, const run *x, int ok, int exit_code, const char *note,
                              char *output, long long truncated)
{
    result *r = mem_calloc(1, sizeof *r);
    r->ti = x->ti;
    r->try_number = x->try_number;
    r->ok = ok;
    r->exit_code = exit_code;
    r->retry_in =
        ok ? 0
           : backoff_retry_delay(x->retry_delay, x->try_number, x->exp_backoff, x->max_retry_delay);
    r->note = mem_strdup(note);
    r->output = output ? output : mem_strdup("");
    r->truncated = truncated;
    snprintf(r->dag, sizeof r->dag, "%s", x->dag);
    snprintf(r->task, sizeof r->task, "%s", x->task);
    snprintf(r->group, sizeof r->group, "%s", x->group);
    result **pp = &w->results;
    while (*pp)
        pp = &(*pp)->next;
    *pp = r;
}

/* Decodes, claims and starts one message. Returns 0 when the message is
 * decided, or -1 when the database is unreachable (the item is put back). */
static int worker_take(worker *w, intake_item *it)
{
    char err[512];
    msg_task m;
    if (msg_decode(it->msg->data, it->msg->len, &m, err, sizeof err) != 0) {
        char reason[600];
        snprintf(reason, sizeof reason, "undecodable message: %s", err);
        log_warn("malformed message sent to the dead-letter queue", "group=%s id=%s reason=\"%s\"",
                 it->group, it->msg->id, reason);
        intake_done(w->in, it, reason);
        return 0;
    }
    if (!worker_db_ok(w)) {
        intake_unget(w->in, it);
        return -1;
    }
    char ti[32], tr[16];
    snprintf(ti, sizeof ti, "%lld", (long long)m.ti);
    snprintf(tr, sizeof tr, "%d", m.try_number);
    const char *p[4] = {ti, tr, w->name, w->host};
    PGresult *claim = NULL, *env = NULL;
    int rc = db_query(w->d, "worker_claim", "SELECT * FROM dagq.claim_try($1, $2, $3, $4)", 4, p,
                      &claim, err, sizeof err);
    if (rc == DB_ECONN) {
        intake_unget(w->in, it);
        return -1;
    }
    if (rc) {
        log_error("claim failed; message dropped (the scheduler re-pushes a try left queued)",
                  "ti=%s try=%s error=\"%s\"", ti, tr, err);
        intake_done(w->in, it, NULL);
        return 0;
    }
    if (PQntuples(claim) == 0) {
        log_debug("duplicate or stale message dropped", "ti=%s try=%s group=%s id=%s", ti, tr,
                  it->group, it->msg->id);
        PQclear(claim);
        intake_done(w->in, it, NULL);
        return 0;
    }
    /* claimed: the message has done its job */
    const char *group = it->group; /* borrowed from the configuration, outlives it */
    intake_claimed(w->in, it);

    run *x = mem_calloc(1, sizeof *x);
    x->ti = m.ti;
    x->try_number = m.try_number;
    x->run_id = strtoll(PQgetvalue(claim, 0, 5), NULL, 10);
    snprintf(x->dag, sizeof x->dag, "%s", PQgetvalue(claim, 0, 3));
    snprintf(x->task, sizeof x->task, "%s", PQgetvalue(claim, 0, 4));
    snprintf(x->group, sizeof x->group, "%s", group);
    metrics_ti_state(w->m, x->group, "running", 1);
    x->retry_delay = atof(PQgetvalue(claim, 0, 8));
    x->exp_backoff = PQgetvalue(claim, 0, 9)[0] == 't';
    x->max_retry_delay = atof(PQgetvalue(claim, 0, 10));
    x->started = now_s();
    if (!PQgetisnull(claim, 0, 2))
        x->deadline = x->started + atof(PQgetvalue(claim, 0, 2));

    if (atoi(PQgetvalue(claim, 0, 1)) > 0) {
        rc = db_query(w->d, "worker_env",
                      "SELECT e.key, e.value FROM dagq.task_instance t,"
                      " jsonb_each_text(t.env) e WHERE t.ti_id = $1",
                      1, p, &env, err, sizeof err);
        if (rc)
            log_warn("cannot read the task's env", "ti=%s error=\"%s\"", ti, err);
    }
    char **envp = worker_env(w, &m, claim, env);
    child *ch = NULL;
    char serr[256];
    if (child_spawn(PQgetvalue(claim, 0, 0), envp, NULL, &ch, serr, sizeof serr) != 0) {
        char *note = mem_printf("cannot start the command: %s", serr);
        log_error("cannot start the command", "ti=%s try=%s error=\"%s\"", ti, tr, serr);
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
    PQclear(claim);
    PQclear(env);
    return 0;
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

static void worker_collect(worker *w)
{
    run **pp = &w->runs;
    while (*pp) {
        run *x = *pp;
        if (!x->exited) {
            pp = &x->next;
            continue;
        }
        int code = -1, ok = 0;
        char note[128] = "";
        if (WIFEXITED(x->status)) {
            code = WEXITSTATUS(x->status);
            ok = code == 0 && !x->timed_out;
            if (code != 0)
                snprintf(note, sizeof note, "exit code %d", code);
        } else if (WIFSIGNALED(x->status)) {
            code = 128 + WTERMSIG(x->status);
            snprintf(note, sizeof note, "killed by signal %d", WTERMSIG(x->status));
        }
        if (x->timed_out) {
            ok = 0;
            snprintf(note, sizeof note, "timed out after %.0fs (execution_timeout)",
                     x->deadline - x->started);
        }
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
        if (worker_db_ok(w)) {
            char ti[32], tr[16], err[512];
            snprintf(ti, sizeof ti, "%lld", x->ti);
            snprintf(tr, sizeof tr, "%d", x->try_number);
            const char *p[4] = {ti, tr, w->name, why};
            if (db_query(w->d, "worker_release", "SELECT dagq.release_try($1, $2, $3, $4)", 4, p,
                         NULL, err, sizeof err) == DB_OK) {
                metrics_ti_state(w->m, x->group, "up_for_retry", 1);
                log_warn("try given back to the scheduler",
                         "dag=%s task=%s ti=%lld try=%d "
                         "reason=\"%s\"",
                         x->dag, x->task, x->ti, x->try_number, why);
            }
        }
    }
    while (w->runs) {
        run *x = w->runs;
        w->runs = x->next;
        child_free(x->ch);
        mem_free(x);
    }
    w->nrunning = 0;
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out, "usage: dagq-worker [OPTIONS]\n\n"
                 "Consumes the queues of its worker groups and runs the tasks the dagq\n"
                 "metastore lets it claim. Add workers to a group to scale it.\n\n"
                 "Options (each also read from the environment variable shown):\n");
    config_usage(out, options);
    fprintf(out, "  --help                     this text\n\n"
                 "SIGTERM or SIGINT drains: no new tasks, running ones may finish within\n"
                 "--drain-timeout, then they are given back as retries. A second signal\n"
                 "gives them back at once and exits.\n");
}

int main(int argc, char **argv)
{
    char err[1024];
    log_init("dagq-worker");
    int rc = config_load_daemon(options, argc, argv, &dopt.log_level, err, sizeof err);
    if (rc == CONFIG_HELP) {
        usage(stdout);
        config_free(options);
        return 0;
    }
    if (rc == CONFIG_OK && queue_url_check(dopt.broker_url, err, sizeof err) != QUEUE_OK)
        rc = CONFIG_ERR;
    for (int i = 0; rc == CONFIG_OK && i < opt_groups.n; i++) {
        const char *g = opt_groups.items[i];
        size_t n = strlen(g);
        int bad = n == 0 || n > 100 ||
                  !((g[0] >= 'a' && g[0] <= 'z') || (g[0] >= 'A' && g[0] <= 'Z') ||
                    (g[0] >= '0' && g[0] <= '9'));
        for (size_t j = 0; j < n && !bad; j++)
            bad = !(g[j] == '_' || g[j] == '.' || g[j] == '-' || (g[j] >= 'a' && g[j] <= 'z') ||
                    (g[j] >= 'A' && g[j] <= 'Z') || (g[j] >= '0' && g[j] <= '9'));
        if (bad) {
            snprintf(err, sizeof err,
                     "--group \"%s\" is not a valid worker group name (1-100 letters, digits, "
                     "\"_\", \".\" or \"-\")",
                     g);
            rc = CONFIG_ERR;
        }
    }
    if (rc != CONFIG_OK) {
        fprintf(stderr, "dagq-worker: %s\n", err);
        config_free(options);
        return 2;
    }

    worker w;
    memset(&w, 0, sizeof w);
    gethostname(w.host, sizeof w.host - 1);
    if (opt_name)
        snprintf(w.name, sizeof w.name, "%s", opt_name);
    else
        snprintf(w.name, sizeof w.name, "%s:%d", w.host, (int)getpid());
    w.slots = opt_slots ? (int)opt_slots : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (w.slots < 1)
        w.slots = 1;
    w.groups = opt_groups.items;
    w.ngroups = opt_groups.n;

    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "dagq-worker: pipe: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_child;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    queue_conf qc = daemon_queue_conf(&dopt, w.name);
    qc.reclaim_idle_ms = (int)opt_reclaim_idle;
    log_info("worker starting", "worker=%s slots=%d groups=%d broker=%s", w.name, w.slots,
             w.ngroups, dopt.broker_url);
    http_server *hs = NULL;
    if (dopt.http_port) {
        w.m = metrics_new("dagq-worker");
        if (http_start((int)dopt.http_port, w.m, (double)dopt.health_timeout, &hs, err,
                       sizeof err)) {
            fprintf(stderr, "dagq-worker: %s\n", err);
            metrics_free(w.m);
            config_free(options);
            return 1;
        }
        metrics_worker_slots(w.m, 0, w.slots);
    }
    worker_base_env(&w);
    w.d = db_new(dopt.database_url, "dagq-worker");
    worker_db_ok(&w);
    w.in = intake_start(&qc, w.groups, w.ngroups, w.slots, wake_pipe[1], w.m);

    struct pollfd *pfds = NULL;
    int cap = 0, slots_shown = 0; /* metrics_new/worker_slots above showed 0 running */
    for (;;) {
        double t = now_s();
        if (stop_requested && !w.draining) {
            w.draining = 1;
            w.drain_deadline = t + (double)opt_drain_timeout;
            log_info("draining: no new tasks", "worker=%s running=%d drain_timeout_s=%lld", w.name,
                     w.nrunning, opt_drain_timeout);
            intake_stop(w.in); /* leaves the consumer groups */
            w.in = NULL;
            worker_heartbeat(&w, "draining");
        }
        if (w.draining && w.nrunning > 0 && (stop_now || t >= w.drain_deadline)) {
            worker_release_all(&w, stop_now ? "worker stopped at once (second signal)"
                                            : "worker drain timeout");
        }
        if (w.draining && w.nrunning == 0) {
            worker_flush_results(&w);
            if (!w.results || stop_now)
                break;
        }

        /* wait for output, children, messages, or the next deadline */
        int n = 1;
        if (cap < w.nrunning + 1) {
            cap = (w.nrunning + 1) * 2;
            pfds = mem_realloc(pfds, sizeof *pfds * (size_t)cap);
        }
        pfds[0] = (struct pollfd){wake_pipe[0], POLLIN, 0};
        for (run *x = w.runs; x; x = x->next)
            if (child_fd(x->ch) >= 0)
                pfds[n++] = (struct pollfd){child_fd(x->ch), POLLIN, 0};
        double wait = 1.0;
        if (w.next_heartbeat - t < wait)
            wait = w.next_heartbeat - t;
        for (run *x = w.runs; x; x = x->next) {
            if (x->deadline && !x->timed_out && x->deadline - t < wait)
                wait = x->deadline - t;
            if (x->kill_at && x->kill_at - t < wait)
                wait = x->kill_at - t;
        }
        if (w.results && wait > 0.2)
            wait = 0.2;
        int ms = wait <= 0 ? 0 : (int)(wait * 1000.0) + 1;
        int pr = poll(pfds, (nfds_t)n, ms);
        if (pr > 0 && (pfds[0].revents & POLLIN)) {
            char buf[256];
            while (read(wake_pipe[0], buf, sizeof buf) > 0)
                ;
        }
        /* pfds[1..] follow w.runs: read only the pipes that have something
         * (worker_reap drains what is left of a child that exited) */
        int k = 1;
        for (run *x = w.runs; x && pr > 0; x = x->next)
            if (child_fd(x->ch) >= 0 && pfds[k++].revents)
                child_read(x->ch);
        worker_reap(&w);
        worker_collect(&w);
        t = now_s();
        worker_timeouts(&w, t);
        if (w.results)
            worker_flush_results(&w);
        if (w.in) {
            intake_item *it;
            while (w.nrunning < w.slots && (it = intake_take(w.in)) != NULL)
                if (worker_take(&w, it) != 0)
                    break;
        }
        if (w.nrunning != slots_shown) {
            metrics_worker_slots(w.m, w.nrunning, w.slots);
            slots_shown = w.nrunning;
        }
        if (t >= w.next_heartbeat) {
            worker_heartbeat(&w, w.draining ? "draining" : "up");
            w.next_heartbeat = t + (double)opt_heartbeat_interval;
        }
    }

    if (worker_db_ok(&w)) {
        const char *p[1] = {w.name};
        db_query(w.d, "worker_gone",
                 "UPDATE dagq.worker SET state = 'gone', running = 0,"
                 " heartbeat_at = clock_timestamp() WHERE worker_id = $1",
                 1, p, NULL, err, sizeof err);
    }
    log_info("worker stopped", "worker=%s", w.name);
    intake_stop(w.in);
    http_stop(hs);
    metrics_free(w.m);
    mem_free(pfds);
    db_free(w.d);
    mem_free(w.base_env);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    config_free(options);
    return 0;
}
