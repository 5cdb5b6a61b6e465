#include "queue.h"

#include "errbuf.h"
#include "log.h"
#include "mem.h"
#include "queue_ops.h"

#include <string.h>

struct queue {
    const queue__ops *ops;
    void *impl;
};

struct queue_consumer {
    const queue__ops *ops;
    void *impl;
    char *group; /* for logs */
};

const char *queue_strerror(int code)
{
    switch (code) {
    case QUEUE_OK:
        return "ok";
    case QUEUE_EINVAL:
        return "invalid configuration";
    case QUEUE_ECONN:
        return "broker unreachable";
    case QUEUE_EBROKER:
        return "broker error";
    default:
        return "unknown error";
    }
}

static const queue__ops *queue_pick(const char *url, char *errbuf, size_t errlen)
{
    static const queue__ops *const all[] = {&queue__redis_ops, &queue__kafka_ops};
    if (!url || !*url) {
        errbuf_printf(errbuf, errlen, "broker URL is empty");
        return NULL;
    }
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        for (const char *const *sc = all[i]->schemes; *sc; sc++) {
            size_t n = strlen(*sc);
            if (!strncmp(url, *sc, n) && !strncmp(url + n, "://", 3))
                return all[i];
        }
    }
    char shown[512];
    queue_url_redact(url, shown, sizeof shown);
    errbuf_printf(errbuf, errlen,
                  "broker URL \"%s\": scheme must be redis://, rediss:// or kafka://", shown);
    return NULL;
}

/* What every call naming a worker group or handing back a message needs,
 * checked here once for both brokers. */
static int queue_group_ok(const char *group, char *errbuf, size_t errlen)
{
    if (group && *group)
        return QUEUE_OK;
    errbuf_printf(errbuf, errlen, "worker group name is empty");
    return QUEUE_EINVAL;
}

static int queue_msg_ok(const queue_consumer *c, const queue_msg *m, char *errbuf, size_t errlen)
{
    if (m && m->priv && *(const queue__ops *const *)m->priv == c->ops)
        return QUEUE_OK;
    errbuf_printf(errbuf, errlen, "not a message of a %s consumer", c->ops->schemes[0]);
    return QUEUE_EINVAL;
}

int queue_url_check(const char *url, char *errbuf, size_t errlen)
{
    const queue__ops *ops = queue_pick(url, errbuf, errlen);
    if (!ops)
        return QUEUE_EINVAL;
    return ops->url_check(url, errbuf, errlen);
}

int queue_open(const queue_conf *conf, queue **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    const queue__ops *ops = queue_pick(conf->broker_url, errbuf, errlen);
    if (!ops)
        return QUEUE_EINVAL;
    void *impl = NULL;
    int rc = ops->open(conf, &impl, errbuf, errlen);
    if (rc)
        return rc;
    queue *q = mem_calloc(1, sizeof *q);
    q->ops = ops;
    q->impl = impl;
    *out = q;
    return QUEUE_OK;
}

void queue_free(queue *q)
{
    if (!q)
        return;
    q->ops->free(q->impl);
    mem_free(q);
}

int queue_ensure_group(queue *q, const char *group, char *errbuf, size_t errlen)
{
    int rc = queue_group_ok(group, errbuf, errlen);
    if (rc)
        return rc;
    return q->ops->ensure_group(q->impl, group, errbuf, errlen);
}

int queue_push(queue *q, const char *group, const void *data, size_t len, char *errbuf,
               size_t errlen)
{
    int rc = queue_group_ok(group, errbuf, errlen);
    if (rc)
        return rc;
    return q->ops->push(q->impl, group, data, len, errbuf, errlen);
}

int queue_flush(queue *q, int timeout_ms, char *errbuf, size_t errlen)
{
    return q->ops->flush(q->impl, timeout_ms, errbuf, errlen);
}

int queue_backlog(queue *q, const char *group, int64_t *backlog, char *errbuf, size_t errlen)
{
    int rc = queue_group_ok(group, errbuf, errlen);
    if (rc)
        return rc;
    return q->ops->backlog(q->impl, group, backlog, errbuf, errlen);
}

int queue_consumer_open(const queue_conf *conf, const char *group, queue_consumer **out,
                        char *errbuf, size_t errlen)
{
    *out = NULL;
    const queue__ops *ops = queue_pick(conf->broker_url, errbuf, errlen);
    if (!ops)
        return QUEUE_EINVAL;
    if (queue_group_ok(group, errbuf, errlen))
        return QUEUE_EINVAL;
    void *impl = NULL;
    int rc = ops->consumer_open(conf, group, &impl, errbuf, errlen);
    if (rc)
        return rc;
    queue_consumer *c = mem_calloc(1, sizeof *c);
    c->ops = ops;
    c->impl = impl;
    c->group = mem_strdup(group);
    *out = c;
    return QUEUE_OK;
}

void queue_consumer_free(queue_consumer *c)
{
    if (!c)
        return;
    c->ops->consumer_free(c->impl);
    mem_free(c->group);
    mem_free(c);
}

int queue_consumer_poll(queue_consumer *c, int max, int timeout_ms, queue_msg **msgs, int *n,
                        char *errbuf, size_t errlen)
{
    *n = 0;
    if (max < 0) {
        errbuf_printf(errbuf, errlen, "poll: max must be >= 0");
        return QUEUE_EINVAL;
    }
    if (timeout_ms < 0)
        timeout_ms = 0;
    return c->ops->consumer_poll(c->impl, max, timeout_ms, msgs, n, errbuf, errlen);
}

int queue_consumer_ack(queue_consumer *c, queue_msg *m, char *errbuf, size_t errlen)
{
    int rc = queue_msg_ok(c, m, errbuf, errlen);
    if (rc)
        return rc;
    return c->ops->consumer_ack(c->impl, m, errbuf, errlen);
}

/* The dead letter is stored first and the message acked after, so a failure
 * in between leaves the message to be delivered again (and dead-lettered
 * again: a duplicate letter, never a lost one). A broker that can do both in
 * one operation says so through *acked. */
int queue_consumer_dead_letter(queue_consumer *c, queue_msg *m, const char *reason, char *errbuf,
                               size_t errlen)
{
    int rc = queue_msg_ok(c, m, errbuf, errlen);
    if (rc)
        return rc;
    if (!reason)
        reason = "";
    const char *where = "";
    int acked = 0;
    rc = c->ops->dead_letter(c->impl, m, reason, &where, &acked, errbuf, errlen);
    if (!rc && !acked)
        rc = c->ops->consumer_ack(c->impl, m, errbuf, errlen);
    if (rc)
        return rc; /* the caller logs a failure */
    char qid[100], qwhere[300], qreason[300];
    log_warn("message dead-lettered", "group=%s id=\"%s\" dead_letter=\"%s\" reason=\"%s\"",
             c->group, log_quote(m->id, qid, sizeof qid), log_quote(where, qwhere, sizeof qwhere),
             log_quote(reason, qreason, sizeof qreason));
    return QUEUE_OK;
}

void queue_consumer_wake(queue_consumer *c)
{
    c->ops->consumer_wake(c->impl);
}

void queue_msg_free(queue_msg *m)
{
    if (!m)
        return;
    /* every implementation frees through its own table; the payload's owner
     * is recorded by the implementation in priv */
    const queue__ops *ops = m->priv ? *(const queue__ops **)m->priv : NULL;
    if (ops)
        ops->msg_free(m);
}
