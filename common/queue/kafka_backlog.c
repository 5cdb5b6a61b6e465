#include "kafka_backlog.h"

#include "clock.h"
#include "errbuf.h"
#include "kafka_admin.h"
#include "kafka_producer.h"
#include "log.h"
#include "mem.h"

#include <string.h>

/* Reads one consumer group's committed offsets. */
typedef struct kq_backlog_reader {
    kq_client cl;   /* first: the callbacks' opaque */
    char *group;    /* worker group: cl.label */
    char *group_id; /* consumer group id: the topic's name */
    int64_t used;   /* last use, for eviction */
} kq_backlog_reader;

/* Errors of a backlog reader: an outage is logged by the producer (and the
 * consumers) already, so only a fatal error is more than debug. */
static void kq_backlog_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kq_client *cl = opaque;
    char qn[200], q[512];
    log_quote(rd_kafka_name(rk), qn, sizeof qn);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        atomic_store(&cl->fatal, 1);
        log_warn("kafka backlog reader failed; it is made again",
                 "kafka=\"%s\" group=%s err=%s reason=\"%s\"", qn, cl->label,
                 rd_kafka_err2name(orig), log_quote(why, q, sizeof q));
        return;
    }
    log_debug("kafka backlog reader error", "kafka=\"%s\" group=%s err=%s reason=\"%s\"", qn,
              cl->label, rd_kafka_err2name(err), log_quote(reason, q, sizeof q));
}

static void kq_backlog_reader_free(kq_backlog_reader *l)
{
    if (!l)
        return;
    kq_client__closing(&l->cl);
    if (l->cl.rk) {
        /* never subscribed nor assigned: nothing to leave, nothing to commit */
        rd_kafka_consumer_close(l->cl.rk);
        rd_kafka_destroy(l->cl.rk);
    }
    kq_client__fini(&l->cl);
    mem_free(l->group);
    mem_free(l->group_id);
    mem_free(l);
}

void kq_backlog__readers_free(kq_backlog_readers *r)
{
    for (int i = 0; i < r->n; i++)
        kq_backlog_reader_free(r->v[i]);
    mem_free(r->v);
    r->v = NULL;
    r->n = 0;
}

static int kq_backlog_reader_new(const kq_settings *s, const char *group, const char *group_id,
                                 kq_backlog_reader **out, char *errbuf, size_t errlen)
{
    /* The handle must never take part in the group: no subscribe, no
     * assign (so no join, no heartbeats), no commits. The assignor is never
     * used; roundrobin keeps clear of librdkafka issue 4312 (cooperative-
     * sticky consumers abort when destroyed before an assignment, < 2.3). */
    static const kq_client_kv defaults[] = {{NULL, NULL}};
    char es[512];
    kq_backlog_reader *l = mem_calloc(1, sizeof *l);
    l->group = mem_strdup(group);
    l->group_id = mem_strdup(group_id);
    kq_client__init(&l->cl, "backlog", l->group);
    const kq_client_kv forced[] = {{"group.id", l->group_id},
                                   {"enable.auto.commit", "false"},
                                   {"enable.auto.offset.store", "false"},
                                   {"partition.assignment.strategy", "roundrobin"},
                                   {NULL, NULL}};
    rd_kafka_conf_t *conf = kq_client__conf_new(&l->cl, s, defaults, forced, errbuf, errlen);
    if (!conf) {
        kq_backlog_reader_free(l);
        return QUEUE_EINVAL;
    }
    rd_kafka_conf_set_error_cb(conf, kq_backlog_error_cb);
    l->cl.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof es);
    if (!l->cl.rk) {
        rd_kafka_conf_destroy(conf); /* not owned by rk when rd_kafka_new fails */
        errbuf_printf(errbuf, errlen, "kafka: creating the backlog reader of group %s: %s",
                      group_id, es);
        kq_backlog_reader_free(l);
        return QUEUE_EINVAL;
    }
    *out = l;
    return QUEUE_OK;
}

/* Keeps l, making room by freeing the least recently used reader. */
static void kq_backlog_keep(kq_backlog_readers *r, kq_backlog_reader *l)
{
    if (r->n >= KQ_BACKLOG_READERS_MAX) {
        int old = 0;
        for (int i = 1; i < r->n; i++)
            if (r->v[i]->used < r->v[old]->used)
                old = i;
        kq_backlog_reader_free(r->v[old]);
        r->v[old] = r->v[--r->n];
    }
    r->v = mem_realloc(r->v, sizeof *r->v * (size_t)(r->n + 1));
    r->v[r->n++] = l;
}

/* The producer's reader for the consumer group group_id, made on first use
 * (and again after a fatal error). */
static int kq_backlog_reader_get(kq_producer *p, const char *group, const char *group_id,
                                 kq_backlog_reader **out, char *errbuf, size_t errlen)
{
    kq_backlog_readers *r = &p->lags;
    kq_backlog_reader *l = NULL;
    for (int i = 0; i < r->n && !l; i++) {
        if (strcmp(r->v[i]->group_id, group_id))
            continue;
        l = r->v[i];
        if (atomic_load(&l->cl.fatal)) { /* useless now: make it again */
            r->v[i] = r->v[--r->n];
            kq_backlog_reader_free(l);
            l = NULL;
            break;
        }
    }
    if (!l) {
        int rc = kq_backlog_reader_new(&p->s, group, group_id, &l, errbuf, errlen);
        if (rc)
            return rc;
        kq_backlog_keep(r, l);
    }
    l->used = clock_now_ms();
    rd_kafka_poll(l->cl.rk, 0); /* serve its error events: they pile up otherwise */
    *out = l;
    return QUEUE_OK;
}

/* The topic's partitions into *parts (NULL when the topic does not exist or
 * has none: nothing waits). */
static int kq_backlog_partitions(kq_producer *p, const char *topic,
                                 rd_kafka_topic_partition_list_t **parts, char *errbuf,
                                 size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->cl.rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->cl.rk, 0, rkt, &md, KQ_ADMIN_TIMEOUT_MS);
    int rc = QUEUE_OK;
    *parts = NULL;
    if (!err && md->topic_cnt == 1 && md->topics[0].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        err = md->topics[0].err;
    if (err) {
        errbuf_printf(errbuf, errlen, "kafka: metadata of topic %s: %s", topic,
                      rd_kafka_err2str(err));
        rc = kq_client__code(err);
    } else if (md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0) {
        int np = md->topics[0].partition_cnt;
        *parts = rd_kafka_topic_partition_list_new(np);
        for (int i = 0; i < np; i++)
            rd_kafka_topic_partition_list_add(*parts, topic, md->topics[0].partitions[i].id);
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return rc;
}

/* The high watermark of topic's partition, waiting out a leader that is not
 * known yet (right after the topic is created: that settles within moments). */
static rd_kafka_resp_err_t kq_backlog_high(kq_producer *p, const char *topic, int32_t partition,
                                           int64_t deadline, int64_t *lo, int64_t *hi)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(p->cl.rk, topic, partition, lo,
                                                                   hi, KQ_ADMIN_TIMEOUT_MS);
        if ((err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
             err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
             err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) ||
            clock_now_ms() >= deadline)
            return err;
        clock_sleep_ms(100);
    }
}

/* The lag over parts, whose offsets are the group's committed ones. */
static int kq_backlog_sum(kq_producer *p, const char *topic,
                          const rd_kafka_topic_partition_list_t *parts, int64_t *sum, char *errbuf,
                          size_t errlen)
{
    int64_t deadline = clock_now_ms() + KQ_ADMIN_TIMEOUT_MS;
    *sum = 0;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *c = &parts->elems[i];
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err = c->err;
        if (err) {
            errbuf_printf(errbuf, errlen, "kafka: committed offset of group %s on %s [%d]: %s",
                          topic, topic, (int)c->partition, rd_kafka_err2str(err));
            return kq_client__code(err);
        }
        err = kq_backlog_high(p, topic, c->partition, deadline, &lo, &hi);
        if (err) {
            errbuf_printf(errbuf, errlen, "kafka: watermarks of %s [%d]: %s", topic,
                          (int)c->partition, rd_kafka_err2str(err));
            return kq_client__code(err);
        }
        int64_t at = c->offset >= 0 && c->offset > lo ? c->offset : lo;
        if (hi > at)
            *sum += hi - at;
    }
    return QUEUE_OK;
}

int kq_backlog__get(void *impl, const char *group, int64_t *backlog, char *errbuf, size_t errlen)
{
    kq_producer *p = impl;
    char *topic = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    kq_backlog_reader *l = NULL;
    *backlog = 0;
    int rc = kq_settings__topic_name(&p->s, group, &topic, errbuf, errlen);
    if (!rc)
        rc = kq_producer__ready(p, errbuf, errlen);
    if (!rc)
        rc = kq_backlog_partitions(p, topic, &parts, errbuf, errlen);
    /* The consumer group's id is the topic's name. rd_kafka_committed waits
     * for the group's coordinator (and looks it up again after
     * NOT_COORDINATOR) up to the timeout. */
    if (!rc && parts)
        rc = kq_backlog_reader_get(p, group, topic, &l, errbuf, errlen);
    if (!rc && parts) {
        rd_kafka_resp_err_t err = rd_kafka_committed(l->cl.rk, parts, KQ_ADMIN_TIMEOUT_MS);
        if (err) {
            errbuf_printf(errbuf, errlen, "kafka: committed offsets of group %s: %s%s", topic,
                          rd_kafka_err2str(err),
                          err == RD_KAFKA_RESP_ERR__TIMED_OUT ? " (group coordinator not reachable)"
                                                              : "");
            rc = kq_client__code(err);
        }
    }
    int64_t sum = 0;
    if (!rc && parts && !(rc = kq_backlog_sum(p, topic, parts, &sum, errbuf, errlen)))
        *backlog = sum;
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    mem_free(topic);
    return rc;
}
