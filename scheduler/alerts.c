#include "alerts.h"

#include "alert_detect.h"
#include "alert_send.h"
#include "clock.h"
#include "db.h"
#include "errbuf.h"
#include "log.h"
#include "mem.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALERTS_IDLE_POLL_MS 500
#define ALERTS_RESULT_TRIES 5

typedef struct alerts_thread {
    struct alerts *a;
    int index;
    pthread_t tid;
    char who[320]; /* name/index: delivered_by, leased_by */
} alerts_thread;

struct alerts {
    char *name;
    const char *database_url;
    const alerts_opts *o;
    metrics *m;
    volatile int stop;
    alert_send_conf send;
    alert_detect_conf detect;
    pthread_t detect_tid;
    int detecting;
    alerts_thread *t;
    int nthreads;
};

int alerts_check(const alerts_opts *o, char *errbuf, size_t errlen)
{
    const char *tls = o->smtp_tls ? o->smtp_tls : "starttls";
    if (strcmp(tls, "starttls") && strcmp(tls, "none")) {
        errbuf_printf(errbuf, errlen, "--smtp-tls must be starttls or none, got \"%s\"", tls);
        return -1;
    }
    if (o->smtp_url && strncmp(o->smtp_url, "smtp://", 7) && strncmp(o->smtp_url, "smtps://", 8)) {
        errbuf_printf(errbuf, errlen, "--smtp-url must start with smtp:// or smtps://");
        return -1;
    }
    int clear = !strcmp(tls, "none") && o->smtp_url && !strncmp(o->smtp_url, "smtp://", 7);
    if (clear && (o->smtp_user || o->smtp_password)) {
        errbuf_printf(errbuf, errlen,
                      "--smtp-tls none with a login would send the password in the clear; use "
                      "STARTTLS or smtps://");
        return -1;
    }
    if (o->smtp_url && !o->smtp_from) {
        errbuf_printf(errbuf, errlen, "--smtp-url needs --smtp-from (the sender address)");
        return -1;
    }
    return 0;
}

/* Waits for a NOTIFY dagq_event (or timeout_ms). */
static void alerts_wait(db *d, int timeout_ms, volatile int *stop)
{
    int fd = db_socket(d);
    if (fd < 0 || db_drain_notifies(d) > 0) {
        if (fd < 0)
            clock_sleep_ms(timeout_ms);
        return;
    }
    for (int waited = 0; waited < timeout_ms && !*stop; waited += 100) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            db_drain_notifies(d);
            return;
        }
    }
}

static int alerts_connect(db *d, volatile int *stop)
{
    if (db_connected(d))
        return 0;
    if (db_ensure(d, stop) != DB_OK)
        return -1;
    char err[512], q[512];
    if (db_listen(d, "dagq_event", err, sizeof err) != DB_OK) {
        log_warn("alerts: LISTEN failed", "error=\"%s\"", log_quote(err, q, sizeof q));
        return -1;
    }
    return 0;
}

/* Records the outcome; tries again (reconnecting) while the database is
 * away, up to a few times: past the lease, another process sends the event
 * again anyway. Returns the new state ("" when not recorded). */
static void alerts_result(alerts_thread *t, db *d, PGresult *c, int ok, const char *resp,
                          const char *err, char *state, size_t len)
{
    const char *p[6] = {PQgetvalue(c, 0, 0), PQgetvalue(c, 0, 1), ok ? "true" : "false",
                        *resp ? resp : NULL, ok ? NULL : err,     t->who};
    char e[1024], q[1024];
    state[0] = '\0';
    for (int i = 0; i < ALERTS_RESULT_TRIES && !t->a->stop; i++) {
        if (alerts_connect(d, &t->a->stop))
            continue;
        PGresult *r;
        int rc =
            db_query(d, "alert_result", "SELECT dagq.alert_result($1, $2::uuid, $3, $4, $5, $6)", 6,
                     p, &r, e, sizeof e);
        if (rc == DB_OK) {
            snprintf(state, len, "%s", PQgetisnull(r, 0, 0) ? "taken over" : PQgetvalue(r, 0, 0));
            PQclear(r);
            return;
        }
        log_warn("alerts: could not record a delivery's outcome; trying again",
                 "delivery=%s error=\"%s\"", p[0], log_quote(e, q, sizeof q));
        if (rc != DB_ECONN)
            clock_sleep_ms(200);
    }
}

static void alerts_count(alerts_thread *t, const char *channel, const char *result)
{
    char esc[300], labels[400];
    metrics_label_escape(channel, esc, sizeof esc);
    snprintf(labels, sizeof labels, "channel=\"%s\",result=\"%s\"", esc, result);
    metrics_counter_add(t->a->m, "dagq_alert_deliveries_total", labels, 1);
}

/* Logs and counts what happened to the delivery in row 0 of c. */
static void alerts_report(alerts_thread *t, PGresult *c, const char *state, const char *resp,
                          const char *err, double ms)
{
    char qc[300], qs[600], qr[600], qe[1200];
    log_quote(PQgetvalue(c, 0, 3), qc, sizeof qc);
    log_quote(PQgetvalue(c, 0, 11), qs, sizeof qs);
    log_quote(resp, qr, sizeof qr);
    log_quote(err, qe, sizeof qe);
#define ALERTS_ARGS                                                                                \
    t->who, qc, PQgetvalue(c, 0, 4), PQgetvalue(c, 0, 0), PQgetvalue(c, 0, 9),                     \
        PQgetvalue(c, 0, 8), PQgetvalue(c, 0, 10), PQgetvalue(c, 0, 2), ms
    if (!strcmp(state, "taken over")) {
        log_info("alert outcome not recorded: its lease had expired and another process took "
                 "it over",
                 "name=%s channel=\"%s\" delivery=%s event_id=%s ms=%.0f", t->who, qc,
                 PQgetvalue(c, 0, 0), PQgetvalue(c, 0, 8), ms);
    } else if (!strcmp(state, "delivered")) {
        alerts_count(t, PQgetvalue(c, 0, 3), "delivered");
        log_info("alert delivered",
                 "name=%s channel=\"%s\" kind=%s delivery=%s event=%s event_id=%s events=%s "
                 "attempt=%s ms=%.0f response=\"%s\" summary=\"%s\"",
                 ALERTS_ARGS, qr, qs);
    } else if (!strcmp(state, "undeliverable") && strcmp(PQgetvalue(c, 0, 9), "test")) {
        alerts_count(t, PQgetvalue(c, 0, 3), "undeliverable");
        log_error("alert undeliverable: retried for the channel's retry_for; giving up",
                  "name=%s channel=\"%s\" kind=%s delivery=%s event=%s event_id=%s events=%s "
                  "attempt=%s ms=%.0f error=\"%s\" summary=\"%s\"",
                  ALERTS_ARGS, qe, qs);
    } else {
        alerts_count(t, PQgetvalue(c, 0, 3), "failed");
        log_warn("alert delivery failed",
                 "name=%s channel=\"%s\" kind=%s delivery=%s event=%s event_id=%s events=%s "
                 "attempt=%s ms=%.0f outcome=\"%s\" error=\"%s\"",
                 ALERTS_ARGS, state, qe);
    }
#undef ALERTS_ARGS
}

/* Sends the claimed delivery in row 0 of c and records the outcome. */
static void alerts_send_claimed(alerts_thread *t, db *d, PGresult *c)
{
    char **env = NULL;
    int nenv = 0;
    if (!PQgetisnull(c, 0, 13))
        db_text_array(PQgetvalue(c, 0, 13), &env, &nenv);
    alert_msg m = {
        .channel = PQgetvalue(c, 0, 3),
        .kind = PQgetvalue(c, 0, 4),
        .target = PQgetvalue(c, 0, 5),
        .headers_from = PQgetisnull(c, 0, 6) ? NULL : PQgetvalue(c, 0, 6),
        .timeout_ms = atoi(PQgetvalue(c, 0, 7)),
        .event_id = strtoll(PQgetvalue(c, 0, 8), NULL, 10),
        .event = PQgetvalue(c, 0, 9),
        .body = PQgetvalue(c, 0, 12),
        .env = env,
        .nenv = nenv,
    };
    char resp[1024], err[2048], state[32];
    double t0 = clock_now_s();
    int rc = alert_send(&t->a->send, &m, resp, sizeof resp, err, sizeof err);
    double ms = (clock_now_s() - t0) * 1000.0;
    for (int i = 0; i < nenv; i++)
        mem_free(env[i]);
    mem_free(env);
    char kl[64];
    snprintf(kl, sizeof kl, "kind=\"%s\"", m.kind);
    metrics_histogram_observe(t->a->m, "dagq_alert_delivery_duration_seconds", kl, ms / 1000.0);
    if (rc == ALERT_SEND_STOPPED) {
        const char *p[2] = {PQgetvalue(c, 0, 0), PQgetvalue(c, 0, 1)};
        if (db_connected(d))
            db_query(d, "alert_release", "SELECT dagq.alert_release($1, $2::uuid)", 2, p, NULL, err,
                     sizeof err);
        log_info("alert send abandoned: stopping; handed back", "name=%s delivery=%s", t->who,
                 p[0]);
        return;
    }
    alerts_result(t, d, c, rc == ALERT_SEND_OK, resp, err, state, sizeof state);
    if (!*state) {
        log_warn("alerts: the outcome of a delivery was not recorded; it is sent again when its "
                 "lease expires",
                 "name=%s delivery=%s sent=%s", t->who, PQgetvalue(c, 0, 0),
                 rc == ALERT_SEND_OK ? "yes" : "no");
        return;
    }
    alerts_report(t, c, state, resp, err, ms);
}

/* Claims and sends one delivery. Returns 1 when one was sent (look again at
 * once), 0 when there was none, a negative DB_* on a database error. */
static int alerts_deliver_one(alerts_thread *t, db *d)
{
    const char *p[2] = {t->who, t->a->o->base_url};
    char err[1024], q[1024];
    PGresult *c;
    int rc = db_query(d, "alert_claim", "SELECT * FROM dagq.alert_claim($1, $2)", 2, p, &c, err,
                      sizeof err);
    if (rc) {
        if (rc == DB_EQUERY)
            log_warn("alerts: claiming a delivery failed; trying again", "name=%s error=\"%s\"",
                     t->who, log_quote(err, q, sizeof q));
        return rc;
    }
    if (PQntuples(c) == 0) {
        PQclear(c);
        return 0;
    }
    alerts_send_claimed(t, d, c);
    PQclear(c);
    return 1;
}

static void *alerts_thread_main(void *arg)
{
    alerts_thread *t = arg;
    db *d = db_new(t->a->database_url, "dagq-alerts");
    db_set_session_sql(d, "SET lock_timeout = '2s'");
    while (!t->a->stop) {
        if (alerts_connect(d, &t->a->stop))
            continue;
        int rc = alerts_deliver_one(t, d);
        if (rc <= 0 && !t->a->stop)
            alerts_wait(d, rc < 0 ? 1000 : ALERTS_IDLE_POLL_MS, &t->a->stop);
    }
    db_free(d);
    return NULL;
}

alerts *alerts_start(const char *name, const char *database_url, const alerts_opts *o, metrics *m,
                     char *errbuf, size_t errlen)
{
    alerts *a = mem_calloc(1, sizeof *a);
    a->name = mem_strdup(name);
    a->database_url = database_url;
    a->o = o;
    a->m = m;
    if (o->threads <= 0)
        return a;
    if (alert_send_global_init(errbuf, errlen)) {
        alerts_stop(a);
        return NULL;
    }
    a->send = (alert_send_conf){
        .secrets_dir = o->secrets_dir,
        .ca_file = o->ca_file,
        .smtp_url = o->smtp_url,
        .smtp_user = o->smtp_user,
        .smtp_password = o->smtp_password,
        .smtp_from = o->smtp_from,
        .smtp_starttls = !o->smtp_tls || strcmp(o->smtp_tls, "none") != 0,
        .stop = &a->stop,
    };
    a->detect = (alert_detect_conf){
        .name = a->name,
        .database_url = database_url,
        .missing_after_s = (double)o->workers_missing_after,
        .metrics = m,
        .stop = &a->stop,
    };
    a->detecting = pthread_create(&a->detect_tid, NULL, alert_detect_main, &a->detect) == 0;
    a->t = mem_calloc((size_t)o->threads, sizeof *a->t);
    for (int i = 0; i < o->threads; i++) {
        alerts_thread *t = &a->t[i];
        t->a = a;
        t->index = i;
        snprintf(t->who, sizeof t->who, "%s/%d", name, i);
        if (pthread_create(&t->tid, NULL, alerts_thread_main, t) != 0) {
            errbuf_printf(errbuf, errlen, "cannot start alert thread %d", i);
            alerts_stop(a);
            return NULL;
        }
        a->nthreads++;
    }
    log_info("alert delivery started", "name=%s threads=%d", name, a->nthreads);
    return a;
}

void alerts_stop(alerts *a)
{
    if (!a)
        return;
    a->stop = 1;
    for (int i = 0; i < a->nthreads; i++)
        pthread_join(a->t[i].tid, NULL);
    if (a->detecting)
        pthread_join(a->detect_tid, NULL);
    if (a->o->threads > 0)
        alert_send_global_cleanup();
    mem_free(a->t);
    mem_free(a->name);
    mem_free(a);
}
