#include "redis_consumer.h"

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "redis_cmd.h"
#include "redis_reply.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define QR_RECLAIM_IDLE_DEFAULT_MS 30000
#define QR_DEAD_LETTER_MAX_DEFAULT 10000
#define QR_WAKE_TRIES 50
#define QR_WAKE_RETRY_MS 2

int qr_consumer__take_wake(qr_consumer *c)
{
    pthread_mutex_lock(&c->mu);
    int w = c->wake_pending;
    c->wake_pending = 0;
    pthread_mutex_unlock(&c->mu);
    return w;
}

void qr_consumer__wait(qr_consumer *c, int64_t until_ms)
{
    pthread_mutex_lock(&c->mu);
    while (!c->wake_pending) {
        int64_t left = until_ms - clock_now_ms();
        if (left <= 0)
            break;
        struct timespec ts = clock_after_ms(left);
        pthread_cond_timedwait(&c->cond, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
}

static void qr_consumer_destroy(qr_consumer *c)
{
    qr_conn__close(&c->rconn);
    qr_conn__close(&c->cconn);
    qr_url__clear(&c->url);
    mem_free(c->group);
    mem_free(c->stream);
    mem_free(c->dead_letter);
    mem_free(c->name);
    mem_free(c->label);
    mem_free(c->logctx);
    mem_free(c);
}

static char *qr_consumer_default_name(void)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    return mem_printf("%s:%ld", host, (long)getpid());
}

/* What a consumer is made of, before it connects. */
static qr_consumer *qr_consumer_new(const queue_conf *conf, const char *group, qr_url *url)
{
    qr_consumer *c = mem_calloc(1, sizeof *c);
    c->url = *url;
    const char *prefix = qr_cmd__prefix(conf);
    c->group = mem_strdup(group);
    c->stream = qr_cmd__stream_key(prefix, group);
    c->dead_letter = mem_printf("%sdead-letter", prefix);
    c->name = conf->client_name && *conf->client_name ? mem_strdup(conf->client_name)
                                                      : qr_consumer_default_name();
    char qs[300], qn[300], qa[300];
    c->label = mem_printf("group=%s stream=\"%s\" consumer=\"%s\"", c->group,
                          log_quote(c->stream, qs, sizeof qs), log_quote(c->name, qn, sizeof qn));
    c->logctx = mem_printf("broker=\"%s\" %s", log_quote(c->url.addr, qa, sizeof qa), c->label);
    c->reclaim_idle_ms =
        conf->reclaim_idle_ms > 0 ? conf->reclaim_idle_ms : QR_RECLAIM_IDLE_DEFAULT_MS;
    snprintf(c->dead_letter_max, sizeof c->dead_letter_max, "%d",
             conf->dead_letter_max > 0 ? conf->dead_letter_max : QR_DEAD_LETTER_MAX_DEFAULT);
    snprintf(c->reclaim_cursor, sizeof c->reclaim_cursor, "0-0");
    c->next_reclaim_ms = 0; /* at the first poll: a predecessor may have died */
    qr_conn__init(&c->rconn, &c->url, "consumer", c->label, c->name, 1);
    qr_conn__init(&c->cconn, &c->url, "consumer-cmd", c->label, c->name, 0);
    return c;
}

int qr_consumer__open(const queue_conf *conf, const char *group, void **impl, char *errbuf,
                      size_t errlen)
{
    *impl = NULL;
    qr_url url;
    int rc = qr_url__parse(conf->broker_url, conf, &url, errbuf, errlen);
    if (rc)
        return rc;
    qr_consumer *c = qr_consumer_new(conf, group, &url); /* c owns url now */
    qr_conn_sigpipe sp;
    qr_conn__sigpipe_block(&sp);
    rc = qr_conn__connect(&c->rconn, errbuf, errlen);
    if (!rc)
        rc = qr_cmd__ensure_group(&c->rconn, c->group, c->stream, errbuf, errlen);
    if (!rc)
        rc = qr_conn__connect(&c->cconn, errbuf, errlen);
    qr_conn__sigpipe_restore(&sp);
    if (rc) {
        qr_consumer_destroy(c);
        return rc;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->cmd_mu, NULL);
    log_info("redis consumer ready", "%s", c->logctx);
    *impl = c;
    return QUEUE_OK;
}

/* Deletes this consumer from the group unless it has pending entries: one
 * script, so nothing can become pending between the check and the delete. */
static const char qr_consumer_leave_script[] =
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])\n"
    "if #p > 0 then return -1 end\n"
    "return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])\n";

static void qr_consumer_leave(qr_consumer *c)
{
    const char *argv[] = {"EVAL", qr_consumer_leave_script, "1", c->stream, QR_GROUP, c->name};
    redisReply *r = NULL;
    char err[256], q[300];
    qr_conn_sigpipe sp;
    qr_conn__sigpipe_block(&sp);
    int rc = qr_cmd__run(&c->rconn, "leave group", 6, argv, NULL, 0, &r, err, sizeof err);
    qr_conn__sigpipe_restore(&sp);
    const char *failed = rc ? err : NULL;
    if (!rc && r->type == REDIS_REPLY_INTEGER && r->integer < 0)
        log_info("redis consumer left with pending entries; others will reclaim them", "%s",
                 c->logctx);
    else if (!rc && r->type == REDIS_REPLY_INTEGER)
        log_debug("redis consumer deleted", "%s", c->logctx);
    else if (!rc && !qr_reply__is(r, "NOGROUP"))
        failed = r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply";
    if (failed)
        log_warn("redis consumer left without cleanup", "%s err=\"%s\"", c->logctx,
                 log_quote(failed, q, sizeof q));
    if (r)
        freeReplyObject(r);
}

void qr_consumer__free(void *impl)
{
    qr_consumer *c = impl;
    if (!c)
        return;
    qr_consumer_leave(c);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->cmd_mu);
    pthread_cond_destroy(&c->cond);
    qr_consumer_destroy(c);
}

void qr_consumer__msg_free(queue_msg *m)
{
    qr_msg *rm = m->priv;
    mem_free((void *)m->data);
    mem_free(rm);
}

/* The replies of a MULTI ... EXEC: +OK, +QUEUED..., then EXEC's array (nil:
 * aborted). 0, or the first error as a QUEUE_E* code. */
static int qr_consumer_tx_rc(qr_consumer *c, const char *what, int n, redisReply **replies,
                             char *errbuf, size_t errlen)
{
    const redisReply *exec = replies[n - 1];
    for (int i = 0; i < n - 1; i++)
        if (replies[i]->type == REDIS_REPLY_ERROR)
            return qr_cmd__reply_rc(&c->cconn, replies[i], what, errbuf, errlen);
    if (exec->type != REDIS_REPLY_ARRAY)
        return qr_cmd__reply_rc(&c->cconn, exec, what, errbuf, errlen);
    for (size_t i = 0; i < exec->elements; i++)
        if (exec->element[i]->type == REDIS_REPLY_ERROR)
            return qr_cmd__reply_rc(&c->cconn, exec->element[i], what, errbuf, errlen);
    return 0;
}

/* Runs the MULTI ... EXEC of ack or dead_letter on the command connection;
 * retried once on a fresh connection when the old one turns out broken. */
static int qr_consumer_tx(qr_consumer *c, const char *what, int n, const int *argcs,
                          const char **const *argvs, const size_t *const *lens, char *errbuf,
                          size_t errlen)
{
    redisReply *replies[8];
    int rc;
    pthread_mutex_lock(&c->cmd_mu);
    qr_conn_sigpipe sp;
    qr_conn__sigpipe_block(&sp);
    for (int attempt = 0;; attempt++) {
        int stale = c->cconn.ctx != NULL;
        rc = qr_cmd__pipeline(&c->cconn, what, n, argcs, argvs, lens, replies, errbuf, errlen);
        if (rc == QUEUE_ECONN && stale && attempt == 0 && !c->cconn.ctx && !c->cconn.timed_out)
            continue;
        break;
    }
    if (!rc) {
        rc = qr_consumer_tx_rc(c, what, n, replies, errbuf, errlen);
        for (int i = 0; i < n; i++)
            freeReplyObject(replies[i]);
    }
    qr_conn__sigpipe_restore(&sp);
    pthread_mutex_unlock(&c->cmd_mu);
    return rc;
}

int qr_consumer__ack(void *impl, queue_msg *m, char *errbuf, size_t errlen)
{
    qr_consumer *c = impl;
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const char *xack[] = {"XACK", c->stream, QR_GROUP, m->id};
    const char *xdel[] = {"XDEL", c->stream, m->id};
    const int argcs[] = {1, 4, 3, 1};
    const char **const argvs[] = {multi, xack, xdel, exec};
    const size_t *const lens[] = {NULL, NULL, NULL, NULL};
    int rc = qr_consumer_tx(c, "ack", 4, argcs, argvs, lens, errbuf, errlen);
    char q[100];
    if (rc == 0) /* the caller logs a failure */
        log_debug("redis entry acked", "%s id=\"%s\"", c->logctx, log_quote(m->id, q, sizeof q));
    return rc;
}

int qr_consumer__dead_letter(void *impl, queue_msg *m, const char *reason, const char **where,
                             int *acked, char *errbuf, size_t errlen)
{
    qr_consumer *c = impl;
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const char *payload = m->data ? (const char *)m->data : "";
    /* capped: a flood of junk must not grow Redis's memory without bound */
    const char *xadd[] = {"XADD",   c->dead_letter, "MAXLEN", "~",       c->dead_letter_max,
                          "*",      "reason",       reason,   "payload", payload,
                          "stream", c->stream,      "id",     m->id,     "group",
                          c->group};
    size_t xadd_lens[16];
    for (int i = 0; i < 16; i++)
        xadd_lens[i] = strlen(xadd[i]);
    xadd_lens[9] = m->data ? m->len : 0; /* the payload: binary */
    const char *xack[] = {"XACK", c->stream, QR_GROUP, m->id};
    const char *xdel[] = {"XDEL", c->stream, m->id};
    const int argcs[] = {1, 16, 4, 3, 1};
    const char **const argvs[] = {multi, xadd, xack, xdel, exec};
    const size_t *const lens[] = {NULL, xadd_lens, NULL, NULL, NULL};
    *where = c->dead_letter;
    *acked = 1; /* XACK and XDEL are in the same MULTI */
    return qr_consumer_tx(c, "dead-letter", 5, argcs, argvs, lens, errbuf, errlen);
}

/* CLIENT UNBLOCK id on the command connection: 1 when done trying (the poll
 * was unblocked, or the command failed), 0 when the poll is not blocked yet. */
static int qr_consumer_unblock(qr_consumer *c, long long id)
{
    char ids[32], err[256], q[300];
    snprintf(ids, sizeof ids, "%lld", id);
    const char *argv[] = {"CLIENT", "UNBLOCK", ids};
    redisReply *r = NULL;
    pthread_mutex_lock(&c->cmd_mu);
    qr_conn_sigpipe sp;
    qr_conn__sigpipe_block(&sp);
    int rc = qr_cmd__run(&c->cconn, "CLIENT UNBLOCK", 3, argv, NULL, 0, &r, err, sizeof err);
    qr_conn__sigpipe_restore(&sp);
    pthread_mutex_unlock(&c->cmd_mu);
    int done = rc || r->type != REDIS_REPLY_INTEGER || r->integer == 1;
    if (rc)
        log_warn("redis wake failed", "%s err=\"%s\"", c->logctx, log_quote(err, q, sizeof q));
    if (r)
        freeReplyObject(r);
    return done;
}

void qr_consumer__wake(void *impl)
{
    qr_consumer *c = impl;
    pthread_mutex_lock(&c->mu);
    c->wake_pending = 1;
    pthread_cond_broadcast(&c->cond);
    int blocking = c->in_block;
    long long id = c->block_id;
    pthread_mutex_unlock(&c->mu);
    /* the XREADGROUP may not have reached Redis yet: then UNBLOCK says 0 and
     * is tried again while poll is still in it */
    for (int i = 0; blocking && i < QR_WAKE_TRIES; i++) {
        if (qr_consumer_unblock(c, id))
            break;
        clock_sleep_ms(QR_WAKE_RETRY_MS);
        pthread_mutex_lock(&c->mu);
        blocking = c->in_block && c->block_id == id;
        pthread_mutex_unlock(&c->mu);
    }
}
