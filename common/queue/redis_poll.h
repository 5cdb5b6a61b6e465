/* redis_poll — queue_consumer_poll on Redis (internal to common/queue/).
 *
 * XREADGROUP GROUP workers <name> COUNT max BLOCK ms STREAMS <stream> > on
 * the reading connection, whose socket timeout is BLOCK + 5 s, so a hung
 * server cannot hang poll forever. max == 0 sleeps on the consumer's
 * condition variable up to timeout_ms; Redis needs no heartbeat for the
 * consumer to stay a member.
 *
 * Reclaim: a consumer that dies leaves entries it read but never acked in
 * the group's pending list. Every reclaim_idle_ms/2 (default 30000 ms, so
 * every 15 s) a polling consumer runs XAUTOCLAIM <stream> workers <me>
 * <reclaim_idle_ms> <cursor> COUNT max and returns what it claimed before
 * reading new entries; a blocking read is cut short when the next reclaim is
 * due. reclaim_idle_ms must exceed the time between poll and ack (the worker
 * acks right after its claim in PostgreSQL, so milliseconds); a longer gap
 * only costs a duplicate delivery, which the claim turns into a no-op.
 *
 * A consumer that gets NOGROUP (the key was deleted, or Redis lost it in a
 * crash) creates the group again and goes on. A poll that fails on a
 * connection made before the call reconnects and retries once at once (not
 * after a timeout: a slow server would only double it). Replies LOADING,
 * BUSY... make it wait 100 ms (within its timeout) rather than spin. */
#ifndef DAGQ_REDIS_POLL_H
#define DAGQ_REDIS_POLL_H

#include "queue.h"

/* queue__ops.consumer_poll; impl is a qr_consumer. */
int qr_poll__poll(void *impl, int max, int timeout_ms, queue_msg **msgs, int *n, char *errbuf,
                  size_t errlen);

#endif
