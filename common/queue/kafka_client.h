/* kafka_client — what every librdkafka handle of dagq shares: its
 * configuration, the callbacks that log, and the error classification
 * (internal to common/queue/).
 *
 * A property librdkafka rejects is a QUEUE_EINVAL naming the property, where
 * it came from and librdkafka's words.
 *
 * Connection loss. librdkafka reconnects on its own (backoff capped at 1 s).
 * The error callback logs when every broker is down (once per outage) and a
 * broker-state interceptor logs when one is up again; other transport errors
 * are debug. Nothing here exits the process. */
#ifndef DAGQ_KAFKA_CLIENT_H
#define DAGQ_KAFKA_CLIENT_H

#include "kafka_settings.h"

#include <librdkafka/rdkafka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The callbacks' opaque; first member of every dagq librdkafka client. */
typedef struct kq_client {
    rd_kafka_t *rk;
    const char *role;  /* "producer", "consumer", "backlog": for logs */
    const char *label; /* worker group or "-": for logs; borrowed */
    atomic_int fatal;  /* librdkafka raised a fatal error */
    /* for the down/up log lines; under bmu (librdkafka's broker threads and
     * the thread serving the error callback use them) */
    pthread_mutex_t bmu;
    int64_t last_up, last_down; /* when a broker connection last went up, down */
    bool down, closing;
} kq_client;

typedef struct kq_client_kv {
    const char *key, *value;
} kq_client_kv;

/* role and label are borrowed: they must outlive cl. Free with
 * kq_client__fini. */
void kq_client__init(kq_client *cl, const char *role, const char *label);
void kq_client__fini(kq_client *cl);

/* Before a new rk (no callback can run then). */
void kq_client__reset(kq_client *cl);

/* Before rk is closed: its connections going down is no outage. */
void kq_client__closing(kq_client *cl);

/* A conf for cl: dagq's common and the role's defaults, then the user's
 * properties, then forced (each list ends with a NULL key; forced may be
 * NULL), with cl as the opaque of the error and log callbacks. NULL with the
 * reason in errbuf. The caller owns the conf until rd_kafka_new takes it. */
rd_kafka_conf_t *kq_client__conf_new(kq_client *cl, const kq_settings *s,
                                     const kq_client_kv *defaults, const kq_client_kv *forced,
                                     char *errbuf, size_t errlen);

/* QUEUE_E* for a librdkafka error: unreachable brokers are retriable. */
int kq_client__code(rd_kafka_resp_err_t err);

#endif
