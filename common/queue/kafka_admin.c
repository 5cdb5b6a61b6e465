#include "kafka_admin.h"

#include "clock.h"
#include "errbuf.h"
#include "kafka_client.h"
#include "log.h"

#include <stdbool.h>

#define KQ_TOPIC_WAIT_MS 10000

/* Waits until the topic has partitions in rk's metadata. */
static int kq_admin_topic_wait(rd_kafka_t *rk, const char *topic, char *errbuf, size_t errlen)
{
    int64_t deadline = clock_now_ms() + KQ_TOPIC_WAIT_MS;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    while (rkt) {
        const struct rd_kafka_metadata *md = NULL;
        err = rd_kafka_metadata(rk, 0, rkt, &md, 2000);
        if (!err) {
            err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
            if (!err && md->topics[0].partition_cnt == 0)
                err = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
            rd_kafka_metadata_destroy(md);
        }
        if (!err || clock_now_ms() >= deadline)
            break;
        clock_sleep_ms(100);
    }
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (err) {
        errbuf_printf(errbuf, errlen, "kafka: topic %s not in the metadata after %d ms: %s", topic,
                      KQ_TOPIC_WAIT_MS, rd_kafka_err2str(err));
        int rc = kq_client__code(err);
        return rc == QUEUE_EBROKER ? QUEUE_ECONN : rc;
    }
    return QUEUE_OK;
}

/* The outcome of a CreateTopics event: 0 (*created tells whether it was
 * new), or a code with errbuf set. */
static int kq_admin_created(rd_kafka_event_t *ev, const char *topic, int partitions,
                            int replication, bool *created, char *errbuf, size_t errlen)
{
    if (!ev) {
        errbuf_printf(errbuf, errlen, "kafka: creating topic %s: no answer from the broker", topic);
        return QUEUE_ECONN;
    }
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    if (err) {
        errbuf_printf(errbuf, errlen, "kafka: creating topic %s: %s", topic,
                      rd_kafka_event_error_string(ev));
        return kq_client__code(err);
    }
    size_t cnt = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    err = cnt == 1 ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__BAD_MSG;
    if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char *why = cnt == 1 ? rd_kafka_topic_result_error_string(res[0]) : NULL;
        errbuf_printf(errbuf, errlen, "kafka: creating topic %s (partitions=%d replication=%d): %s",
                      topic, partitions, replication, why ? why : rd_kafka_err2str(err));
        return kq_client__code(err);
    }
    *created = !err;
    return QUEUE_OK;
}

int kq_admin__topic_create(rd_kafka_t *rk, const char *label, const char *topic, int partitions,
                           int replication, char *errbuf, size_t errlen)
{
    char es[512];
    bool created = false;
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, replication, es, sizeof es);
    if (!nt) {
        errbuf_printf(errbuf, errlen, "kafka: topic %s: %s", topic, es);
        return QUEUE_EINVAL;
    }
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(opts, KQ_ADMIN_TIMEOUT_MS, es, sizeof es);
    rd_kafka_AdminOptions_set_operation_timeout(opts, KQ_ADMIN_OP_TIMEOUT_MS, es, sizeof es);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, KQ_ADMIN_TIMEOUT_MS * 2 + 1000);
    int rc = kq_admin_created(ev, topic, partitions, replication, &created, errbuf, errlen);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    if (rc)
        return rc;
    rc = kq_admin_topic_wait(rk, topic, errbuf, errlen);
    if (!rc && created)
        log_info("kafka topic created", "topic=%s partitions=%d replication=%d group=%s", topic,
                 partitions, replication, label);
    return rc;
}
