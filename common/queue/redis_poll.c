#include "redis_poll.h"

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "redis_cmd.h"
#include "redis_consumer.h"
#include "redis_reply.h"

#include <stdio.h>
#include <string.h>

#define QR_BLOCK_GRACE_MS 5000
#define QR_RECLAIM_MIN_INTERVAL_MS 100

/* A message from a stream entry [id, [field, value, ...]]; NULL when the
 * entry is malformed or deleted. */
static queue_msg *qr_poll_msg(qr_consumer *c, const redisReply *e)
{
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[0]->len >= sizeof(((queue_msg *)0)->id))
        return NULL;
    const redisReply *id = e->element[0];
    const redisReply *m = qr_reply__map_get(e->element[1], "m");
    qr_msg *rm = mem_calloc(1, sizeof *rm);
    rm->ops = &queue__redis_ops;
    memcpy(rm->msg.id, id->str, id->len);
    rm->msg.id[id->len] = '\0';
    if (m && m->type == REDIS_REPLY_STRING) {
        rm->msg.len = m->len;
    } else {
        /* not written by dagq: an empty payload, which the worker dead-letters */
        char q[100];
        log_warn("redis entry without field m", "%s id=\"%s\"", c->logctx,
                 log_quote(rm->msg.id, q, sizeof q));
        rm->msg.len = 0;
    }
    rm->msg.data = mem_strndup(rm->msg.len ? m->str : "", rm->msg.len);
    rm->msg.priv = rm;
    return &rm->msg;
}

/* The entries of a reply's array into msgs, up to max; reclaimed ones are
 * logged. */
static void qr_poll_take(qr_consumer *c, const redisReply *entries, int max, int reclaimed,
                         queue_msg **msgs, int *n)
{
    for (size_t i = 0; i < entries->elements && *n < max; i++) {
        queue_msg *m = qr_poll_msg(c, entries->element[i]);
        if (!m)
            continue;
        char q[100];
        if (reclaimed)
            log_info("redis entry reclaimed", "%s id=\"%s\"", c->logctx,
                     log_quote(m->id, q, sizeof q));
        msgs[(*n)++] = m;
    }
}

/* An unwanted reply of XAUTOCLAIM or XREADGROUP as a code. */
static int qr_poll_reply_rc(qr_consumer *c, const redisReply *r, const char *what, char *errbuf,
                            size_t errlen)
{
    int rc = qr_cmd__reply_rc(&c->rconn, r, what, errbuf, errlen);
    return qr_reply__is(r, "NOGROUP") ? QR_ENOGROUP : rc;
}

/* Takes entries in the group's pending list idle for reclaim_idle_ms. */
static int qr_poll_reclaim(qr_consumer *c, int max, queue_msg **msgs, int *n, char *errbuf,
                           size_t errlen)
{
    char idle[16], count[16];
    snprintf(idle, sizeof idle, "%d", c->reclaim_idle_ms);
    snprintf(count, sizeof count, "%d", max);
    const char *argv[] = {"XAUTOCLAIM", c->stream,         QR_GROUP, c->name,
                          idle,         c->reclaim_cursor, "COUNT",  count};
    redisReply *r;
    int rc = qr_cmd__run(&c->rconn, "XAUTOCLAIM", 8, argv, NULL, 0, &r, errbuf, errlen);
    if (rc)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
        rc = qr_poll_reply_rc(c, r, "XAUTOCLAIM", errbuf, errlen);
        freeReplyObject(r);
        return rc;
    }
    qr_poll_take(c, r->element[1], max, 1, msgs, n);
    snprintf(c->reclaim_cursor, sizeof c->reclaim_cursor, "%.*s", (int)r->element[0]->len,
             r->element[0]->str);
    /* a full scan wraps to 0-0: wait an interval; otherwise go on soon */
    int64_t now = clock_now_ms();
    int interval = c->reclaim_idle_ms / 2;
    if (interval < QR_RECLAIM_MIN_INTERVAL_MS)
        interval = QR_RECLAIM_MIN_INTERVAL_MS;
    c->next_reclaim_ms = strcmp(c->reclaim_cursor, "0-0") == 0 ? now + interval : now;
    freeReplyObject(r);
    return 0;
}

/* Before a blocking read: the connection settled, so that wake sees the id
 * that blocks. 1 when a wake came first (nothing to read), 0 to read, or an
 * error code. */
static int qr_poll_block_begin(qr_consumer *c, char *errbuf, size_t errlen)
{
    qr_conn__check_idle(&c->rconn);
    int rc = qr_conn__connect(&c->rconn, errbuf, errlen);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    int woken = c->wake_pending;
    c->in_block = !woken;
    c->block_id = c->rconn.client_id;
    pthread_mutex_unlock(&c->mu);
    return woken;
}

/* XREADGROUP of new entries, blocking up to block_ms (0: no BLOCK). */
static int qr_poll_read(qr_consumer *c, int max, int block_ms, queue_msg **msgs, int *n,
                        char *errbuf, size_t errlen)
{
    char count[16], block[16];
    snprintf(count, sizeof count, "%d", max);
    snprintf(block, sizeof block, "%d", block_ms);
    const char *argv[12] = {"XREADGROUP", "GROUP", QR_GROUP, c->name, "COUNT", count};
    int argc = 6;
    if (block_ms > 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = c->stream;
    argv[argc++] = ">";
    int rc = block_ms > 0 ? qr_poll_block_begin(c, errbuf, errlen) : 0;
    if (rc)
        return rc > 0 ? 0 : rc;
    redisReply *r;
    rc = qr_cmd__run(&c->rconn, "XREADGROUP", argc, argv, NULL,
                     block_ms > 0 ? block_ms + QR_BLOCK_GRACE_MS : 0, &r, errbuf, errlen);
    if (block_ms > 0) {
        pthread_mutex_lock(&c->mu);
        c->in_block = 0;
        pthread_mutex_unlock(&c->mu);
    }
    if (rc)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY && r->type != REDIS_REPLY_NIL)
        rc = qr_poll_reply_rc(c, r, "XREADGROUP", errbuf, errlen);
    for (size_t s = 0; r->type == REDIS_REPLY_ARRAY && s < r->elements; s++) {
        const redisReply *st = r->element[s];
        if (st->type == REDIS_REPLY_ARRAY && st->elements >= 2 &&
            st->element[1]->type == REDIS_REPLY_ARRAY)
            qr_poll_take(c, st->element[1], max, 0, msgs, n);
    }
    freeReplyObject(r);
    return rc;
}

/* One round: reclaim when due, else read until the deadline or the next
 * reclaim. */
static int qr_poll_round(qr_consumer *c, int max, int64_t deadline, queue_msg **msgs, int *n,
                         char *errbuf, size_t errlen)
{
    if (clock_now_ms() >= c->next_reclaim_ms) {
        int rc = qr_poll_reclaim(c, max, msgs, n, errbuf, errlen);
        if (rc || *n > 0)
            return rc;
    }
    int64_t now = clock_now_ms(), until = deadline;
    if (c->next_reclaim_ms < until)
        until = c->next_reclaim_ms;
    int block = until > now && deadline > now ? (int)(until - now) : 0;
    return qr_poll_read(c, max, block, msgs, n, errbuf, errlen);
}

/* Rounds until a message, an error, a wake or the deadline, healing a lost
 * group and a stale connection once each. */
static int qr_poll_loop(qr_consumer *c, int max, int64_t deadline, queue_msg **msgs, int *n,
                        char *errbuf, size_t errlen)
{
    int rc, retried = 0, regrouped = 0;
    for (;;) {
        int stale = c->rconn.ctx != NULL; /* connected before this call */
        rc = qr_conn__connect(&c->rconn, errbuf, errlen);
        if (rc) {
            if (rc == QUEUE_ECONN) /* wait out the backoff, within the timeout */
                qr_consumer__wait(c, c->rconn.next_try_ms < deadline ? c->rconn.next_try_ms
                                                                     : deadline);
            return rc;
        }
        if (!stale)
            retried = 1; /* a fresh connection that fails is not retried */
        rc = qr_poll_round(c, max, deadline, msgs, n, errbuf, errlen);
        if (rc == QR_ENOGROUP) {
            rc = QUEUE_EBROKER;
            if (!regrouped++) {
                log_warn("redis consumer group missing; creating it again", "%s", c->logctx);
                rc = qr_cmd__ensure_group(&c->rconn, c->group, c->stream, errbuf, errlen);
                if (!rc)
                    continue;
            }
        }
        if (rc == QUEUE_ECONN && !retried && !c->rconn.ctx && !c->rconn.timed_out) {
            retried = 1;
            continue;
        }
        if (rc == QUEUE_ECONN && c->rconn.ctx) {
            /* Redis answered "not now" (LOADING, BUSY...): do not spin */
            int64_t soon = clock_now_ms() + 100;
            qr_consumer__wait(c, soon < deadline ? soon : deadline);
        }
        if (rc || *n > 0 || qr_consumer__take_wake(c) || clock_now_ms() >= deadline)
            return rc;
    }
}

int qr_poll__poll(void *impl, int max, int timeout_ms, queue_msg **msgs, int *n, char *errbuf,
                  size_t errlen)
{
    qr_consumer *c = impl;
    int64_t deadline = clock_now_ms() + timeout_ms;
    if (qr_consumer__take_wake(c))
        return QUEUE_OK;
    if (max == 0) {
        qr_consumer__wait(c, deadline);
        qr_consumer__take_wake(c);
        return QUEUE_OK;
    }
    qr_conn_sigpipe sp;
    qr_conn__sigpipe_block(&sp);
    int rc = qr_poll_loop(c, max, deadline, msgs, n, errbuf, errlen);
    qr_conn__sigpipe_restore(&sp);
    if (rc) {
        for (int i = 0; i < *n; i++)
            qr_consumer__msg_free(msgs[i]);
        *n = 0;
        return rc;
    }
    qr_consumer__take_wake(c);
    char q[100];
    if (*n)
        log_debug("redis poll", "%s count=%d first_id=\"%s\"", c->logctx, *n,
                  log_quote(msgs[0]->id, q, sizeof q));
    return QUEUE_OK;
}
