/* redis_consumer — the queue.h consumer on Redis (internal to common/queue/).
 *
 * Two connections.
 *   - the reading connection, used only by the polling thread: XREADGROUP
 *     and XAUTOCLAIM (redis_poll.c).
 *   - the command connection, under cmd_mu, for ack, dead_letter and wake,
 *     which queue.h allows from other threads while poll blocks.
 * ack = MULTI XACK XDEL EXEC: an entry is consumed by exactly one consumer
 * group, so it is deleted once acked and the stream does not grow forever.
 * dead_letter = MULTI XADD <prefix>dead-letter MAXLEN ~ N XACK XDEL EXEC
 * (the stream is trimmed to about N entries: whole nodes, so it may hold up
 * to a node's worth, stream-node-max-entries, more): both or
 * neither; the letter has the fields reason, payload, stream, id, group.
 * Both are idempotent: one that fails on a connection made before the call
 * (typically: Redis restarted while we were idle) reconnects and is retried
 * once at once. An ack that cannot be sent leaves the entry pending: it is
 * reclaimed and delivered again, never lost.
 *
 * wake sets a flag and signals a condition variable (for the max == 0 and
 * reconnect-backoff sleeps) and, while poll is inside a blocking XREADGROUP,
 * sends CLIENT UNBLOCK <id of the reading connection> on the command
 * connection, retrying for up to ~100 ms in case the XREADGROUP has not
 * reached the server yet. A wake while no poll runs makes the next poll
 * return at once with nothing (so "set stop flag; wake" cannot race with a
 * poll that is just starting).
 *
 * Leaving: consumer_free deletes the consumer (XGROUP DELCONSUMER) only if it
 * has no pending entries, checked and done in one Lua script so a second
 * handle using the same consumer name cannot slip an entry in between (a
 * deleted consumer's pending entries would never be reclaimed). Otherwise it
 * stays, and the entries are reclaimed by others. */
#ifndef DAGQ_REDIS_CONSUMER_H
#define DAGQ_REDIS_CONSUMER_H

#include "queue_ops.h"
#include "redis_conn.h"

#include <pthread.h>

typedef struct qr_msg {
    const queue__ops *ops; /* first: queue_msg_free finds msg_free through it */
    queue_msg msg;
} qr_msg;

typedef struct qr_consumer {
    qr_url url;
    char *group;       /* worker group */
    char *stream;      /* <prefix>queue:<group> */
    char *dead_letter; /* <prefix>dead-letter */
    char *name;        /* consumer name in the Redis group */
    char *label;       /* `group=... stream="..." consumer="..."` */
    char *logctx;      /* `broker="..." ` and the label, for logs */
    int reclaim_idle_ms;
    char dead_letter_max[16]; /* XADD MAXLEN ~ this */
    char reclaim_cursor[64];
    int64_t next_reclaim_ms;

    qr_conn rconn; /* polling thread only */

    pthread_mutex_t cmd_mu; /* guards cconn */
    qr_conn cconn;

    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cond;
    int wake_pending;
    int in_block;       /* poll is in a blocking XREADGROUP on rconn */
    long long block_id; /* CLIENT ID of rconn */
} qr_consumer;

/* The queue__ops entries of the consumer side; impl is a qr_consumer. */
int qr_consumer__open(const queue_conf *conf, const char *group, void **impl, char *errbuf,
                      size_t errlen);
void qr_consumer__free(void *impl);
int qr_consumer__ack(void *impl, queue_msg *m, char *errbuf, size_t errlen);
int qr_consumer__dead_letter(void *impl, queue_msg *m, const char *reason, const char **where,
                             int *acked, char *errbuf, size_t errlen);
void qr_consumer__wake(void *impl);
void qr_consumer__msg_free(queue_msg *m);

/* Takes a pending wake: 1 when there was one. */
int qr_consumer__take_wake(qr_consumer *c);

/* Sleeps until the monotonic time until_ms (clock_now_ms) or a wake. */
void qr_consumer__wait(qr_consumer *c, int64_t until_ms);

#endif
