/* dagq-worker — consumes its worker groups' queues, claims each try in the
 * metastore, runs it and writes the result back. This file parses the
 * options and installs the signal handlers; worker.h is the worker. */
#include "config.h"
#include "daemon.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested, stop_now, hup_seen;
static int wake_pipe[2] = {-1, -1};

static void wake(void)
{
    int saved = errno;
    char b = 1;
    ssize_t w = write(wake_pipe[1], &b, 1);
    (void)w; /* a full pipe already means "wake up" */
    errno = saved;
}

/* The handlers only set flags and wake the loop; the loop does the work. */
static void on_stop(int sig)
{
    (void)sig;
    if (stop_requested)
        stop_now = 1;
    stop_requested = 1;
    wake();
}

static void on_hup(int sig)
{
    (void)sig;
    hup_seen = 1;
    wake();
}

static void on_child(int sig)
{
    (void)sig;
    wake();
}

static daemon_opts dopt;
static char *opt_name, *opt_run_as;
static long long opt_slots, opt_heartbeat_interval, opt_drain_timeout, opt_reclaim_idle;
static long long opt_dead_letter_max;
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
    {"run-as", CONFIG_STRING, NULL,
     "run every task as this OS user (the worker needs root or CAP_SETUID and CAP_SETGID)",
     &opt_run_as},
    {"reclaim-idle-ms", CONFIG_INT, "30000",
     "Redis: reclaim messages a dead consumer left unacknowledged this long", &opt_reclaim_idle,
     100, 86400000},
    {"dead-letter-max", CONFIG_INT, "10000",
     "Redis: the dead-letter stream keeps about this many entries, the oldest are trimmed "
     "(XADD MAXLEN ~)",
     &opt_dead_letter_max, 1, 100000000},
    DAEMON_OPTIONS(&dopt),
    {NULL}};

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
                 "gives them back at once and exits. SIGHUP is logged and ignored.\n");
}

/* Worker group names: 1-100 of [A-Za-z0-9_.-], starting with a letter or digit. */
static int group_ok(const char *g)
{
    size_t n = strlen(g);
    if (n == 0 || n > 100 || g[0] == '_' || g[0] == '.' || g[0] == '-')
        return 0;
    for (size_t j = 0; j < n; j++)
        if (!(g[j] == '_' || g[j] == '.' || g[j] == '-' || (g[j] >= 'a' && g[j] <= 'z') ||
              (g[j] >= 'A' && g[j] <= 'Z') || (g[j] >= '0' && g[j] <= '9')))
            return 0;
    return 1;
}

static int load_options(int argc, char **argv, char *err, size_t errlen)
{
    int rc = config_load_daemon(options, argc, argv, &dopt.log_level, err, errlen);
    if (rc == CONFIG_OK && queue_url_check(dopt.broker_url, err, errlen) != QUEUE_OK)
        rc = CONFIG_ERR;
    for (int i = 0; rc == CONFIG_OK && i < opt_groups.n; i++) {
        if (!group_ok(opt_groups.items[i])) {
            snprintf(err, errlen,
                     "--group \"%s\" is not a valid worker group name (1-100 letters, digits, "
                     "\"_\", \".\" or \"-\")",
                     opt_groups.items[i]);
            rc = CONFIG_ERR;
        }
    }
    return rc;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_child;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    char err[1024];
    log_init("dagq-worker");
    int rc = load_options(argc, argv, err, sizeof err);
    if (rc == CONFIG_HELP) {
        usage(stdout);
        config_free(options);
        return 0;
    }
    if (rc != CONFIG_OK) {
        fprintf(stderr, "dagq-worker: %s\n", err);
        config_free(options);
        return 2;
    }
    /* the tasks this process forks must not read its memory or environment
     * (the database and broker credentials) through /proc */
    prctl(PR_SET_DUMPABLE, 0);
    char host[256] = "localhost", name[300];
    gethostname(host, sizeof host - 1);
    if (opt_name)
        snprintf(name, sizeof name, "%s", opt_name);
    else
        snprintf(name, sizeof name, "%s:%d", host, (int)getpid());
    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "dagq-worker: pipe: %s\n", strerror(errno));
        return 1;
    }
    install_signals();
    child_identity *run_as = NULL;
    if (opt_run_as && child_identity_lookup(opt_run_as, &run_as, err, sizeof err) != 0) {
        fprintf(stderr, "dagq-worker: --run-as: %s\n", err);
        config_free(options);
        return 2;
    }

    queue_conf qc = daemon_queue_conf(&dopt, name);
    qc.reclaim_idle_ms = (int)opt_reclaim_idle;
    qc.dead_letter_max = (int)opt_dead_letter_max;
    metrics *m = NULL;
    http_server *hs = NULL;
    if (dopt.http_port) {
        m = metrics_new("dagq-worker");
        if (http_start(dopt.http_bind, (int)dopt.http_port, m, (double)dopt.health_timeout, &hs,
                       err, sizeof err)) {
            fprintf(stderr, "dagq-worker: %s\n", err);
            metrics_free(m);
            config_free(options);
            return 1;
        }
    }
    worker_conf wc = {
        .name = name,
        .groups = opt_groups.items,
        .ngroups = opt_groups.n,
        .slots = opt_slots ? (int)opt_slots : (int)sysconf(_SC_NPROCESSORS_ONLN),
        .heartbeat_s = (double)opt_heartbeat_interval,
        .drain_timeout_s = (double)opt_drain_timeout,
        .database_url = dopt.database_url,
        .queue = &qc,
        .metrics = m,
        .wake_rd = wake_pipe[0],
        .wake_wr = wake_pipe[1],
        .run_as = run_as,
    };
    if (wc.slots < 1)
        wc.slots = 1;
    worker *w = worker_new(&wc);
    char broker[512];
    queue_url_redact(dopt.broker_url, broker, sizeof broker);
    log_info("worker starting", "worker=%s incarnation=%s slots=%d groups=%d broker=%s", name,
             worker_incarnation(w), wc.slots, wc.ngroups, broker);
    worker_run(w, &stop_requested, &stop_now, &hup_seen);
    worker_free(w);
    child_identity_free(run_as);
    http_stop(hs);
    metrics_free(m);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    config_free(options);
    config_list_free(&dopt.kafka_conf);
    return 0;
}
