/* redis — queue.h on Redis streams (hiredis, blocking API, RESP2): the
 * table queue.c forwards to. The implementation is split by concern:
 *
 *   redis_url.c       redis:// and rediss:// URLs
 *   redis_conn.c      a connection that reconnects with backoff, SIGPIPE
 *   redis_tls.c       rediss://: the TLS session, made with OpenSSL
 *   redis_relay.c     serving that session to hiredis through a socketpair
 *   redis_cmd.c       commands, replies as error codes, keys, XGROUP CREATE
 *   redis_reply.c     reading replies
 *   redis_producer.c  push and flush (pipelined XADD)
 *   redis_backlog.c   the consumer group's lag
 *   redis_consumer.c  open, ack, dead letters, wake, leave
 *   redis_poll.c      XREADGROUP and XAUTOCLAIM
 *
 * Each file's header says what it does; redis_cmd.h names the keys. A
 * failure the caller can retry is QUEUE_ECONN: an I/O error or timeout, and
 * the replies LOADING, BUSY, MASTERDOWN, TRYAGAIN and READONLY (a failover);
 * NOAUTH, WRONGPASS and NOPERM are QUEUE_EINVAL (configuration). */
#include "queue_ops.h"
#include "redis_backlog.h"
#include "redis_consumer.h"
#include "redis_poll.h"
#include "redis_producer.h"
#include "redis_url.h"

static const char *const queue_redis_schemes[] = {"redis", "rediss", NULL};

const queue__ops queue__redis_ops = {
    .schemes = queue_redis_schemes,
    .url_check = qr_url__check,
    .open = qr_producer__open,
    .free = qr_producer__free,
    .ensure_group = qr_producer__ensure_group,
    .push = qr_producer__push,
    .flush = qr_producer__flush,
    .backlog = qr_backlog__get,
    .consumer_open = qr_consumer__open,
    .consumer_free = qr_consumer__free,
    .consumer_poll = qr_poll__poll,
    .consumer_ack = qr_consumer__ack,
    .dead_letter = qr_consumer__dead_letter,
    .consumer_wake = qr_consumer__wake,
    .msg_free = qr_consumer__msg_free,
};
