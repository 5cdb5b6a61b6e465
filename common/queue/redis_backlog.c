#include "redis_backlog.h"

#include "mem.h"
#include "redis_cmd.h"
#include "redis_producer.h"
#include "redis_reply.h"

static int qr_backlog_xlen(qr_conn *conn, const char *stream, int64_t *len, char *errbuf,
                           size_t errlen)
{
    const char *argv[] = {"XLEN", stream};
    redisReply *r;
    int rc = qr_cmd__run(conn, "XLEN", 2, argv, NULL, 0, &r, errbuf, errlen);
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER)
        *len = r->integer;
    else
        rc = qr_cmd__reply_rc(conn, r, "XLEN", errbuf, errlen);
    freeReplyObject(r);
    return rc;
}

/* The backlog of the stream from its XINFO GROUPS reply r. */
static int qr_backlog_of(qr_conn *conn, const char *stream, const redisReply *r, int64_t *backlog,
                         char *errbuf, size_t errlen)
{
    const redisReply *g = NULL;
    for (size_t i = 0; i < r->elements && !g; i++)
        if (qr_reply__str_eq(qr_reply__map_get(r->element[i], "name"), QR_GROUP))
            g = r->element[i];
    if (!g) /* no group yet: it will be created at id 0, so all of it waits */
        return qr_backlog_xlen(conn, stream, backlog, errbuf, errlen);
    const redisReply *lag = qr_reply__map_get(g, "lag");
    if (lag && lag->type == REDIS_REPLY_INTEGER) {
        *backlog = lag->integer;
        return 0;
    }
    /* lag unknown: every entry left in the stream is pending or undelivered */
    const redisReply *pending = qr_reply__map_get(g, "pending");
    int64_t len = 0;
    int rc = qr_backlog_xlen(conn, stream, &len, errbuf, errlen);
    if (!rc) {
        int64_t pend = pending && pending->type == REDIS_REPLY_INTEGER ? pending->integer : 0;
        *backlog = len > pend ? len - pend : 0;
    }
    return rc;
}

int qr_backlog__get(void *impl, const char *group, int64_t *backlog, char *errbuf, size_t errlen)
{
    qr_producer *p = impl;
    *backlog = 0;
    qr_producer__implicit_flush(p);
    char *stream = qr_cmd__stream_key(p->prefix, group);
    const char *argv[] = {"XINFO", "GROUPS", stream};
    redisReply *r = NULL;
    qr_conn_sigpipe sp;
    qr_conn__sigpipe_block(&sp);
    int rc = qr_cmd__run(&p->conn, "XINFO GROUPS", 3, argv, NULL, 0, &r, errbuf, errlen);
    /* no key: nothing was ever pushed, backlog 0 */
    if (!rc && !qr_reply__is(r, "ERR no such key")) {
        if (r->type != REDIS_REPLY_ARRAY)
            rc = qr_cmd__reply_rc(&p->conn, r, "XINFO GROUPS", errbuf, errlen);
        else
            rc = qr_backlog_of(&p->conn, stream, r, backlog, errbuf, errlen);
    }
    qr_conn__sigpipe_restore(&sp);
    if (r)
        freeReplyObject(r);
    mem_free(stream);
    return rc;
}
