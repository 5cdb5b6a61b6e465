/* queue — the broker behind dagq: a work queue per worker group.
 *
 * One interface, two implementations chosen by the broker URL:
 *   redis://[[user]:password@]host:port[/db]  a stream per worker group (redis*.c)
 *   rediss://...[?tls-ca=FILE&...]            the same over TLS (redis_tls.c)
 *   kafka://host:port[,host:port...]          a topic per worker group  (kafka*.c)
 * queue.c forwards every call through the implementation's table of
 * functions (queue_ops.h) and holds what both share: argument checks and the
 * dead-letter-then-ack flow; queue_url.c and queue_ensured.c hold the URL
 * syntax and the ensured-groups cache both use. The scheduler and the worker
 * include only this header, never hiredis or librdkafka.
 *
 * Delivery is at-least-once; PostgreSQL turns that into "each try starts at
 * most once" (DESIGN.md). A producer (`queue`) pushes; a consumer
 * (`queue_consumer`) belongs to one worker group and shares that group's
 * messages with the group's other consumers.
 *
 * Errors: functions return 0 or a negative QUEUE_E* code with words in errbuf.
 * QUEUE_ECONN is retriable: the broker is unreachable; the next call tries
 * to reconnect (and logs when it has). Implementations never exit the process.
 *
 * Threads: a queue or consumer is used by one thread at a time, except that
 * queue_consumer_ack, queue_consumer_dead_letter and queue_consumer_wake may be
 * called from another thread while queue_consumer_poll runs. */
#ifndef DAGQ_QUEUE_H
#define DAGQ_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#define QUEUE_OK 0
#define QUEUE_EINVAL (-1)  /* bad URL or configuration: fatal */
#define QUEUE_ECONN (-2)   /* broker unreachable or connection lost: retriable */
#define QUEUE_EBROKER (-3) /* the broker refused the operation */

typedef struct queue_conf {
    const char *broker_url;         /* required */
    const char *client_name;        /* consumer name / client.id, e.g. host:pid */
    const char *redis_prefix;       /* key prefix, default "dagq:" */
    const char *kafka_topic_prefix; /* default "dagq." */
    int kafka_partitions;           /* partitions of topics the scheduler creates; default 6 */
    int kafka_replication;          /* replication factor of created topics; default 1 */
    char **kafka_props;             /* "key=value" librdkafka properties, n_kafka_props of them */
    int n_kafka_props;
    int reclaim_idle_ms; /* Redis: reclaim entries a dead consumer left pending
                            for this long; default 30000 */
    int dead_letter_max; /* Redis: the dead-letter stream is trimmed to about this
                            many entries (XADD MAXLEN ~); default 10000 */
    /* rediss://: files (PEM) and the name the server's certificate must
     * carry, where the URL's tls-ca=, tls-cert=, tls-key=, tls-server-name=
     * give none; NULL: the system's CAs, no client certificate, the host */
    const char *redis_tls_ca, *redis_tls_cert, *redis_tls_key, *redis_tls_server_name;
} queue_conf;

typedef struct queue queue;                   /* producer side; opaque */
typedef struct queue_consumer queue_consumer; /* consumer side; opaque */

typedef struct queue_msg {
    const void *data; /* the payload, len bytes, owned by the message */
    size_t len;
    char id[64]; /* broker position, for logs: "1700000000000-0" or "p3@1234" */
    void *priv;  /* implementation's */
} queue_msg;

/* A short error string for a QUEUE_E* code. */
const char *queue_strerror(int code);

/* Checks that url names a broker dagq knows (scheme and syntax). */
int queue_url_check(const char *url, char *errbuf, size_t errlen);

/* url as it may be shown in logs and errors: a password (what follows the
 * first ':' of the userinfo, up to the last '@') becomes ***. Cut to fit
 * buf[0..len); NULL prints as "". Any string is accepted, valid or not. */
void queue_url_redact(const char *url, char *buf, size_t len);

/* Producer. conf is copied; nothing in it need outlive the call. */
int queue_open(const queue_conf *conf, queue **out, char *errbuf, size_t errlen);
void queue_free(queue *q);

/* Makes sure the worker group's queue exists (Redis: stream and consumer
 * group; Kafka: topic with conf->kafka_partitions partitions). Idempotent. */
int queue_ensure_group(queue *q, const char *group, char *errbuf, size_t errlen);

/* Appends a message for group to the outgoing batch; queue_flush sends the
 * batch and waits up to timeout_ms until the broker has every message. The
 * first push to a group makes sure its queue exists (queue_ensure_group);
 * the producer remembers the groups it has ensured.
 * On error some of the batch may not have been stored: callers rely on the
 * queued-timeout re-push, never on a retry of the batch. */
int queue_push(queue *q, const char *group, const void *data, size_t len, char *errbuf,
               size_t errlen);
int queue_flush(queue *q, int timeout_ms, char *errbuf, size_t errlen);

/* Messages waiting for the group on the broker that no consumer has taken
 * yet (Redis: the consumer group's lag; Kafka: the consumer group's lag
 * summed over partitions). */
int queue_backlog(queue *q, const char *group, int64_t *backlog, char *errbuf, size_t errlen);

/* Consumer of one worker group. conf is copied. */
int queue_consumer_open(const queue_conf *conf, const char *group, queue_consumer **out,
                        char *errbuf, size_t errlen);
/* Leaves the consumer group cleanly and frees. NULL does nothing. */
void queue_consumer_free(queue_consumer *c);

/* Waits up to timeout_ms for at most max messages (max >= 1) and returns them
 * in msgs[0..*n). Each returned message must be given back with
 * queue_consumer_ack or queue_consumer_dead_letter (from any thread), then
 * freed with queue_msg_free. With max == 0 the consumer takes nothing, stays a
 * live member of its group (Kafka: pauses its partitions and keeps polling)
 * and returns within timeout_ms; the next call with max >= 1 resumes. */
int queue_consumer_poll(queue_consumer *c, int max, int timeout_ms, queue_msg **msgs, int *n,
                        char *errbuf, size_t errlen);

/* The message is done with: the claim in PostgreSQL has been decided. */
int queue_consumer_ack(queue_consumer *c, queue_msg *m, char *errbuf, size_t errlen);

/* Moves the message to the dead-letter queue with the reason, then acks it. */
int queue_consumer_dead_letter(queue_consumer *c, queue_msg *m, const char *reason, char *errbuf,
                               size_t errlen);

/* Makes a poll that is waiting return early (for shutdown). Thread-safe. */
void queue_consumer_wake(queue_consumer *c);

void queue_msg_free(queue_msg *m);

#endif
