#include "redis_cmd.h"

#include "errbuf.h"
#include "log.h"
#include "mem.h"
#include "redis_reply.h"

#define QR_DEFAULT_PREFIX "dagq:"

const char *qr_cmd__prefix(const queue_conf *conf)
{
    return conf->redis_prefix && *conf->redis_prefix ? conf->redis_prefix : QR_DEFAULT_PREFIX;
}

char *qr_cmd__stream_key(const char *prefix, const char *group)
{
    return mem_printf("%squeue:%s", prefix, group);
}

/* The connection settled and ready for a command of timeout_ms. */
static int qr_cmd_ready(qr_conn *conn, const char *what, int timeout_ms, char *errbuf,
                        size_t errlen)
{
    qr_conn__check_idle(conn);
    int rc = qr_conn__connect(conn, errbuf, errlen);
    if (rc)
        return rc;
    if (qr_conn__set_timeout(conn, timeout_ms ? timeout_ms : QR_CMD_TIMEOUT_MS)) {
        errbuf_printf(errbuf, errlen, "redis %s %s: cannot set the socket timeout", conn->url->addr,
                      what);
        return QUEUE_ECONN;
    }
    return 0;
}

/* The I/O error of conn's context: reported, and the connection dropped. */
static int qr_cmd_lost(qr_conn *conn, const char *what, char *errbuf, size_t errlen)
{
    errbuf_printf(errbuf, errlen, "redis %s %s: %s", conn->url->addr, what, conn->ctx->errstr);
    qr_conn__drop(conn, conn->ctx->errstr);
    return QUEUE_ECONN;
}

int qr_cmd__run(qr_conn *conn, const char *what, int argc, const char **argv, const size_t *lens,
                int timeout_ms, redisReply **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    int rc = qr_cmd_ready(conn, what, timeout_ms, errbuf, errlen);
    if (rc)
        return rc;
    redisReply *r = redisCommandArgv(conn->ctx, argc, argv, lens);
    if (!r)
        return qr_cmd_lost(conn, what, errbuf, errlen);
    *out = r;
    return 0;
}

int qr_cmd__pipeline(qr_conn *conn, const char *what, int n, const int *argcs,
                     const char **const *argvs, const size_t *const *lens, redisReply **replies,
                     char *errbuf, size_t errlen)
{
    int rc = qr_cmd_ready(conn, what, 0, errbuf, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        if (redisAppendCommandArgv(conn->ctx, argcs[i], argvs[i], lens[i]) != REDIS_OK)
            return qr_cmd_lost(conn, what, errbuf, errlen);
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(conn->ctx, &r) != REDIS_OK || !r) {
            for (int j = 0; j < i; j++)
                freeReplyObject(replies[j]);
            return qr_cmd_lost(conn, what, errbuf, errlen);
        }
        replies[i] = r;
    }
    return 0;
}

int qr_cmd__reply_rc(qr_conn *conn, const redisReply *r, const char *what, char *errbuf,
                     size_t errlen)
{
    if (r->type != REDIS_REPLY_ERROR) {
        errbuf_printf(errbuf, errlen, "redis %s %s: unexpected reply type %d", conn->url->addr,
                      what, r->type);
        return QUEUE_EBROKER;
    }
    errbuf_printf(errbuf, errlen, "redis %s %s: %s", conn->url->addr, what, r->str);
    if (qr_reply__is(r, "READONLY"))
        qr_conn__drop(conn, r->str);
    if (qr_reply__auth(r))
        return QUEUE_EINVAL;
    return qr_reply__transient(r) ? QUEUE_ECONN : QUEUE_EBROKER;
}

int qr_cmd__ensure_group(qr_conn *conn, const char *group, const char *stream, char *errbuf,
                         size_t errlen)
{
    const char *argv[] = {"XGROUP", "CREATE", stream, QR_GROUP, "0", "MKSTREAM"};
    redisReply *r;
    int rc = qr_cmd__run(conn, "XGROUP CREATE", 6, argv, NULL, 0, &r, errbuf, errlen);
    if (rc)
        return rc;
    char q[300];
    if (r->type == REDIS_REPLY_STATUS)
        log_info("redis consumer group created", "%s group=%s stream=\"%s\" cgroup=%s",
                 conn->logctx, group, log_quote(stream, q, sizeof q), QR_GROUP);
    else if (!qr_reply__is(r, "BUSYGROUP"))
        rc = qr_cmd__reply_rc(conn, r, "XGROUP CREATE", errbuf, errlen);
    freeReplyObject(r);
    return rc;
}
