/* dagq-scheduler — decides which task instances may run and pushes them onto
 * their worker group's queue. This file parses the options and installs the
 * signal handlers; scheduler.h is the loop, sched.h a pass, DESIGN.md the why. */
#include "alerts.h"
#include "config.h"
#include "daemon.h"
#include "duration.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "scheduler.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested, hup_seen;

/* The handler only sets a flag; the loop does the work. A second signal
 * exits at once. */
static void on_signal(int sig)
{
    (void)sig;
    if (stop_requested)
        _exit(130);
    stop_requested = 1;
}

/* SIGHUP (a terminal closing, a supervisor's "reload") must not kill the
 * daemon: nothing is reloadable yet, so it is only logged. */
static void on_hup(int sig)
{
    (void)sig;
    hup_seen = 1;
}

static daemon_opts dopt;
static alerts_opts aopt;
static char *opt_name, *opt_retention;
static long long opt_heartbeat_timeout, opt_queued_timeout, opt_poll_interval_ms, opt_batch;

static const config_option options[] = {
    {"heartbeat-timeout", CONFIG_INT, "30",
     "seconds without a worker heartbeat after which a running try is retried or failed",
     &opt_heartbeat_timeout, 1, 86400},
    {"queued-timeout", CONFIG_INT, "60",
     "seconds a try may stay queued before its message is pushed again", &opt_queued_timeout, 1,
     86400},
    {"poll-interval-ms", CONFIG_INT, "1000", "fallback poll interval when no notification arrives",
     &opt_poll_interval_ms, 10, 60000},
    {"batch", CONFIG_INT, "256", "most tries queued in one pass", &opt_batch, 1, 100000},
    {"name", CONFIG_STRING, NULL, "this scheduler's name in logs (default host:pid)", &opt_name},
    {"retention", CONFIG_STRING, NULL,
     "delete finished runs (task instances, tries, logs, events) that ended longer ago than "
     "this, e.g. 90d (unset: keep the history)",
     &opt_retention},
    DAEMON_OPTIONS(&dopt),
    ALERTS_OPTIONS(&aopt),
    {NULL}};

static void usage(FILE *out)
{
    fprintf(out, "usage: dagq-scheduler [OPTIONS]\n\n"
                 "Polls the dagq metastore, queues the task instances that may run and pushes\n"
                 "them onto their worker group's queue. Several may run at once (HA).\n\n"
                 "Options (each also read from the environment variable shown):\n");
    config_usage(out, options);
    fprintf(out, "  --help                     this text\n\n"
                 "SIGTERM or SIGINT stops after the current pass; a second one exits at once.\n");
}

int main(int argc, char **argv)
{
    char err[1024];
    log_init("dagq-scheduler");
    int rc = config_load_daemon(options, argc, argv, &dopt.log_level, err, sizeof err);
    if (rc == CONFIG_HELP) {
        usage(stdout);
        config_free(options);
        return 0;
    }
    if (rc == CONFIG_OK && queue_url_check(dopt.broker_url, err, sizeof err) != QUEUE_OK)
        rc = CONFIG_ERR;
    if (rc == CONFIG_OK && alerts_check(&aopt, err, sizeof err) != 0)
        rc = CONFIG_ERR;
    double retention_s = 0;
    if (rc == CONFIG_OK && opt_retention) {
        char why[512];
        if (duration_parse(opt_retention, &retention_s, why, sizeof why) != 0) {
            snprintf(err, sizeof err, "--retention: %s", why);
            rc = CONFIG_ERR;
        }
    }
    if (rc != CONFIG_OK) {
        fprintf(stderr, "dagq-scheduler: %s\n", err);
        config_free(options);
        return 2;
    }

    char host[256] = "localhost", name[300];
    gethostname(host, sizeof host - 1);
    if (opt_name)
        snprintf(name, sizeof name, "%s", opt_name);
    else
        snprintf(name, sizeof name, "%s:%d", host, (int)getpid());

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    queue_conf qc = daemon_queue_conf(&dopt, name);
    char broker[512];
    queue_url_redact(dopt.broker_url, broker, sizeof broker);
    log_info("scheduler starting",
             "name=%s broker=%s heartbeat_timeout_s=%lld queued_timeout_s=%lld retention_s=%.0f",
             name, broker, opt_heartbeat_timeout, opt_queued_timeout, retention_s);

    /* operator endpoints (off without --http-port); metrics hooks accept NULL */
    metrics *m = NULL;
    http_server *hs = NULL;
    if (dopt.http_port) {
        m = metrics_new("dagq-scheduler");
        if (http_start(dopt.http_bind, (int)dopt.http_port, m, (double)dopt.health_timeout, &hs,
                       err, sizeof err)) {
            fprintf(stderr, "dagq-scheduler: %s\n", err);
            metrics_free(m);
            config_free(options);
            config_list_free(&dopt.kafka_conf);
            return 1;
        }
    }
    retention *ret = retention_s > 0 ? retention_new(retention_s) : NULL;
    scheduler_conf sc = {
        .name = name,
        .database_url = dopt.database_url,
        .queue = &qc,
        .sched =
            {
                .heartbeat_timeout_s = (double)opt_heartbeat_timeout,
                .queued_timeout_s = (double)opt_queued_timeout,
                .batch = (int)opt_batch,
                .housekeeping_ms = 1000,
                .metrics = m,
                .retention = ret,
            },
        .poll_interval_ms = (int)opt_poll_interval_ms,
        .metrics = m,
    };
    /* alerts are delivered on threads of their own (alerts.h) */
    alerts *al = alerts_start(name, dopt.database_url, &aopt, m, err, sizeof err);
    if (!al) {
        fprintf(stderr, "dagq-scheduler: %s\n", err);
        rc = 1;
    } else {
        rc = scheduler_run(&sc, &stop_requested, &hup_seen);
    }
    alerts_stop(al);
    retention_free(ret);
    http_stop(hs);
    metrics_free(m);
    config_free(options);
    config_list_free(&dopt.kafka_conf);
    return rc;
}
