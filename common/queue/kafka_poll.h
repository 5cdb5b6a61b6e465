/* kafka_poll — queue_consumer_poll on Kafka (internal to common/queue/):
 * rd_kafka_consumer_poll in slices of 200 ms (so a wake is seen within
 * one), the stash of poll(max == 0) first (kafka_parts.h says when
 * partitions are paused and resumed), then what is already fetched. */
#ifndef DAGQ_KAFKA_POLL_H
#define DAGQ_KAFKA_POLL_H

#include "queue.h"

/* queue__ops.consumer_poll; impl is a kq_consumer. */
int kq_poll__poll(void *impl, int max, int timeout_ms, queue_msg **msgs, int *n, char *errbuf,
                  size_t errlen);

#endif
