/* kafka_consumer — the queue.h consumer on Kafka (internal to common/queue/).
 *
 * One librdkafka KafkaConsumer per worker group; session 10 s with 1 s
 * heartbeats (a killed worker's partitions move within ~10 s);
 * auto.offset.reset=earliest; queued.min.messages=1000 (prefetch per
 * partition); fetch.wait.max.ms=100: the broker answers a waiting fetch as
 * soon as a message arrives (push to poll measured at ~2 ms either way), and
 * an idle consumer costs the broker 10 fetches a second, not 100.
 *
 * Assignment: roundrobin, an eager protocol: every join or leave revokes and
 * reassigns all partitions, which takes about a heartbeat. cooperative-sticky
 * would move only what must move, but the librdkafka of Debian 12 (2.0.2)
 * aborts in rd_kafka_destroy() when a cooperative-sticky consumer is
 * destroyed before its first assignment (librdkafka issue 4312, fixed in
 * 2.3.0). With librdkafka >= 2.3 cooperative-sticky is the default; the
 * rebalance callback (kafka_parts.c) handles both protocols.
 *
 * Offsets. librdkafka never stores an offset by itself
 * (enable.auto.offset.store=false); queue_consumer_ack stores one and the
 * auto-commit (every 500 ms, on revocation and on close) commits it, so an
 * offset is committed only after the worker decided the claim. Acks arrive
 * out of order when a worker runs several tasks, so per partition the
 * consumer keeps the offsets it handed out and not yet acked, and stores only
 * up to the lowest of them: a crash re-delivers every message whose claim was
 * not decided. A partition's state belongs to one assignment (a generation
 * number); an ack for a message of a partition since revoked does nothing:
 * the partition's new owner gets the message again.
 *
 * Dead letters go to the topic <prefix>dead-letter, with the reason in the
 * header dagq-reason and <topic>/<id> in dagq-source, through a producer of
 * the consumer's own, made on first use, under dl_mu.
 *
 * Threads. A consumer's poll runs on one thread (rebalance, error and log
 * callbacks run inside it); ack and dead_letter may run on others: the
 * partition state is under mu, and an offset is stored under it too, so it
 * is either stored before a revocation (and committed by it) or not at all.
 * wake sets a flag and yields the consumer queue; poll also waits in slices
 * of 200 ms. Messages returned are copies, independent of the librdkafka
 * handle, so they may outlive it. */
#ifndef DAGQ_KAFKA_CONSUMER_H
#define DAGQ_KAFKA_CONSUMER_H

#include "kafka_client.h"
#include "kafka_producer.h"
#include "queue_ops.h"

#define KQ_STASH_HIGH 1024 /* poll(max == 0) pauses the partitions at this many stashed */
#define KQ_STASH_LOW 512   /* and poll(max >= 1) resumes them below this many */

typedef struct kq_part {
    int32_t partition;
    bool assigned;
    uint64_t gen;   /* which assignment this state belongs to */
    int64_t next;   /* offset after the highest handed out, -1: none */
    int64_t stored; /* last offset stored, -1: none */
    bool paused;    /* paused by this consumer (see kafka_parts.h) */
    int64_t *out;   /* handed out (or stashed), not acked */
    int n_out, cap_out;
} kq_part;

typedef struct kq_msg {
    const queue__ops *ops; /* first: queue_msg_free finds msg_free */
    queue_msg pub;
    int32_t partition;
    int64_t offset;
    uint64_t gen;
    char data[]; /* payload (pub.len bytes), then a NUL */
} kq_msg;

typedef struct kq_consumer {
    kq_client cl; /* first: the callbacks' opaque */
    kq_settings s;
    char *group, *topic;
    rd_kafka_queue_t *cq; /* the consumer queue, yielded by wake */

    pthread_mutex_t mu; /* guards parts, n_parts, gen */
    kq_part *parts;
    int n_parts;
    uint64_t gen;

    atomic_int wake;
    bool paused;    /* poll thread only */
    kq_msg **stash; /* poll thread only (rebalances run inside poll) */
    int n_stash, cap_stash;

    pthread_mutex_t dl_mu; /* guards dl */
    kq_producer *dl;
    char *dl_topic; /* <prefix>dead-letter */
} kq_consumer;

/* The queue__ops entries of the consumer side; impl is a kq_consumer.
 * kq_consumer__free(NULL) does nothing. */
int kq_consumer__open(const queue_conf *conf, const char *group, void **impl, char *errbuf,
                      size_t errlen);
void kq_consumer__free(void *impl);
int kq_consumer__ack(void *impl, queue_msg *m, char *errbuf, size_t errlen);
int kq_consumer__dead_letter(void *impl, queue_msg *m, const char *reason, const char **where,
                             int *acked, char *errbuf, size_t errlen);
void kq_consumer__wake(void *impl);
void kq_consumer__msg_free(queue_msg *m);

#endif
