/* kafka_admin — topics (internal to common/queue/).
 *
 * Topics are created through the Admin API (CreateTopics, partitions and
 * replication from the settings: queue_conf.kafka_partitions, default 6,
 * kafka_replication, default 1); one that exists already is fine and is
 * never altered. The scheduler creates them (queue_ensure_group, and
 * queue_push on the first message for a group), and so does a consumer when
 * it opens, so a worker started before the scheduler works. A create waits
 * until the topic shows in the metadata, so the subscription that follows
 * sees it at once instead of at the next metadata refresh. */
#ifndef DAGQ_KAFKA_ADMIN_H
#define DAGQ_KAFKA_ADMIN_H

#include <librdkafka/rdkafka.h>

#define KQ_ADMIN_TIMEOUT_MS 5000    /* a request, broker lookup included */
#define KQ_ADMIN_OP_TIMEOUT_MS 4000 /* the broker creating a topic */

/* Creates topic through rk unless it exists, then waits until it is in rk's
 * metadata: 0, or a QUEUE_E* code with errbuf set. label (the worker group)
 * is for the log line. */
int kq_admin__topic_create(rd_kafka_t *rk, const char *label, const char *topic, int partitions,
                           int replication, char *errbuf, size_t errlen);

#endif
