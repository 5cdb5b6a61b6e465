/* kafka — queue.h on Apache Kafka, through librdkafka: the table queue.c
 * forwards to. The implementation is split by concern:
 *
 *   kafka_settings.c  kafka:// URLs, topic names, the user's properties
 *   kafka_client.c    what every librdkafka handle shares: conf, logging
 *                     callbacks, error codes
 *   kafka_admin.c     creating topics
 *   kafka_producer.c  push and flush (and a consumer's dead letters)
 *   kafka_backlog.c   the consumer group's lag, through committed offsets
 *   kafka_consumer.c  open, ack (offsets), dead letters, wake
 *   kafka_parts.c     partition state, pausing, rebalances
 *   kafka_poll.c      rd_kafka_consumer_poll and the stash
 *
 * Each file's header says what it does and why. */
#include "kafka_backlog.h"
#include "kafka_consumer.h"
#include "kafka_poll.h"
#include "kafka_producer.h"
#include "kafka_settings.h"
#include "queue_ops.h"

static const char *const queue_kafka_schemes[] = {"kafka", NULL};

const queue__ops queue__kafka_ops = {
    .schemes = queue_kafka_schemes,
    .url_check = kq_settings__url_check,
    .open = kq_producer__open,
    .free = kq_producer__free,
    .ensure_group = kq_producer__ensure_group,
    .push = kq_producer__push,
    .flush = kq_producer__flush,
    .backlog = kq_backlog__get,
    .consumer_open = kq_consumer__open,
    .consumer_free = kq_consumer__free,
    .consumer_poll = kq_poll__poll,
    .consumer_ack = kq_consumer__ack,
    .dead_letter = kq_consumer__dead_letter,
    .consumer_wake = kq_consumer__wake,
    .msg_free = kq_consumer__msg_free,
};
