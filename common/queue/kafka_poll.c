#include "kafka_poll.h"

#include "clock.h"
#include "errbuf.h"
#include "kafka_consumer.h"
#include "kafka_parts.h"
#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <string.h>

#define KQ_POLL_SLICE_MS 200

/* A copy of m, recorded as handed out. */
static kq_msg *kq_poll_take(kq_consumer *c, const rd_kafka_message_t *m)
{
    kq_msg *km = mem_alloc(sizeof *km + m->len + 1);
    km->ops = &queue__kafka_ops;
    km->partition = m->partition;
    km->offset = m->offset;
    if (m->len)
        memcpy(km->data, m->payload, m->len);
    km->data[m->len] = '\0';
    km->pub.data = km->data;
    km->pub.len = m->len;
    km->pub.priv = km;
    snprintf(km->pub.id, sizeof km->pub.id, "p%d@%lld", (int)m->partition, (long long)m->offset);

    pthread_mutex_lock(&c->mu);
    kq_part *p = kq_parts__find(c, m->partition, false);
    if (p && p->assigned) {
        if (p->n_out == p->cap_out) {
            p->cap_out = p->cap_out ? p->cap_out * 2 : 16;
            p->out = mem_realloc(p->out, sizeof *p->out * (size_t)p->cap_out);
        }
        p->out[p->n_out++] = m->offset;
        if (m->offset + 1 > p->next)
            p->next = m->offset + 1;
        km->gen = p->gen;
    } else {
        km->gen = 0; /* not ours (cannot happen): its ack stores nothing */
        log_warn("kafka message from an unassigned partition", "group=%s id=\"%s\"", c->group,
                 km->pub.id);
    }
    pthread_mutex_unlock(&c->mu);
    return km;
}

static void kq_poll_error(kq_consumer *c, const rd_kafka_message_t *m)
{
    char q[512];
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    log_warn("kafka consumer error", "group=%s topic=%s partition=%d err=%s reason=\"%s\"",
             c->group, m->rkt ? rd_kafka_topic_name(m->rkt) : "-", (int)m->partition,
             rd_kafka_err2name(m->err), log_quote(rd_kafka_message_errstr(m), q, sizeof q));
}

/* The wait of one rd_kafka_consumer_poll: what is left, in slices. */
static int kq_poll_slice(int64_t deadline)
{
    int64_t left = deadline - clock_now_ms();
    return left <= 0 ? 0 : left > KQ_POLL_SLICE_MS ? KQ_POLL_SLICE_MS : (int)left;
}

static void kq_poll_stash(kq_consumer *c, kq_msg *m)
{
    if (c->n_stash == c->cap_stash) {
        c->cap_stash = c->cap_stash ? c->cap_stash * 2 : 16;
        c->stash = mem_realloc(c->stash, sizeof *c->stash * (size_t)c->cap_stash);
    }
    c->stash[c->n_stash++] = m;
}

/* No free slot: take nothing, stay in the group; what arrives is stashed. */
static void kq_poll_idle(kq_consumer *c, int64_t deadline)
{
    do {
        if (!c->paused && c->n_stash >= KQ_STASH_HIGH)
            kq_parts__pause(c, true);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->cl.rk, kq_poll_slice(deadline));
        if (!m)
            continue;
        if (m->err)
            kq_poll_error(c, m);
        else
            kq_poll_stash(c, kq_poll_take(c, m));
        rd_kafka_message_destroy(m);
    } while (!atomic_load(&c->wake) && clock_now_ms() < deadline);
}

/* Up to max messages: the stash first, then waiting for the first message
 * only, then taking what is already there. */
static void kq_poll_some(kq_consumer *c, int max, int64_t deadline, queue_msg **msgs, int *n)
{
    if (c->n_stash > 0) { /* what came during max == 0 polls goes first */
        int k = c->n_stash < max ? c->n_stash : max;
        for (int i = 0; i < k; i++)
            msgs[(*n)++] = &c->stash[i]->pub;
        memmove(c->stash, c->stash + k, sizeof *c->stash * (size_t)(c->n_stash - k));
        c->n_stash -= k;
    }
    if (c->paused && c->n_stash < KQ_STASH_LOW)
        kq_parts__pause(c, false);
    while (*n < max && !atomic_load(&c->wake)) {
        rd_kafka_message_t *m =
            rd_kafka_consumer_poll(c->cl.rk, *n > 0 ? 0 : kq_poll_slice(deadline));
        if (!m) {
            if (*n > 0 || clock_now_ms() >= deadline)
                break;
            continue;
        }
        if (m->err)
            kq_poll_error(c, m);
        else
            msgs[(*n)++] = &kq_poll_take(c, m)->pub;
        rd_kafka_message_destroy(m);
    }
}

int kq_poll__poll(void *impl, int max, int timeout_ms, queue_msg **msgs, int *n, char *errbuf,
                  size_t errlen)
{
    kq_consumer *c = impl;
    int64_t deadline = clock_now_ms() + timeout_ms;
    if (max == 0)
        kq_poll_idle(c, deadline);
    else
        kq_poll_some(c, max, deadline, msgs, n);
    atomic_store(&c->wake, 0);
    if (*n == 0 && atomic_load(&c->cl.fatal)) {
        errbuf_printf(errbuf, errlen, "kafka: the consumer hit a fatal error");
        return QUEUE_EBROKER;
    }
    return QUEUE_OK;
}
