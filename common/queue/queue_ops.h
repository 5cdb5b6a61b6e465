/* queue_ops — what an implementation of queue.h provides (internal to
 * common/queue/). queue.c picks the table by URL scheme and forwards every
 * call, after the checks every call shares (a group name, a message of this
 * consumer, poll's bounds). impl is the implementation's own handle. */
#ifndef DAGQ_QUEUE_OPS_H
#define DAGQ_QUEUE_OPS_H

#include "queue.h"

typedef struct queue__ops {
    const char *const *schemes; /* NULL-terminated: "redis", "rediss" */
    int (*url_check)(const char *url, char *errbuf, size_t errlen);
    int (*open)(const queue_conf *conf, void **impl, char *errbuf, size_t errlen);
    void (*free)(void *impl);
    int (*ensure_group)(void *impl, const char *group, char *errbuf, size_t errlen);
    int (*push)(void *impl, const char *group, const void *data, size_t len, char *errbuf,
                size_t errlen);
    int (*flush)(void *impl, int timeout_ms, char *errbuf, size_t errlen);
    int (*backlog)(void *impl, const char *group, int64_t *backlog, char *errbuf, size_t errlen);
    int (*consumer_open)(const queue_conf *conf, const char *group, void **impl, char *errbuf,
                         size_t errlen);
    void (*consumer_free)(void *impl);
    int (*consumer_poll)(void *impl, int max, int timeout_ms, queue_msg **msgs, int *n,
                         char *errbuf, size_t errlen);
    int (*consumer_ack)(void *impl, queue_msg *m, char *errbuf, size_t errlen);
    /* Stores m's payload with reason (never NULL) on the dead-letter queue
     * and sets *where to its name (the implementation's string). When the
     * same broker operation also acked m (Redis: one MULTI), sets *acked to
     * 1; otherwise queue.c acks it next through consumer_ack. */
    int (*dead_letter)(void *impl, queue_msg *m, const char *reason, const char **where, int *acked,
                       char *errbuf, size_t errlen);
    void (*consumer_wake)(void *impl);
    /* frees m and its payload. Every queue_msg an implementation returns has
     * priv pointing at a struct whose first member is `const queue__ops *`
     * (its own table), so queue_msg_free can find this function. */
    void (*msg_free)(queue_msg *m);
} queue__ops;

extern const queue__ops queue__redis_ops;
extern const queue__ops queue__kafka_ops;

#endif
