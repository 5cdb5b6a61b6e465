/* redis_cmd — commands on a qr_conn, and the keys they name (internal to
 * common/queue/).
 *
 * Keys (prefix = queue_conf.redis_prefix, default "dagq:"):
 *   <prefix>queue:<group>   a stream per worker group; entry field `m` is the
 *                           payload (binary safe: argv/len APIs only)
 *   <prefix>dead-letter     one stream for every group
 * Every stream has one consumer group, "workers". It is created at id 0, not
 * $, with MKSTREAM (BUSYGROUP ignored): entries pushed before the group
 * existed are still delivered. */
#ifndef DAGQ_REDIS_CMD_H
#define DAGQ_REDIS_CMD_H

#include "queue.h"
#include "redis_conn.h"

#define QR_GROUP "workers"
#define QR_ENOGROUP (-100) /* internal: the consumer group is gone */

/* The key prefix of conf (borrowed). */
const char *qr_cmd__prefix(const queue_conf *conf);

/* <prefix>queue:<group>; caller frees with mem_free. */
char *qr_cmd__stream_key(const char *prefix, const char *group);

/* Runs one command (connecting first). 0 with *out set — possibly an error
 * reply, the caller decides, and frees it with freeReplyObject — or
 * QUEUE_ECONN/QUEUE_EINVAL with errbuf set. lens may be NULL (C strings).
 * timeout_ms 0: the default command timeout. Callers block SIGPIPE. */
int qr_cmd__run(qr_conn *conn, const char *what, int argc, const char **argv, const size_t *lens,
                int timeout_ms, redisReply **out, char *errbuf, size_t errlen);

/* Runs n commands in one round trip; on 0, replies[0..n) are set and the
 * caller frees each. */
int qr_cmd__pipeline(qr_conn *conn, const char *what, int n, const int *argcs,
                     const char **const *argvs, const size_t *const *lens, redisReply **replies,
                     char *errbuf, size_t errlen);

/* An unwanted reply as a QUEUE_E* code with words: transient errors are
 * QUEUE_ECONN (READONLY also drops the connection: we reached a replica),
 * NOAUTH/WRONGPASS/NOPERM QUEUE_EINVAL, the rest QUEUE_EBROKER. */
int qr_cmd__reply_rc(qr_conn *conn, const redisReply *r, const char *what, char *errbuf,
                     size_t errlen);

/* XGROUP CREATE <stream> workers 0 MKSTREAM; BUSYGROUP is fine. */
int qr_cmd__ensure_group(qr_conn *conn, const char *group, const char *stream, char *errbuf,
                         size_t errlen);

#endif
