/* kafka_parts — a Kafka consumer's partitions: their state, pausing, and
 * the rebalance callback (internal to common/queue/).
 *
 * No free slot. poll(max == 0) takes nothing but keeps calling
 * rd_kafka_consumer_poll, which serves heartbeats, rebalances and
 * max.poll.interval.ms, so a worker stays in its group however long its tasks
 * run. A message that arrives meanwhile goes to a stash (handed out as far as
 * offsets go); when the stash holds KQ_STASH_HIGH messages every assigned
 * partition is paused (and so is each one assigned while paused), and
 * librdkafka drops what it prefetched. poll(max >= 1) returns the stash first
 * and resumes once fewer than KQ_STASH_LOW are left. Pausing only when work
 * piles up, not at every poll(max == 0), is for latency: librdkafka 2.0
 * fetches a resumed partition only at its broker thread's next wakeup, up to
 * 1 s later (measured: ~800 ms per pause/resume cycle), and the stash covers
 * that second. Only partitions this consumer paused are resumed (librdkafka
 * keeps a partition's pause flag across assignments, and resuming one that is
 * not paused can make it fetch old offsets again: librdkafka issue 4686).
 * Stashed messages of a revoked partition are dropped (never acked, so the new
 * owner reads them). */
#ifndef DAGQ_KAFKA_PARTS_H
#define DAGQ_KAFKA_PARTS_H

#include "kafka_consumer.h"

/* The state of partition, added when missing and add is set, else NULL.
 * Called with c->mu held. */
kq_part *kq_parts__find(kq_consumer *c, int32_t partition, bool add);

/* Pauses every assigned partition, or resumes every one this consumer
 * paused. Poll thread only. */
void kq_parts__pause(kq_consumer *c, bool pause);

/* The rebalance callback (opaque: the kq_consumer). */
void kq_parts__rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque);

#endif
