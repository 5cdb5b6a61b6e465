/* redis_conn — one connection to Redis that heals itself (internal to
 * common/queue/).
 *
 * rediss:// connects through redis_tls.c; the rest is the same. After
 * connect: AUTH [user] password when the URL has one, SELECT db when
 * not 0, CLIENT SETNAME (for CLIENT LIST), and CLIENT ID when asked (the
 * consumer's reading connection, for wake). Connect 2 s; commands 5 s.
 *
 * Connection loss: a command that fails on I/O (or times out: the reply
 * stream is then out of step) drops the context, logs "redis connection
 * lost" once, and the caller returns QUEUE_ECONN; the next call reconnects
 * and logs "redis reconnected". Failed reconnects back off 100 ms doubling to
 * 5 s; calls in between fail fast with QUEUE_ECONN. Before a command, a
 * connection with no reply outstanding is checked with a zero-timeout
 * poll(2): if Redis closed it while we were idle (restart, its `timeout`
 * setting), we reconnect before sending instead of failing.
 *
 * SIGPIPE: hiredis writes with write(2), and a write to a connection Redis
 * closed raises SIGPIPE, which would kill the process. Every call that does
 * I/O blocks SIGPIPE in the calling thread and consumes one it raised
 * (libpq's way), without changing the process's disposition, which child
 * processes inherit: qr_conn__sigpipe_block / _restore around the I/O. */
#ifndef DAGQ_REDIS_CONN_H
#define DAGQ_REDIS_CONN_H

#include "redis_tls.h"
#include "redis_url.h"

#include <hiredis.h>

#include <signal.h>
#include <stdint.h>

#define QR_CONNECT_TIMEOUT_MS 2000
#define QR_CMD_TIMEOUT_MS 5000

typedef struct qr_conn {
    redisContext *ctx; /* NULL: not connected */
    qr_relay *tls;     /* rediss://: the session behind ctx's socket */
    const qr_url *url; /* borrowed: must outlive the connection */
    char *logctx;      /* `broker="..." conn=<role> [label]`, for logs */
    char *setname;     /* CLIENT SETNAME value, or NULL */
    int want_id;       /* run CLIENT ID after connect */
    long long client_id;
    int timeout_ms; /* socket timeout now set on ctx */
    int lost;       /* lost and not back yet: log when it is */
    int timed_out;  /* the last loss was a timeout: Redis is slow, not gone */
    int failures;   /* failed reconnects in a row */
    int64_t next_try_ms;
} qr_conn;

typedef struct qr_conn_sigpipe {
    sigset_t old;
    int was_pending;
} qr_conn_sigpipe;

/* role: "producer", "consumer", "consumer-cmd"; label: more log context, key=value
 * pairs already quoted, or ""; client_name (may be NULL) names the
 * connection in CLIENT LIST. Nothing is connected yet. Free with
 * qr_conn__close. */
void qr_conn__init(qr_conn *conn, const qr_url *url, const char *role, const char *label,
                   const char *client_name, int want_id);

/* Disconnects and frees what conn holds. */
void qr_conn__close(qr_conn *conn);

/* Forgets a broken context, logging why (a hiredis or server string); the
 * next call reconnects. Nothing when not connected. */
void qr_conn__drop(qr_conn *conn, const char *why);

/* Drops the connection if Redis closed it while no reply was outstanding. */
void qr_conn__check_idle(qr_conn *conn);

/* Sets the socket timeout (ms < 1 counts as 1): 0, or -1 and dropped. */
int qr_conn__set_timeout(qr_conn *conn, int ms);

/* Connects if not connected: 0, QUEUE_ECONN (unreachable, or backing off),
 * or QUEUE_EINVAL (AUTH or SELECT refused). Callers block SIGPIPE. */
int qr_conn__connect(qr_conn *conn, char *errbuf, size_t errlen);

void qr_conn__sigpipe_block(qr_conn_sigpipe *s);
void qr_conn__sigpipe_restore(qr_conn_sigpipe *s);

#endif
