/* redis_producer — the queue.h producer on Redis (internal to common/queue/).
 *
 * One connection. queue_push appends an XADD to hiredis's output buffer (no
 * I/O); queue_flush writes the batch and reads every reply, with the socket
 * timeout set to what is left of timeout_ms (5 s when <= 0), and reports the
 * first error. ensure_group and backlog flush a pending batch first (an
 * error of that implicit flush is reported by the next queue_flush). The
 * first push to a group creates its stream and consumer group; the producer
 * remembers the groups it has ensured with their stream keys
 * (queue_ensured). A push is never retried: the queued-timeout re-push
 * heals a lost message. */
#ifndef DAGQ_REDIS_PRODUCER_H
#define DAGQ_REDIS_PRODUCER_H

#include "queue.h"
#include "queue_ensured.h"
#include "redis_conn.h"

typedef struct qr_producer {
    qr_url url;
    char *prefix;
    qr_conn conn;
    int batch;       /* XADDs appended to conn.ctx whose replies are unread */
    int batch_lost;  /* XADDs appended to a connection since lost */
    int deferred_rc; /* error of an implicit flush, for the next queue_flush */
    char deferred_err[256];
    queue_ensured ensured; /* group -> stream key */
} qr_producer;

/* The queue__ops entries of the producer side; impl is a qr_producer. */
int qr_producer__open(const queue_conf *conf, void **impl, char *errbuf, size_t errlen);
void qr_producer__free(void *impl);
int qr_producer__ensure_group(void *impl, const char *group, char *errbuf, size_t errlen);
int qr_producer__push(void *impl, const char *group, const void *data, size_t len, char *errbuf,
                      size_t errlen);
int qr_producer__flush(void *impl, int timeout_ms, char *errbuf, size_t errlen);

/* Before any other command on p->conn: the replies of a pending batch come
 * first. A failure is kept for the next queue_flush. */
void qr_producer__implicit_flush(qr_producer *p);

#endif
