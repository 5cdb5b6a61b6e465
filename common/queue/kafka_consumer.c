#include "kafka_consumer.h"

#include "errbuf.h"
#include "kafka_admin.h"
#include "kafka_parts.h"
#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <string.h>

#define KQ_DEAD_LETTER_TIMEOUT_MS 10000
#define KQ_HEADER_REASON "dagq-reason"
#define KQ_HEADER_SOURCE "dagq-source"

/* See "Assignment" in kafka_consumer.h: cooperative-sticky only where
 * librdkafka can destroy a consumer that never had an assignment. */
static const char *kq_consumer_assignor(void)
{
    return rd_kafka_version() >= 0x02030000 ? "cooperative-sticky" : "roundrobin";
}

/* The librdkafka consumer of c, subscribed to c->topic (created first). */
static int kq_consumer_start(kq_consumer *c, char *errbuf, size_t errlen)
{
    const kq_client_kv defaults[] = {{"partition.assignment.strategy", kq_consumer_assignor()},
                                     {"session.timeout.ms", "10000"},
                                     {"heartbeat.interval.ms", "1000"},
                                     {"fetch.wait.max.ms", "100"},
                                     {"auto.commit.interval.ms", "500"},
                                     {"auto.offset.reset", "earliest"},
                                     {"enable.partition.eof", "false"},
                                     {"queued.min.messages", "1000"},
                                     {NULL, NULL}};
    const kq_client_kv forced[] = {{"group.id", c->topic},
                                   {"enable.auto.offset.store", "false"},
                                   {"enable.auto.commit", "true"},
                                   {NULL, NULL}};
    char es[512];
    rd_kafka_conf_t *kconf = kq_client__conf_new(&c->cl, &c->s, defaults, forced, errbuf, errlen);
    if (!kconf)
        return QUEUE_EINVAL;
    rd_kafka_conf_set_rebalance_cb(kconf, kq_parts__rebalance_cb);
    c->cl.rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, es, sizeof es);
    if (!c->cl.rk) {
        rd_kafka_conf_destroy(kconf); /* not owned by rk when rd_kafka_new fails */
        errbuf_printf(errbuf, errlen, "kafka: creating the consumer: %s", es);
        return QUEUE_EINVAL;
    }
    /* error and log events are served by rd_kafka_consumer_poll */
    rd_kafka_poll_set_consumer(c->cl.rk);
    c->cq = rd_kafka_queue_get_consumer(c->cl.rk);
    int rc = kq_admin__topic_create(c->cl.rk, c->group, c->topic, c->s.partitions, c->s.replication,
                                    errbuf, errlen);
    if (rc)
        return rc;
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->cl.rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        errbuf_printf(errbuf, errlen, "kafka: subscribing to %s: %s", c->topic,
                      rd_kafka_err2str(err));
        return kq_client__code(err);
    }
    return QUEUE_OK;
}

int kq_consumer__open(const queue_conf *conf, const char *group, void **impl, char *errbuf,
                      size_t errlen)
{
    kq_consumer *c = mem_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->dl_mu, NULL);
    c->group = mem_strdup(group);
    kq_client__init(&c->cl, "consumer", c->group);
    int rc = kq_settings__init(&c->s, conf, errbuf, errlen);
    if (!rc)
        rc = kq_settings__topic_name(&c->s, group, &c->topic, errbuf, errlen);
    if (!rc) {
        c->dl_topic = mem_printf("%s%s", c->s.prefix, KQ_DEAD_LETTER);
        rc = kq_consumer_start(c, errbuf, errlen);
    }
    if (rc) {
        kq_consumer__free(c);
        return rc;
    }
    char qn[200];
    log_info("kafka consumer subscribed", "kafka=\"%s\" group=%s topic=%s",
             log_quote(rd_kafka_name(c->cl.rk), qn, sizeof qn), c->group, c->topic);
    *impl = c;
    return QUEUE_OK;
}

void kq_consumer__free(void *impl)
{
    kq_consumer *c = impl;
    if (!c)
        return;
    kq_client__closing(&c->cl);
    char q[512];
    if (c->cl.rk) {
        /* leaves the group: revocation (rebalance callback) and the final commit */
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->cl.rk);
        if (err)
            log_warn("kafka consumer close", "group=%s err=\"%s\"", c->group,
                     log_quote(rd_kafka_err2str(err), q, sizeof q));
    }
    for (int i = 0; i < c->n_stash; i++)
        mem_free(c->stash[i]);
    mem_free(c->stash);
    if (c->cq)
        rd_kafka_queue_destroy(c->cq);
    if (c->cl.rk)
        rd_kafka_destroy(c->cl.rk);
    kq_producer__free(c->dl);
    for (int i = 0; i < c->n_parts; i++)
        mem_free(c->parts[i].out);
    mem_free(c->parts);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->dl_mu);
    kq_client__fini(&c->cl);
    kq_settings__free(&c->s);
    mem_free(c->group);
    mem_free(c->topic);
    mem_free(c->dl_topic);
    mem_free(c);
}

/* Stores offset pos of m's partition p (with c->mu held): 0, or a code. */
static int kq_consumer_store(kq_consumer *c, kq_part *p, int64_t pos, const queue_msg *qm,
                             char *errbuf, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, c->topic, p->partition)->offset = pos;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->cl.rk, l);
    if (!err)
        err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    char q[100];
    if (!err) {
        p->stored = pos;
    } else if (err == RD_KAFKA_RESP_ERR__STATE) {
        log_debug("kafka offset not stored: partition no longer assigned", "group=%s id=\"%s\"",
                  c->group, log_quote(qm->id, q, sizeof q));
    } else {
        errbuf_printf(errbuf, errlen, "kafka: storing offset %lld of %s [%d]: %s", (long long)pos,
                      c->topic, (int)p->partition, rd_kafka_err2str(err));
        return kq_client__code(err);
    }
    return QUEUE_OK;
}

int kq_consumer__ack(void *impl, queue_msg *qm, char *errbuf, size_t errlen)
{
    kq_consumer *c = impl;
    kq_msg *m = qm->priv;
    int rc = QUEUE_OK;
    pthread_mutex_lock(&c->mu);
    kq_part *p = kq_parts__find(c, m->partition, false);
    int i = 0;
    if (p && p->assigned && p->gen == m->gen)
        for (; i < p->n_out && p->out[i] != m->offset; i++)
            ;
    if (!p || !p->assigned || p->gen != m->gen || i == p->n_out) {
        /* revoked since (the new owner reads it again) or acked twice */
        pthread_mutex_unlock(&c->mu);
        char q[100];
        log_debug("kafka ack of a message no longer tracked", "group=%s id=\"%s\"", c->group,
                  log_quote(qm->id, q, sizeof q));
        return QUEUE_OK;
    }
    p->out[i] = p->out[--p->n_out];
    int64_t pos = p->next;
    for (int j = 0; j < p->n_out; j++)
        if (p->out[j] < pos)
            pos = p->out[j];
    if (pos > p->stored)
        rc = kq_consumer_store(c, p, pos, qm, errbuf, errlen);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int kq_consumer__dead_letter(void *impl, queue_msg *qm, const char *reason, const char **where,
                             int *acked, char *errbuf, size_t errlen)
{
    kq_consumer *c = impl;
    kq_msg *m = qm->priv;
    char source[400];
    snprintf(source, sizeof source, "%s/%s", c->topic, qm->id);
    *where = c->dl_topic;
    *acked = 0; /* queue.c acks once the letter is flushed */
    int rc = QUEUE_OK;
    pthread_mutex_lock(&c->dl_mu);
    if (!c->dl)
        rc = kq_producer__new(&c->s, c->group, &c->dl, errbuf, errlen);
    if (!rc)
        rc = kq_producer__ready(c->dl, errbuf, errlen);
    if (!rc)
        rc = kq_producer__ensure_topic(c->dl, KQ_DEAD_LETTER, c->dl_topic, errbuf, errlen);
    if (!rc) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, KQ_HEADER_REASON, -1, reason, -1);
        rd_kafka_header_add(h, KQ_HEADER_SOURCE, -1, source, -1);
        rc = kq_producer__send(c->dl, c->dl_topic, m->data, m->pub.len, h, errbuf, errlen);
        if (rc)
            rd_kafka_headers_destroy(h);
    }
    if (!rc)
        rc = kq_producer__flush(c->dl, KQ_DEAD_LETTER_TIMEOUT_MS, errbuf, errlen);
    pthread_mutex_unlock(&c->dl_mu);
    return rc;
}

void kq_consumer__wake(void *impl)
{
    kq_consumer *c = impl;
    atomic_store(&c->wake, 1);
    if (c->cq)
        rd_kafka_queue_yield(c->cq);
}

void kq_consumer__msg_free(queue_msg *m)
{
    mem_free(m->priv); /* the kq_msg holds m and the payload */
}
