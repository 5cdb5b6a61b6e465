#include "scheduler.h"

#include "backlog_metrics.h"
#include "backoff.h"
#include "clock.h"
#include "db.h"
#include "log.h"

#include <poll.h>
#include <stdio.h>

typedef struct scheduler {
    const scheduler_conf *conf;
    db *d;
    queue *q;
    sched *s;
    int db_was_down, q_attempt;
    char broker[512]; /* the broker URL as logs may show it */
    volatile sig_atomic_t *stop;
} scheduler;

/* Waits for a notification on the metastore connection, up to timeout_ms,
 * in slices of at most half a second: a SIGTERM that lands just before the
 * poll (not interrupting it) is seen within one slice, not after the whole
 * --poll-interval-ms. */
static void scheduler_wait(db *d, int timeout_ms, volatile sig_atomic_t *stop)
{
    int fd = db_socket(d);
    if (fd < 0) {
        clock_sleep_ms(timeout_ms);
        return;
    }
    if (db_drain_notifies(d) > 0)
        return;
    double until = clock_now_s() + timeout_ms / 1000.0;
    for (;;) {
        int left = (int)((until - clock_now_s()) * 1000.0);
        if (left <= 0 || *stop)
            return;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left < 500 ? left : 500) > 0) {
            db_drain_notifies(d);
            return;
        }
    }
}

/* The metastore connection, LISTENing. Returns 0, or -1 when stopped while
 * reconnecting or the LISTEN failed (the loop tries again). */
static int scheduler_db(scheduler *x)
{
    metrics *m = x->conf->metrics;
    if (!db_connected(x->d)) {
        if (!x->db_was_down)
            log_warn("lost the database; reconnecting", "name=%s", x->conf->name);
        x->db_was_down = 1;
        metrics_server_up(m, METRICS_DATABASE, 0);
        if (db_ensure(x->d, (volatile int *)x->stop) != DB_OK)
            return -1;
        char err[512], q[512];
        if (db_listen(x->d, "dagq", err, sizeof err) != DB_OK) {
            log_warn("LISTEN failed", "error=\"%s\"", log_quote(err, q, sizeof q));
            return -1;
        }
    }
    if (x->db_was_down) {
        x->db_was_down = 0;
        metrics_server_up(m, METRICS_DATABASE, 1);
        if (x->s)
            sched_db_connected(x->s);
        log_info("connected to the database", "name=%s", x->conf->name);
    }
    return 0;
}

/* The broker producer (and the scheduler, once both servers answered).
 * Returns 0, 1 to try again after a backoff, or -1 when the broker
 * configuration is rejected. */
static int scheduler_broker(scheduler *x)
{
    if (x->q)
        return 0;
    char err[1024], q[1024];
    int rc = queue_open(x->conf->queue, &x->q, err, sizeof err);
    if (rc == QUEUE_EINVAL) {
        log_error("broker configuration rejected; stopping", "broker=%s error=\"%s\"", x->broker,
                  log_quote(err, q, sizeof q));
        return -1;
    }
    if (rc != QUEUE_OK) {
        metrics_server_up(x->conf->metrics, METRICS_BROKER, 0);
        int ms = backoff_reconnect_ms(x->q_attempt++);
        log_warn("broker unreachable, retrying", "broker=%s retry_in_ms=%d error=\"%s\"", x->broker,
                 ms, log_quote(err, q, sizeof q));
        clock_sleep_ms(ms);
        return 1;
    }
    x->q_attempt = 0;
    metrics_server_up(x->conf->metrics, METRICS_BROKER, 1);
    if (!x->s)
        x->s = sched_new(&x->conf->sched, x->d, x->q);
    return 0;
}

/* One pass and what the loop does after it. */
static void scheduler_step(scheduler *x)
{
    metrics *m = x->conf->metrics;
    long long passes = sched_get_stats(x->s)->passes;
    int rc = sched_pass(x->s);
    if (sched_get_stats(x->s)->passes > passes) {
        metrics_histogram_observe(m, "dagq_scheduler_loop_duration_seconds", NULL,
                                  sched_get_stats(x->s)->last_pass_ms / 1000.0);
        metrics_pass_result(m, 1, NULL);
    } else if (*sched_last_error(x->s)) {
        metrics_pass_result(m, 0, sched_last_error(x->s));
    }
    if (rc == QUEUE_ECONN)
        metrics_server_up(m, METRICS_BROKER, 0);
    if (rc != DB_ECONN && backlog_metrics_collect(m, x->d, x->q, 1.0) == DB_ECONN)
        rc = DB_ECONN;
    if (rc > 0 || rc == DB_ECONN)
        return; /* more to do at once, or reconnect first */
    if (rc == QUEUE_ECONN) {
        clock_sleep_ms(backoff_reconnect_ms(x->q_attempt++));
        return;
    }
    x->q_attempt = 0;
    scheduler_wait(x->d, rc < 0 ? 1000 : sched_wait_ms(x->s, x->conf->poll_interval_ms), x->stop);
}

int scheduler_run(const scheduler_conf *conf, volatile sig_atomic_t *stop,
                  volatile sig_atomic_t *hup)
{
    scheduler x = {.conf = conf, .db_was_down = 1, .stop = stop};
    queue_url_redact(conf->queue->broker_url, x.broker, sizeof x.broker);
    x.d = db_new(conf->database_url, "dagq-scheduler");
    /* a row someone holds in an open transaction must not stall a pass for
     * long: the statement fails, the pass rolls back and tries again (its
     * set-wise steps skip locked rows and never wait) */
    db_set_session_sql(x.d, "SET lock_timeout = '2s'");
    int rc = 0;
    while (!*stop) {
        if (*hup) {
            *hup = 0;
            log_info("SIGHUP: nothing to reload; going on", "name=%s", conf->name);
        }
        if (scheduler_db(&x) != 0)
            continue;
        int b = scheduler_broker(&x);
        if (b < 0) {
            rc = 1;
            break;
        }
        if (b == 0)
            scheduler_step(&x);
    }
    log_info("scheduler stopped", "name=%s", conf->name);
    sched_free(x.s);
    queue_free(x.q);
    db_free(x.d);
    return rc;
}
