/* kafka_producer — the queue.h producer on Kafka, and the producer a
 * consumer sends its dead letters through (internal to common/queue/).
 *
 * acks=all with idempotence, linger.ms=1, and no sticky partitioning, so the
 * messages of one batch spread over all partitions (and so over all workers)
 * instead of landing on one. queue_push hands the message to librdkafka;
 * queue_flush waits until every delivery report is in and reports the first
 * failure since the last flush. A flush that times out is QUEUE_ECONN and
 * drops what librdkafka still holds (purge), so that an outage does not pile
 * up copies of re-pushed batches; a message that was in flight may still
 * arrive (a duplicate the claim in PostgreSQL absorbs). A fatal idempotence
 * error makes the producer be re-created, reported once as QUEUE_EBROKER.
 *
 * The producer remembers the topics it has created (or found), by worker
 * group (queue_ensured); a delivery report saying a topic is unknown (deleted
 * behind our back) makes the next push create it again. After a push could
 * not create its topic for want of a broker, pushes to new topics fail at
 * once for 2 s instead of each waiting. Used by one thread at a time. */
#ifndef DAGQ_KAFKA_PRODUCER_H
#define DAGQ_KAFKA_PRODUCER_H

#include "kafka_backlog.h"
#include "kafka_client.h"
#include "queue_ensured.h"

typedef struct kq_producer {
    kq_client cl; /* first: the callbacks' opaque */
    kq_settings s;
    /* delivery reports since the last flush (producer thread only) */
    int n_failed;
    rd_kafka_resp_err_t first_err;
    char first_errstr[512];
    queue_ensured ensured; /* worker group -> topic */
    int64_t ensure_retry_at;
    char ensure_err[512];
    kq_backlog_readers lags; /* kafka_backlog.c's */
} kq_producer;

/* A producer of s (copied); label (borrowed, must outlive it) names it in
 * logs. 0 and *out, to free with kq_producer__free, or a code. */
int kq_producer__new(const kq_settings *s, const char *label, kq_producer **out, char *errbuf,
                     size_t errlen);

/* Reports a fatal error once and starts afresh; 0 when the handle is usable. */
int kq_producer__ready(kq_producer *p, char *errbuf, size_t errlen);

/* Creates topic, under the name group in the ensured set, unless this
 * producer did before. */
int kq_producer__ensure_topic(kq_producer *p, const char *group, const char *topic, char *errbuf,
                              size_t errlen);

/* Hands one message to librdkafka; hdrs (may be NULL) is owned by the
 * message on success, still the caller's on failure. */
int kq_producer__send(kq_producer *p, const char *topic, const void *data, size_t len,
                      rd_kafka_headers_t *hdrs, char *errbuf, size_t errlen);

/* The queue__ops entries of the producer side; impl is a kq_producer.
 * kq_producer__free(NULL) does nothing. */
int kq_producer__open(const queue_conf *conf, void **impl, char *errbuf, size_t errlen);
void kq_producer__free(void *impl);
int kq_producer__ensure_group(void *impl, const char *group, char *errbuf, size_t errlen);
int kq_producer__push(void *impl, const char *group, const void *data, size_t len, char *errbuf,
                      size_t errlen);
int kq_producer__flush(void *impl, int timeout_ms, char *errbuf, size_t errlen);

#endif
