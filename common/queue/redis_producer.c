#include "redis_producer.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "mem.h"
#include "redis_cmd.h"
#include "redis_reply.h"

#include <string.h>

/* A dropped connection takes its unsent batch with it. */
static void qr_producer_sync(qr_producer *p)
{
    if (!p->conn.ctx && p->batch) {
        p->batch_lost += p->batch;
        p->batch = 0;
    }
}

/* Connects with SIGPIPE blocked. */
static int qr_producer_connect(qr_producer *p, char *errbuf, size_t errlen)
{
    qr_conn_sigpipe sp;
    qr_conn__sigpipe_block(&sp);
    int rc = qr_conn__connect(&p->conn, errbuf, errlen);
    qr_conn__sigpipe_restore(&sp);
    return rc;
}

int qr_producer__open(const queue_conf *conf, void **impl, char *errbuf, size_t errlen)
{
    *impl = NULL;
    qr_producer *p = mem_calloc(1, sizeof *p);
    int rc = qr_url__parse(conf->broker_url, conf, &p->url, errbuf, errlen);
    if (rc) {
        mem_free(p);
        return rc;
    }
    p->prefix = mem_strdup(qr_cmd__prefix(conf));
    qr_conn__init(&p->conn, &p->url, "producer", "", conf->client_name, 0);
    rc = qr_producer_connect(p, errbuf, errlen);
    if (rc) {
        qr_producer__free(p);
        return rc;
    }
    *impl = p;
    return QUEUE_OK;
}

void qr_producer__free(void *impl)
{
    qr_producer *p = impl;
    if (!p)
        return;
    if (p->batch || p->batch_lost)
        log_warn("redis producer freed with unflushed messages", "%s count=%d", p->conn.logctx,
                 p->batch + p->batch_lost);
    qr_conn__close(&p->conn);
    qr_url__clear(&p->url);
    queue_ensured__clear(&p->ensured);
    mem_free(p->prefix);
    mem_free(p);
}

/* Reads the replies of the batch; *done of them were read, *failed were
 * errors (*transient of those "not now"), the first one's words in first. */
static void qr_producer_read(qr_producer *p, int64_t deadline, int *done, int *failed,
                             int *transient, char *first, size_t firstlen)
{
    qr_conn_sigpipe sp;
    qr_conn__sigpipe_block(&sp);
    for (; *done < p->batch; (*done)++) {
        int64_t left = deadline - clock_now_ms();
        if (qr_conn__set_timeout(&p->conn, left > 0 ? (int)left : 1))
            break;
        void *r = NULL;
        if (redisGetReply(p->conn.ctx, &r) != REDIS_OK || !r) {
            qr_conn__drop(&p->conn, p->conn.ctx->errstr);
            break;
        }
        redisReply *rr = r;
        if (rr->type == REDIS_REPLY_ERROR) {
            if (!(*failed)++)
                errbuf_printf(first, firstlen, "%s", rr->str);
            *transient += qr_reply__transient(rr);
        }
        freeReplyObject(rr);
    }
    qr_conn__sigpipe_restore(&sp);
}

static int qr_producer_flush_batch(qr_producer *p, int timeout_ms, char *errbuf, size_t errlen)
{
    int rc = QUEUE_OK;
    qr_producer_sync(p);
    if (p->batch_lost) {
        rc = QUEUE_ECONN;
        errbuf_printf(errbuf, errlen, "redis %s: %d message(s) not sent: the connection was lost",
                      p->url.addr, p->batch_lost);
        p->batch_lost = 0;
    }
    if (!p->batch)
        return rc;
    int n = p->batch, failed = 0, transient = 0, done = 0;
    char first[256] = "";
    int64_t deadline = clock_now_ms() + (timeout_ms > 0 ? timeout_ms : QR_CMD_TIMEOUT_MS);
    qr_producer_read(p, deadline, &done, &failed, &transient, first, sizeof first);
    p->batch = 0;
    if (done < n) {
        rc = QUEUE_ECONN;
        errbuf_printf(errbuf, errlen,
                      "redis %s: connection lost while flushing; %d of %d message(s) unconfirmed",
                      p->url.addr, n - done, n);
    } else if (failed && !rc) {
        /* all "not now" (LOADING after a restart...): retriable */
        rc = transient == failed ? QUEUE_ECONN : QUEUE_EBROKER;
        errbuf_printf(errbuf, errlen, "redis %s: XADD refused for %d of %d message(s): %s",
                      p->url.addr, failed, n, first);
    }
    return rc;
}

int qr_producer__flush(void *impl, int timeout_ms, char *errbuf, size_t errlen)
{
    qr_producer *p = impl;
    int rc = qr_producer_flush_batch(p, timeout_ms, errbuf, errlen);
    if (p->deferred_rc) {
        if (!rc) {
            rc = p->deferred_rc;
            errbuf_printf(errbuf, errlen, "%s", p->deferred_err);
        }
        p->deferred_rc = 0;
    }
    return rc; /* the caller logs a failure */
}

void qr_producer__implicit_flush(qr_producer *p)
{
    qr_producer_sync(p);
    if (!p->batch && !p->batch_lost)
        return;
    char err[256];
    int rc = qr_producer_flush_batch(p, QR_CMD_TIMEOUT_MS, err, sizeof err);
    if (rc && !p->deferred_rc) {
        p->deferred_rc = rc;
        errbuf_printf(p->deferred_err, sizeof p->deferred_err, "%s", err);
    }
}

/* Sets *stream to group's stream key, creating its stream and consumer
 * group the first time this producer meets the group. */
static int qr_producer_ensure(qr_producer *p, const char *group, const char **stream_out,
                              char *errbuf, size_t errlen)
{
    if ((*stream_out = queue_ensured__find(&p->ensured, group)))
        return QUEUE_OK;
    qr_producer__implicit_flush(p);
    char *stream = qr_cmd__stream_key(p->prefix, group);
    qr_conn_sigpipe sp;
    qr_conn__sigpipe_block(&sp);
    int rc = qr_cmd__ensure_group(&p->conn, group, stream, errbuf, errlen);
    qr_conn__sigpipe_restore(&sp);
    if (rc) {
        mem_free(stream);
        return rc;
    }
    *stream_out = queue_ensured__add(&p->ensured, group, stream);
    return QUEUE_OK;
}

int qr_producer__ensure_group(void *impl, const char *group, char *errbuf, size_t errlen)
{
    const char *stream;
    return qr_producer_ensure(impl, group, &stream, errbuf, errlen);
}

int qr_producer__push(void *impl, const char *group, const void *data, size_t len, char *errbuf,
                      size_t errlen)
{
    qr_producer *p = impl;
    const char *stream;
    int rc;
    if ((rc = qr_producer_ensure(p, group, &stream, errbuf, errlen)))
        return rc;
    if (!p->batch)
        qr_conn__check_idle(&p->conn);
    qr_producer_sync(p);
    if (!p->conn.ctx && (rc = qr_producer_connect(p, errbuf, errlen)))
        return rc;
    const char *argv[] = {"XADD", stream, "*", "m", data ? (const char *)data : ""};
    size_t lens[] = {4, strlen(stream), 1, 1, data ? len : 0};
    if (redisAppendCommandArgv(p->conn.ctx, 5, argv, lens) != REDIS_OK) {
        errbuf_printf(errbuf, errlen, "redis %s XADD %s: %s", p->url.addr, stream,
                      p->conn.ctx->errstr);
        qr_conn__drop(&p->conn, p->conn.ctx->errstr);
        qr_producer_sync(p);
        return QUEUE_ECONN;
    }
    p->batch++;
    return QUEUE_OK;
}
