/* kafka_backlog — queue_backlog on Kafka: the consumer group's lag
 * (internal to common/queue/).
 *
 * Per partition the high watermark minus the group's committed offset (the
 * low watermark where none is committed). The committed offsets are read
 * with rd_kafka_committed() on a consumer handle of the group's id, one per
 * worker group, made on first use and kept by the producer (at most
 * KQ_BACKLOG_READERS_MAX, the least recently used goes). That handle never
 * subscribes nor assigns, so it never joins the group: it only finds the
 * coordinator and sends OffsetFetch, and it commits nothing
 * (enable.auto.commit=false). Not the Admin API's ListConsumerGroupOffsets:
 * librdkafka (2.0.2 and later, issue 5040) crashes in it when the broker
 * answers NOT_COORDINATOR (common right after a group's topic is created) on
 * a client that is not a consumer of a group: it asks that client's (absent)
 * group for a coordinator query. */
#ifndef DAGQ_KAFKA_BACKLOG_H
#define DAGQ_KAFKA_BACKLOG_H

#include <stddef.h>
#include <stdint.h>

#define KQ_BACKLOG_READERS_MAX 64

/* A producer's backlog readers; a zeroed struct holds none. */
typedef struct kq_backlog_readers {
    struct kq_backlog_reader **v;
    int n;
} kq_backlog_readers;

/* Closes and frees every reader; the set stays usable. */
void kq_backlog__readers_free(kq_backlog_readers *r);

/* queue__ops.backlog; impl is a kq_producer. */
int kq_backlog__get(void *impl, const char *group, int64_t *backlog, char *errbuf, size_t errlen);

#endif
