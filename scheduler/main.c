/* dagq-scheduler — decides which task instances may run and pushes them onto
 * their worker group's queue. See sched.h for a pass, DESIGN.md for the why. */
#include "backoff.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "backlog_metrics.h"
#include "queue.h"
#include "sched.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
static char *opt_name;
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
    DAEMON_OPTIONS(&dopt),
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

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !stop_requested)
        ;
}

/* Waits for a notification on the metastore connection, up to timeout_ms. */
static void wait_notify(db *d, int timeout_ms)
{
    int fd = db_socket(d);
    if (fd < 0) {
        sleep_ms(timeout_ms);
        return;
    }
    if (db_drain_notifies(d) > 0)
        return;
    struct pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, timeout_ms);
    if (n > 0)
        db_drain_notifies(d);
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
    sched_conf sc = {
        .heartbeat_timeout_s = (double)opt_heartbeat_timeout,
        .queued_timeout_s = (double)opt_queued_timeout,
        .batch = (int)opt_batch,
        .housekeeping_ms = 1000,
    };
    log_info("scheduler starting",
             "name=%s broker=%s heartbeat_timeout_s=%lld "
             "queued_timeout_s=%lld",
             name, dopt.broker_url, opt_heartbeat_timeout, opt_queued_timeout);

    /* operator endpoints (off without --http-port); metrics hooks accept NULL */
    metrics *m = NULL;
    http_server *hs = NULL;
    if (dopt.http_port) {
        m = metrics_new("dagq-scheduler");
        if (http_start((int)dopt.http_port, m, (double)dopt.health_timeout, &hs, err, sizeof err)) {
            fprintf(stderr, "dagq-scheduler: %s\n", err);
            metrics_free(m);
            config_free(options);
            config_list_free(&dopt.kafka_conf);
            return 1;
        }
    }
    sc.metrics = m;

    db *d = db_new(dopt.database_url, "dagq-scheduler");
    /* a row someone holds in an open transaction must not stall a pass for
     * long: the statement fails, the pass rolls back and tries again (its
     * set-wise steps skip locked rows and never wait) */
    db_set_session_sql(d, "SET lock_timeout = '2s'");
    queue *q = NULL;
    sched *s = NULL;
    int db_was_down = 1, q_attempt = 0;
    volatile int *stopflag = (volatile int *)&stop_requested;

    while (!stop_requested) {
        if (hup_seen) {
            hup_seen = 0;
            log_info("SIGHUP: nothing to reload; going on", "name=%s", name);
        }
        if (!db_connected(d)) {
            if (!db_was_down)
                log_warn("lost the database; reconnecting", "name=%s", name);
            db_was_down = 1;
            metrics_server_up(m, METRICS_DATABASE, 0);
            if (db_ensure(d, stopflag) != DB_OK)
                break;
            if (db_listen(d, "dagq", err, sizeof err) != DB_OK) {
                log_warn("LISTEN failed", "error=\"%s\"", err);
                continue;
            }
        }
        if (db_was_down) {
            db_was_down = 0;
            metrics_server_up(m, METRICS_DATABASE, 1);
            if (s)
                sched_db_connected(s);
            log_info("connected to the database", "name=%s", name);
        }
        if (!q) {
            rc = queue_open(&qc, &q, err, sizeof err);
            if (rc != QUEUE_OK) {
                metrics_server_up(m, METRICS_BROKER, 0);
                int ms = backoff_reconnect_ms(q_attempt++);
                log_warn("broker unreachable, retrying", "broker=%s retry_in_ms=%d error=\"%s\"",
                         dopt.broker_url, ms, err);
                if (rc == QUEUE_EINVAL) {
                    log_error("broker configuration rejected", "error=\"%s\"", err);
                    break;
                }
                sleep_ms(ms);
                continue;
            }
            q_attempt = 0;
            metrics_server_up(m, METRICS_BROKER, 1);
            if (!s)
                s = sched_new(&sc, d, q);
        }
        long long passes = sched_get_stats(s)->passes;
        rc = sched_pass(s);
        if (sched_get_stats(s)->passes > passes) {
            metrics_histogram_observe(m, "dagq_scheduler_loop_duration_seconds", NULL,
                                      sched_get_stats(s)->last_pass_ms / 1000.0);
            metrics_pass_result(m, 1, NULL);
        } else if (*sched_last_error(s)) {
            metrics_pass_result(m, 0, sched_last_error(s));
        }
        if (rc == QUEUE_ECONN)
            metrics_server_up(m, METRICS_BROKER, 0);
        if (rc != DB_ECONN && backlog_metrics_collect(m, d, q, 1.0) == DB_ECONN)
            rc = DB_ECONN;
        if (rc > 0)
            continue; /* a full batch: there is more to queue at once */
        if (rc == QUEUE_ECONN) {
            sleep_ms(backoff_reconnect_ms(q_attempt++));
            continue;
        }
        if (rc == DB_ECONN)
            continue;
        q_attempt = 0;
        wait_notify(d, rc < 0 ? 1000 : sched_wait_ms(s, (int)opt_poll_interval_ms));
    }

    log_info("scheduler stopped", "name=%s", name);
    http_stop(hs);
    metrics_free(m);
    sched_free(s);
    queue_free(q);
    db_free(d);
    config_free(options);
    config_list_free(&dopt.kafka_conf);
    return 0;
}
