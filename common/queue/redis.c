/* queue_redis — queue.h on Redis streams (hiredis, blocking API, RESP2).
 *
 * URL: redis://[[user]:password@]host[:port][/db]; port 6379 and db 0 by
 * default, an IPv6 host in brackets, the password may be percent-encoded.
 * After connect: AUTH [user] password when given, SELECT db when not 0,
 * CLIENT SETNAME (for CLIENT LIST), and CLIENT ID on the consumer's reading
 * connection (for wake).
 *
 * Keys (prefix = conf->redis_prefix, default "dagq:"):
 *   <prefix>queue:<group>   a stream per worker group; entry field `m` is the
 *                           payload (binary safe: argv/len APIs only)
 *   <prefix>dead-letter     one stream for every group; fields reason, payload,
 *                           stream, id, group
 * Every stream has one consumer group, "workers". It is created at id 0, not
 * $, with MKSTREAM (BUSYGROUP ignored): entries pushed before the group
 * existed are still delivered. The producer's queue_ensure_group and every
 * consumer's open create it; a consumer that gets NOGROUP (the key was
 * deleted, or Redis lost it in a crash) creates it again and goes on.
 *
 * Producer: one connection. queue_push appends an XADD to hiredis's output
 * buffer (no I/O); queue_flush writes the batch and reads every reply, with
 * the socket timeout set to what is left of timeout_ms, and reports the first
 * error. ensure_group and backlog flush a pending batch first (an error of
 * that implicit flush is reported by the next queue_flush).
 *
 * Consumer: two connections.
 *   - the reading connection, used only by the polling thread:
 *     XREADGROUP GROUP workers <name> COUNT max BLOCK ms STREAMS <stream> >
 *     and XAUTOCLAIM. Its socket timeout is BLOCK + 5 s, so a hung server
 *     cannot hang poll forever.
 *   - the command connection, under cmd_mu, for ack, dead_letter and wake,
 *     which queue.h allows from other threads while poll blocks.
 *   ack = MULTI XACK XDEL EXEC: an entry is consumed by exactly one consumer
 *   group, so it is deleted once acked and the stream does not grow forever.
 *   dead_letter = MULTI XADD <dead-letter> XACK XDEL EXEC: both or neither.
 *   wake sets a flag and signals a condition variable (for the max == 0 and
 *   reconnect-backoff sleeps) and, while poll is inside a blocking
 *   XREADGROUP, sends CLIENT UNBLOCK <id of the reading connection> on the
 *   command connection, retrying for up to ~100 ms in case the XREADGROUP has
 *   not reached the server yet. A wake while no poll runs makes the next poll
 *   return at once with nothing (so "set stop flag; wake" cannot race with a
 *   poll that is just starting).
 *   max == 0 sleeps on that condition variable up to timeout_ms; Redis needs
 *   no heartbeat for the consumer to stay a member.
 *
 * Reclaim: a consumer that dies leaves entries it read but never acked in the
 * group's pending list. Every reclaim_idle_ms/2 (default 30000 ms, so every
 * 15 s) a polling consumer runs XAUTOCLAIM <stream> workers <me>
 * <reclaim_idle_ms> <cursor> COUNT max and returns what it claimed before
 * reading new entries; a blocking read is cut short when the next reclaim is
 * due. reclaim_idle_ms must exceed the time between poll and ack (the worker
 * acks right after its claim in PostgreSQL, so milliseconds); a longer gap
 * only costs a duplicate delivery, which the claim turns into a no-op.
 *
 * Leaving: consumer_free deletes the consumer (XGROUP DELCONSUMER) only if it
 * has no pending entries, checked and done in one Lua script so a second
 * handle using the same consumer name cannot slip an entry in between (a
 * deleted consumer's pending entries would never be reclaimed). Otherwise it
 * stays, and the entries are reclaimed by others.
 *
 * Backlog: the group's `lag` from XINFO GROUPS (Redis >= 7.0). When lag is nil
 * (Redis cannot compute it, e.g. after entries ahead of the group were
 * deleted) or absent (Redis < 7), backlog = XLEN - pending: acked and
 * dead-lettered entries are deleted in the same MULTI as their XACK, so every
 * entry still in the stream is either pending or not yet delivered. No stream:
 * 0. No group yet: XLEN (the group will be created at id 0).
 *
 * Connection loss: a command that fails on I/O (or times out: the reply
 * stream is then out of step) frees the context, logs "redis connection
 * lost" once, and returns QUEUE_ECONN; the next call reconnects and logs
 * "redis reconnected". Failed reconnects back off 100 ms doubling to 5 s;
 * calls in between fail fast with QUEUE_ECONN (a poll waits out the delay,
 * within its timeout and interruptible by wake). Replies LOADING, BUSY,
 * MASTERDOWN, TRYAGAIN and READONLY (a failover) also count as QUEUE_ECONN;
 * NOAUTH, WRONGPASS and NOPERM are QUEUE_EINVAL (configuration).
 * Before a command, a connection with no reply outstanding is checked with a
 * zero-timeout poll(2): if Redis closed it while we were idle (restart, its
 * `timeout` setting), we reconnect before sending instead of failing.
 * Idempotent calls — poll, ack, dead_letter — that fail on a connection made
 * before the call (typically: Redis restarted while we were idle) reconnect
 * and retry once at once, so a restart costs the caller nothing when Redis is
 * already back (not after a timeout: a slow server would only double it). A push is never retried
 * (the queued-timeout re-push heals a lost message). An ack that cannot be sent leaves the entry
 * pending: it is reclaimed and delivered again, never lost.
 *
 * hiredis writes with write(2): a write to a connection Redis closed raises
 * SIGPIPE, which would kill the process. Every call that does I/O blocks
 * SIGPIPE in the calling thread and consumes one it raised (libpq's way),
 * without changing the process's disposition, which child processes inherit.
 *
 * Timeouts: connect 2 s; commands 5 s; flush timeout_ms (5 s when <= 0).
 */
#include "queue_ops.h"

#include "backoff.h"
#include "log.h"
#include "mem.h"

#include <hiredis.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define QR_GROUP "workers"
#define QR_DEFAULT_PREFIX "dagq:"
#define QR_CONNECT_TIMEOUT_MS 2000
#define QR_CMD_TIMEOUT_MS 5000
#define QR_BLOCK_GRACE_MS 5000
#define QR_RECLAIM_IDLE_DEFAULT_MS 30000
#define QR_WAKE_TRIES 50
#define QR_WAKE_RETRY_MS 2
#define QR_RECLAIM_MIN_INTERVAL_MS 100
#define QR_ENOGROUP (-100) /* internal: the consumer group is gone */

/* ---------------------------------------------------------------- helpers */

static void qr_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void qr_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static int64_t qr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval qr_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static void qr_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* SIGPIPE: blocked in this thread around hiredis I/O; one raised by our own
 * write is consumed before the mask is restored. */
typedef struct qr_sigpipe {
    sigset_t old;
    int was_pending;
} qr_sigpipe;

static void qr_sigpipe_block(qr_sigpipe *s)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    s->was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &s->old);
}

static void qr_sigpipe_restore(qr_sigpipe *s)
{
    if (!s->was_pending) {
        sigset_t set, pending;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        sigemptyset(&pending);
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            while (sigtimedwait(&set, NULL, &zero) == -1 && errno == EINTR)
                ;
        }
    }
    pthread_sigmask(SIG_SETMASK, &s->old, NULL);
}

static int qr_reply_is(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

static int qr_str_eq(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->len == n &&
           memcmp(r->str, s, n) == 0;
}

/* An error reply Redis gives while it cannot serve for now: retriable. */
static int qr_reply_transient(const redisReply *r)
{
    return qr_reply_is(r, "LOADING") || qr_reply_is(r, "BUSY") || qr_reply_is(r, "MASTERDOWN") ||
           qr_reply_is(r, "TRYAGAIN") || qr_reply_is(r, "READONLY");
}

/* ------------------------------------------------------------------- URL */

typedef struct qr_url {
    char *host;
    int port;
    int db;
    char *user;     /* NULL: AUTH with the password alone */
    char *password; /* NULL: no AUTH */
    char *addr;     /* "host:port", for logs and errors */
} qr_url;

static void qr_url_clear(qr_url *u)
{
    mem_free(u->host);
    mem_free(u->user);
    if (u->password)
        memset(u->password, 0, strlen(u->password));
    mem_free(u->password);
    mem_free(u->addr);
    memset(u, 0, sizeof *u);
}

static int qr_hex(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL when a %XX is malformed or
 * decodes to NUL. */
static char *qr_pct_decode(const char *s, size_t n)
{
    char *out = mem_alloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= n) {
            mem_free(out);
            return NULL;
        }
        int a = qr_hex((unsigned char)s[i + 1]), b = qr_hex((unsigned char)s[i + 2]);
        if (a < 0 || b < 0 || (a == 0 && b == 0)) {
            mem_free(out);
            return NULL;
        }
        *o++ = (char)(a * 16 + b);
        i += 2;
    }
    *o = '\0';
    return out;
}

/* Parses a decimal in s[0..n) into [lo, hi]; -1 when empty, not digits or out
 * of range. */
static int qr_parse_int(const char *s, size_t n, long lo, long hi, long *out)
{
    if (n == 0 || n > 10)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* The URL with any password replaced by ***, for error messages. */
static void qr_url_redact(const char *url, char *buf, size_t len)
{
    const char *rest = url + strlen("redis://");
    const char *at = strrchr(rest, '@');
    if (!at) {
        snprintf(buf, len, "%s", url);
        return;
    }
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    size_t ulen = colon ? (size_t)(colon - rest) : (size_t)(at - rest);
    snprintf(buf, len, "redis://%.*s:***@%s", (int)ulen, rest, at + 1);
}

static int qr_url_parse(const char *url, qr_url *u, char *errbuf, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (!url || strncmp(url, "redis://", 8) != 0) {
        qr_err(errbuf, errlen,
               "redis URL must start with redis:// (redis://[:password@]host:port[/db])");
        return QUEUE_EINVAL;
    }
    char shown[512];
    qr_url_redact(url, shown, sizeof shown);
    const char *rest = url + 8, *end = rest + strlen(rest);
    const char *why = NULL;
    long v;

    if (strpbrk(rest, "?#")) {
        why = "query strings and fragments are not supported";
        goto bad;
    }
    const char *at = strrchr(rest, '@');
    const char *hp = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon) {
            why = "credentials must be :password@ or user:password@";
            goto bad;
        }
        if (colon + 1 == at) {
            why = "the password is empty";
            goto bad;
        }
        if (colon > rest)
            u->user = qr_pct_decode(rest, (size_t)(colon - rest));
        u->password = qr_pct_decode(colon + 1, (size_t)(at - colon - 1));
        if (!u->password || (colon > rest && !u->user)) {
            why = "bad %-escape in the credentials";
            goto bad;
        }
        hp = at + 1;
    }
    const char *slash = strchr(hp, '/');
    const char *hend = slash ? slash : end;
    const char *host = hp, *host_end, *port = NULL;
    if (*hp == '[') {
        const char *close = memchr(hp, ']', (size_t)(hend - hp));
        if (!close) {
            why = "unterminated [ in the host";
            goto bad;
        }
        host = hp + 1;
        host_end = close;
        if (close + 1 < hend) {
            if (close[1] != ':') {
                why = "junk after ] in the host";
                goto bad;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', (size_t)(hend - hp));
        host_end = colon ? colon : hend;
        if (colon)
            port = colon + 1;
    }
    if (host_end == host) {
        why = "the host is missing";
        goto bad;
    }
    for (const char *p = host; p < host_end; p++) {
        if ((unsigned char)*p <= ' ' || *p == '@' || *p == '/') {
            why = "the host contains a space or a reserved character";
            goto bad;
        }
    }
    u->port = 6379;
    if (port) {
        if (qr_parse_int(port, (size_t)(hend - port), 1, 65535, &v)) {
            qr_err(errbuf, errlen, "redis URL \"%s\": port \"%.*s\" is not a number in 1..65535",
                   shown, (int)(hend - port), port);
            qr_url_clear(u);
            return QUEUE_EINVAL;
        }
        u->port = (int)v;
    }
    u->db = 0;
    if (slash && slash + 1 < end) {
        if (qr_parse_int(slash + 1, (size_t)(end - slash - 1), 0, INT_MAX, &v)) {
            qr_err(errbuf, errlen,
                   "redis URL \"%s\": database \"%s\" is not a non-negative integer", shown,
                   slash + 1);
            qr_url_clear(u);
            return QUEUE_EINVAL;
        }
        u->db = (int)v;
    }
    u->host = mem_strndup(host, (size_t)(host_end - host));
    u->addr = memchr(u->host, ':', strlen(u->host)) ? mem_printf("[%s]:%d", u->host, u->port)
                                                    : mem_printf("%s:%d", u->host, u->port);
    return QUEUE_OK;
bad:
    qr_err(errbuf, errlen, "redis URL \"%s\": %s (expected redis://[:password@]host:port[/db])",
           shown, why);
    qr_url_clear(u);
    return QUEUE_EINVAL;
}

static int qr_url_check(const char *url, char *errbuf, size_t errlen)
{
    qr_url u;
    int rc = qr_url_parse(url, &u, errbuf, errlen);
    if (rc == QUEUE_OK)
        qr_url_clear(&u);
    return rc;
}

/* ------------------------------------------------------------- connection */

typedef struct qr_conn {
    redisContext *ctx; /* NULL: not connected */
    const qr_url *url;
    const char *role;  /* "producer", "consumer", "consumer-cmd" */
    const char *label; /* more log context ("group=... stream=...") or "" */
    char *setname;     /* CLIENT SETNAME value, or NULL */
    int want_id;       /* run CLIENT ID after connect */
    long long client_id;
    int timeout_ms; /* socket timeout now set on ctx */
    int lost;       /* lost and not back yet: log when it is */
    int timed_out;  /* the last loss was a timeout: Redis is slow, not gone */
    int failures;   /* failed reconnects in a row */
    int64_t next_try_ms;
} qr_conn;

static void qr_conn_init(qr_conn *conn, const qr_url *url, const char *role, const char *label,
                         const char *client_name, int want_id)
{
    memset(conn, 0, sizeof *conn);
    conn->url = url;
    conn->role = role;
    conn->label = label;
    conn->want_id = want_id;
    if (client_name && *client_name) {
        /* CLIENT SETNAME refuses spaces and newlines */
        conn->setname = mem_printf("dagq-%s:%s", role, client_name);
        for (char *p = conn->setname; *p; p++)
            if ((unsigned char)*p <= ' ' || (unsigned char)*p > '~')
                *p = '_';
    }
}

static void qr_conn_close(qr_conn *conn)
{
    if (conn->ctx)
        redisFree(conn->ctx);
    conn->ctx = NULL;
    mem_free(conn->setname);
    conn->setname = NULL;
}

static const char *qr_sep(const qr_conn *conn)
{
    return conn->label[0] ? " " : "";
}

/* Forgets a broken context; the next call reconnects. */
static void qr_conn_drop(qr_conn *conn, const char *why)
{
    if (!conn->ctx)
        return;
    char q[300];
    log_warn("redis connection lost", "broker=%s conn=%s%s%s err=\"%s\"", conn->url->addr,
             conn->role, qr_sep(conn), conn->label, log_quote(why, q, sizeof q));
    /* hiredis reports a socket timeout as an I/O error with strerror(EAGAIN) */
    conn->timed_out = conn->ctx->err == REDIS_ERR_IO && (strcmp(why, strerror(EAGAIN)) == 0 ||
                                                         strcmp(why, strerror(EWOULDBLOCK)) == 0);
    redisFree(conn->ctx);
    conn->ctx = NULL;
    conn->lost = 1;
    conn->failures = 0;
    conn->next_try_ms = 0;
}

/* With no reply outstanding, anything readable on the socket is EOF or an
 * error: Redis closed it while we were idle (restart, `timeout` setting).
 * Reconnecting now, before a command is sent, saves that command. */
static void qr_conn_check_idle(qr_conn *conn)
{
    if (!conn->ctx)
        return;
    struct pollfd pfd = {.fd = conn->ctx->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
        qr_conn_drop(conn, "closed by the server while idle");
}

static int qr_conn_set_timeout(qr_conn *conn, int ms)
{
    if (ms < 1)
        ms = 1;
    if (conn->timeout_ms == ms)
        return 0;
    if (redisSetTimeout(conn->ctx, qr_tv(ms)) != REDIS_OK) {
        qr_conn_drop(conn, "cannot set the socket timeout");
        return -1;
    }
    conn->timeout_ms = ms;
    return 0;
}

/* One command during the handshake; 0, or a QUEUE_E* code with errbuf set. */
static int qr_handshake(redisContext *ctx, const char *what, int argc, const char **argv,
                        int want_type, redisReply **out, char *errbuf, size_t errlen)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (!r) {
        qr_err(errbuf, errlen, "%s: %s", what, ctx->errstr);
        return QUEUE_ECONN;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int rc = qr_reply_transient(r) ? QUEUE_ECONN : QUEUE_EINVAL;
        qr_err(errbuf, errlen, "%s: %s", what, r->str);
        freeReplyObject(r);
        return rc;
    }
    if (r->type != want_type) {
        qr_err(errbuf, errlen, "%s: unexpected reply type %d", what, r->type);
        freeReplyObject(r);
        return QUEUE_EBROKER;
    }
    if (out)
        *out = r;
    else
        freeReplyObject(r);
    return 0;
}

/* Connects if not connected. 0, QUEUE_ECONN (unreachable, or backing off),
 * or QUEUE_EINVAL (AUTH or SELECT refused). Callers block SIGPIPE. */
static int qr_conn_connect(qr_conn *conn, char *errbuf, size_t errlen)
{
    if (conn->ctx)
        return 0;
    int64_t now = qr_now_ms();
    if (now < conn->next_try_ms) {
        qr_err(errbuf, errlen, "redis %s unreachable; next reconnect attempt in %lld ms",
               conn->url->addr, (long long)(conn->next_try_ms - now));
        return QUEUE_ECONN;
    }
    char why[300];
    int rc = QUEUE_ECONN;
    redisReply *r = NULL;
    redisContext *ctx =
        redisConnectWithTimeout(conn->url->host, conn->url->port, qr_tv(QR_CONNECT_TIMEOUT_MS));
    if (!ctx || ctx->err) {
        snprintf(why, sizeof why, "connect: %s", ctx ? ctx->errstr : "cannot allocate a context");
        goto fail;
    }
    if (redisSetTimeout(ctx, qr_tv(QR_CMD_TIMEOUT_MS)) != REDIS_OK) {
        snprintf(why, sizeof why, "cannot set the socket timeout");
        goto fail;
    }
    redisEnableKeepAlive(ctx);
    if (conn->url->password) {
        const char *argv[3] = {"AUTH"};
        int argc = 1;
        if (conn->url->user)
            argv[argc++] = conn->url->user;
        argv[argc++] = conn->url->password;
        rc = qr_handshake(ctx, "AUTH", argc, argv, REDIS_REPLY_STATUS, NULL, why, sizeof why);
        if (rc)
            goto fail;
    }
    if (conn->url->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", conn->url->db);
        const char *argv[] = {"SELECT", db};
        rc = qr_handshake(ctx, "SELECT", 2, argv, REDIS_REPLY_STATUS, NULL, why, sizeof why);
        if (rc)
            goto fail;
    }
    if (conn->setname) {
        const char *argv[] = {"CLIENT", "SETNAME", conn->setname};
        rc =
            qr_handshake(ctx, "CLIENT SETNAME", 3, argv, REDIS_REPLY_STATUS, NULL, why, sizeof why);
        if (rc)
            goto fail;
    }
    if (conn->want_id) {
        const char *argv[] = {"CLIENT", "ID"};
        rc = qr_handshake(ctx, "CLIENT ID", 2, argv, REDIS_REPLY_INTEGER, &r, why, sizeof why);
        if (rc)
            goto fail;
        conn->client_id = r->integer;
        freeReplyObject(r);
    }
    conn->ctx = ctx;
    conn->timeout_ms = QR_CMD_TIMEOUT_MS;
    if (conn->lost)
        log_info("redis reconnected", "broker=%s conn=%s%s%s", conn->url->addr, conn->role,
                 qr_sep(conn), conn->label);
    conn->lost = 0;
    conn->failures = 0;
    conn->next_try_ms = 0;
    return 0;
fail:
    if (ctx)
        redisFree(ctx);
    char q[300];
    int delay = backoff_reconnect_ms(conn->failures++);
    conn->next_try_ms = qr_now_ms() + delay;
    if (conn->lost)
        log_warn("redis reconnect failed",
                 "broker=%s conn=%s%s%s attempt=%d retry_in_ms=%d err=\"%s\"", conn->url->addr,
                 conn->role, qr_sep(conn), conn->label, conn->failures, delay,
                 log_quote(why, q, sizeof q));
    qr_err(errbuf, errlen, "redis %s: %s", conn->url->addr, why);
    return rc;
}

/* Runs one command (connecting first). 0 with *out set — possibly an error
 * reply, the caller decides — or QUEUE_ECONN/QUEUE_EINVAL with errbuf set.
 * timeout_ms 0: the default command timeout. Callers block SIGPIPE. */
static int qr_conn_run(qr_conn *conn, const char *what, int argc, const char **argv,
                       const size_t *lens, int timeout_ms, redisReply **out, char *errbuf,
                       size_t errlen)
{
    *out = NULL;
    qr_conn_check_idle(conn);
    int rc = qr_conn_connect(conn, errbuf, errlen);
    if (rc)
        return rc;
    if (qr_conn_set_timeout(conn, timeout_ms ? timeout_ms : QR_CMD_TIMEOUT_MS)) {
        qr_err(errbuf, errlen, "redis %s %s: cannot set the socket timeout", conn->url->addr, what);
        return QUEUE_ECONN;
    }
    redisReply *r = redisCommandArgv(conn->ctx, argc, argv, lens);
    if (!r) {
        qr_err(errbuf, errlen, "redis %s %s: %s", conn->url->addr, what, conn->ctx->errstr);
        qr_conn_drop(conn, conn->ctx->errstr);
        return QUEUE_ECONN;
    }
    *out = r;
    return 0;
}

/* Runs n commands in one round trip; replies[0..n) are set on 0. */
static int qr_conn_pipeline(qr_conn *conn, const char *what, int n, const int *argcs,
                            const char **const *argvs, const size_t *const *lens,
                            redisReply **replies, char *errbuf, size_t errlen)
{
    qr_conn_check_idle(conn);
    int rc = qr_conn_connect(conn, errbuf, errlen);
    if (rc)
        return rc;
    if (qr_conn_set_timeout(conn, QR_CMD_TIMEOUT_MS)) {
        qr_err(errbuf, errlen, "redis %s %s: cannot set the socket timeout", conn->url->addr, what);
        return QUEUE_ECONN;
    }
    for (int i = 0; i < n; i++) {
        if (redisAppendCommandArgv(conn->ctx, argcs[i], argvs[i], lens[i]) != REDIS_OK) {
            qr_err(errbuf, errlen, "redis %s %s: %s", conn->url->addr, what, conn->ctx->errstr);
            qr_conn_drop(conn, conn->ctx->errstr);
            return QUEUE_ECONN;
        }
    }
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(conn->ctx, &r) != REDIS_OK || !r) {
            qr_err(errbuf, errlen, "redis %s %s: %s", conn->url->addr, what, conn->ctx->errstr);
            qr_conn_drop(conn, conn->ctx->errstr);
            for (int j = 0; j < i; j++)
                freeReplyObject(replies[j]);
            return QUEUE_ECONN;
        }
        replies[i] = r;
    }
    return 0;
}

/* An error reply as a QUEUE_E* code with words; transient ones are
 * QUEUE_ECONN (READONLY also drops the connection: we reached a replica). */
static int qr_reply_rc(qr_conn *conn, const redisReply *r, const char *what, char *errbuf,
                       size_t errlen)
{
    if (r->type == REDIS_REPLY_ERROR) {
        qr_err(errbuf, errlen, "redis %s %s: %s", conn->url->addr, what, r->str);
        if (qr_reply_is(r, "READONLY"))
            qr_conn_drop(conn, r->str);
        if (qr_reply_is(r, "NOAUTH") || qr_reply_is(r, "WRONGPASS") || qr_reply_is(r, "NOPERM"))
            return QUEUE_EINVAL; /* the URL lacks the password, or the user the rights */
        return qr_reply_transient(r) ? QUEUE_ECONN : QUEUE_EBROKER;
    }
    qr_err(errbuf, errlen, "redis %s %s: unexpected reply type %d", conn->url->addr, what, r->type);
    return QUEUE_EBROKER;
}

/* XGROUP CREATE <stream> workers 0 MKSTREAM; BUSYGROUP is fine. */
static int qr_ensure_group(qr_conn *conn, const char *group, const char *stream, char *errbuf,
                           size_t errlen)
{
    const char *argv[] = {"XGROUP", "CREATE", stream, QR_GROUP, "0", "MKSTREAM"};
    redisReply *r;
    int rc = qr_conn_run(conn, "XGROUP CREATE", 6, argv, NULL, 0, &r, errbuf, errlen);
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_STATUS)
        log_info("redis consumer group created", "broker=%s group=%s stream=%s cgroup=%s",
                 conn->url->addr, group, stream, QR_GROUP);
    else if (!qr_reply_is(r, "BUSYGROUP"))
        rc = qr_reply_rc(conn, r, "XGROUP CREATE", errbuf, errlen);
    freeReplyObject(r);
    return rc;
}

static const char *qr_prefix(const queue_conf *conf)
{
    return conf->redis_prefix && *conf->redis_prefix ? conf->redis_prefix : QR_DEFAULT_PREFIX;
}

/* --------------------------------------------------------------- producer */

typedef struct qr_producer {
    qr_url url;
    char *prefix;
    qr_conn conn;
    int batch;       /* XADDs appended to conn.ctx whose replies are unread */
    int batch_lost;  /* XADDs appended to a connection since lost */
    int deferred_rc; /* error of an implicit flush, for the next queue_flush */
    char deferred_err[256];
    /* groups whose stream and consumer group this producer created (or
     * found), with their stream keys: the first push to a group ensures it,
     * later pushes only look it up */
    struct qr_ensured {
        char *group, *stream;
    } * ensured;
    int n_ensured;
} qr_producer;

static char *qr_stream_key(const char *prefix, const char *group)
{
    return mem_printf("%squeue:%s", prefix, group);
}

/* A dropped connection takes its unsent batch with it. */
static void qr_producer_sync(qr_producer *p)
{
    if (!p->conn.ctx && p->batch) {
        p->batch_lost += p->batch;
        p->batch = 0;
    }
}

static int qr_open(const queue_conf *conf, void **impl, char *errbuf, size_t errlen)
{
    *impl = NULL;
    qr_producer *p = mem_calloc(1, sizeof *p);
    int rc = qr_url_parse(conf->broker_url, &p->url, errbuf, errlen);
    if (rc) {
        mem_free(p);
        return rc;
    }
    p->prefix = mem_strdup(qr_prefix(conf));
    qr_conn_init(&p->conn, &p->url, "producer", "", conf->client_name, 0);
    qr_sigpipe sp;
    qr_sigpipe_block(&sp);
    rc = qr_conn_connect(&p->conn, errbuf, errlen);
    qr_sigpipe_restore(&sp);
    if (rc) {
        qr_conn_close(&p->conn);
        qr_url_clear(&p->url);
        mem_free(p->prefix);
        mem_free(p);
        return rc;
    }
    *impl = p;
    return QUEUE_OK;
}

static void qr_free(void *impl)
{
    qr_producer *p = impl;
    if (!p)
        return;
    if (p->batch || p->batch_lost)
        log_warn("redis producer freed with unflushed messages", "broker=%s count=%d", p->url.addr,
                 p->batch + p->batch_lost);
    qr_conn_close(&p->conn);
    qr_url_clear(&p->url);
    for (int i = 0; i < p->n_ensured; i++) {
        mem_free(p->ensured[i].group);
        mem_free(p->ensured[i].stream);
    }
    mem_free(p->ensured);
    mem_free(p->prefix);
    mem_free(p);
}

static int qr_flush_batch(qr_producer *p, int timeout_ms, char *errbuf, size_t errlen)
{
    int rc = QUEUE_OK;
    qr_producer_sync(p);
    if (p->batch_lost) {
        rc = QUEUE_ECONN;
        qr_err(errbuf, errlen, "redis %s: %d message(s) not sent: the connection was lost",
               p->url.addr, p->batch_lost);
        p->batch_lost = 0;
    }
    if (!p->batch)
        return rc;
    int n = p->batch, failed = 0, transient = 0, done = 0;
    char first[256] = "";
    int64_t deadline = qr_now_ms() + (timeout_ms > 0 ? timeout_ms : QR_CMD_TIMEOUT_MS);
    qr_sigpipe sp;
    qr_sigpipe_block(&sp);
    for (; done < n; done++) {
        int64_t left = deadline - qr_now_ms();
        if (qr_conn_set_timeout(&p->conn, left > 0 ? (int)left : 1))
            break;
        void *r = NULL;
        if (redisGetReply(p->conn.ctx, &r) != REDIS_OK || !r) {
            qr_conn_drop(&p->conn, p->conn.ctx->errstr);
            break;
        }
        redisReply *rr = r;
        if (rr->type == REDIS_REPLY_ERROR) {
            if (!failed++)
                snprintf(first, sizeof first, "%s", rr->str);
            transient += qr_reply_transient(rr);
        }
        freeReplyObject(rr);
    }
    qr_sigpipe_restore(&sp);
    p->batch = 0;
    if (done < n) {
        rc = QUEUE_ECONN;
        qr_err(errbuf, errlen,
               "redis %s: connection lost while flushing; %d of %d message(s) unconfirmed",
               p->url.addr, n - done, n);
    } else if (failed && !rc) {
        /* all "not now" (LOADING after a restart...): retriable */
        rc = transient == failed ? QUEUE_ECONN : QUEUE_EBROKER;
        qr_err(errbuf, errlen, "redis %s: XADD refused for %d of %d message(s): %s", p->url.addr,
               failed, n, first);
    }
    return rc;
}

static int qr_flush(void *impl, int timeout_ms, char *errbuf, size_t errlen)
{
    qr_producer *p = impl;
    int rc = qr_flush_batch(p, timeout_ms, errbuf, errlen);
    if (p->deferred_rc) {
        if (!rc) {
            rc = p->deferred_rc;
            qr_err(errbuf, errlen, "%s", p->deferred_err);
        }
        p->deferred_rc = 0;
    }
    return rc; /* the caller logs a failure */
}

/* Before any other command: the replies of a pending batch come first. */
static void qr_implicit_flush(qr_producer *p)
{
    qr_producer_sync(p);
    if (!p->batch && !p->batch_lost)
        return;
    char err[256];
    int rc = qr_flush_batch(p, QR_CMD_TIMEOUT_MS, err, sizeof err);
    if (rc && !p->deferred_rc) {
        p->deferred_rc = rc;
        snprintf(p->deferred_err, sizeof p->deferred_err, "%s", err);
    }
}

/* Sets *stream to group's stream key, creating its stream and consumer
 * group the first time this producer meets the group. */
static int qr_producer_ensure(qr_producer *p, const char *group, const char **stream_out,
                              char *errbuf, size_t errlen)
{
    for (int i = 0; i < p->n_ensured; i++)
        if (!strcmp(p->ensured[i].group, group)) {
            *stream_out = p->ensured[i].stream;
            return QUEUE_OK;
        }
    qr_implicit_flush(p);
    char *stream = qr_stream_key(p->prefix, group);
    qr_sigpipe sp;
    qr_sigpipe_block(&sp);
    int rc = qr_ensure_group(&p->conn, group, stream, errbuf, errlen);
    qr_sigpipe_restore(&sp);
    if (rc) {
        mem_free(stream);
        return rc;
    }
    p->ensured = mem_realloc(p->ensured, sizeof *p->ensured * (size_t)(p->n_ensured + 1));
    p->ensured[p->n_ensured++] = (struct qr_ensured){mem_strdup(group), stream};
    *stream_out = stream;
    return QUEUE_OK;
}

static int qr_ensure_group_op(void *impl, const char *group, char *errbuf, size_t errlen)
{
    qr_producer *p = impl;
    const char *stream;
    return qr_producer_ensure(p, group, &stream, errbuf, errlen);
}

static int qr_push(void *impl, const char *group, const void *data, size_t len, char *errbuf,
                   size_t errlen)
{
    qr_producer *p = impl;
    const char *stream;
    int rc;
    if ((rc = qr_producer_ensure(p, group, &stream, errbuf, errlen)))
        return rc;
    if (!p->batch)
        qr_conn_check_idle(&p->conn);
    qr_producer_sync(p);
    if (!p->conn.ctx) {
        qr_sigpipe sp;
        qr_sigpipe_block(&sp);
        rc = qr_conn_connect(&p->conn, errbuf, errlen);
        qr_sigpipe_restore(&sp);
        if (rc)
            return rc;
    }
    const char *argv[] = {"XADD", stream, "*", "m", data ? (const char *)data : ""};
    size_t lens[] = {4, strlen(stream), 1, 1, data ? len : 0};
    if (redisAppendCommandArgv(p->conn.ctx, 5, argv, lens) != REDIS_OK) {
        qr_err(errbuf, errlen, "redis %s XADD %s: %s", p->url.addr, stream, p->conn.ctx->errstr);
        qr_conn_drop(&p->conn, p->conn.ctx->errstr);
        qr_producer_sync(p);
        return QUEUE_ECONN;
    }
    p->batch++;
    return QUEUE_OK;
}

/* The value of key in a flat [k1, v1, k2, v2, ...] array, or NULL. */
static const redisReply *qr_map_get(const redisReply *map, const char *key)
{
    if (!map || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2)
        if (qr_str_eq(map->element[i], key))
            return map->element[i + 1];
    return NULL;
}

static int qr_xlen(qr_conn *conn, const char *stream, int64_t *len, char *errbuf, size_t errlen)
{
    const char *argv[] = {"XLEN", stream};
    redisReply *r;
    int rc = qr_conn_run(conn, "XLEN", 2, argv, NULL, 0, &r, errbuf, errlen);
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER)
        *len = r->integer;
    else
        rc = qr_reply_rc(conn, r, "XLEN", errbuf, errlen);
    freeReplyObject(r);
    return rc;
}

static int qr_backlog(void *impl, const char *group, int64_t *backlog, char *errbuf, size_t errlen)
{
    qr_producer *p = impl;
    *backlog = 0;
    qr_implicit_flush(p);
    char *stream = qr_stream_key(p->prefix, group);
    const char *argv[] = {"XINFO", "GROUPS", stream};
    redisReply *r = NULL;
    qr_sigpipe sp;
    qr_sigpipe_block(&sp);
    int rc = qr_conn_run(&p->conn, "XINFO GROUPS", 3, argv, NULL, 0, &r, errbuf, errlen);
    if (rc)
        goto done;
    if (qr_reply_is(r, "ERR no such key")) {
        *backlog = 0; /* nothing was ever pushed */
        goto done;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = qr_reply_rc(&p->conn, r, "XINFO GROUPS", errbuf, errlen);
        goto done;
    }
    const redisReply *g = NULL;
    for (size_t i = 0; i < r->elements && !g; i++)
        if (qr_str_eq(qr_map_get(r->element[i], "name"), QR_GROUP))
            g = r->element[i];
    if (!g) {
        /* no group yet: it will be created at id 0, so all of it is waiting */
        rc = qr_xlen(&p->conn, stream, backlog, errbuf, errlen);
        goto done;
    }
    const redisReply *lag = qr_map_get(g, "lag");
    if (lag && lag->type == REDIS_REPLY_INTEGER) {
        *backlog = lag->integer;
        goto done;
    }
    /* lag unknown: every entry left in the stream is pending or undelivered
     * (acks delete), see the comment at the top */
    const redisReply *pending = qr_map_get(g, "pending");
    int64_t len = 0;
    rc = qr_xlen(&p->conn, stream, &len, errbuf, errlen);
    if (!rc) {
        int64_t pend = pending && pending->type == REDIS_REPLY_INTEGER ? pending->integer : 0;
        *backlog = len > pend ? len - pend : 0;
    }
done:
    qr_sigpipe_restore(&sp);
    if (r)
        freeReplyObject(r);
    mem_free(stream);
    return rc;
}

/* --------------------------------------------------------------- consumer */

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
    char *label;       /* "group=... stream=... consumer=..." for logs */
    int reclaim_idle_ms;
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

static int qr_take_wake(qr_consumer *c)
{
    pthread_mutex_lock(&c->mu);
    int w = c->wake_pending;
    c->wake_pending = 0;
    pthread_mutex_unlock(&c->mu);
    return w;
}

/* Sleeps until the monotonic time until_ms or a wake. */
static void qr_wait(qr_consumer *c, int64_t until_ms)
{
    pthread_mutex_lock(&c->mu);
    while (!c->wake_pending) {
        int64_t now = qr_now_ms();
        if (now >= until_ms)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (until_ms - now) * 1000000LL;
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&c->cond, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
}

static void qr_consumer_destroy(qr_consumer *c)
{
    qr_conn_close(&c->rconn);
    qr_conn_close(&c->cconn);
    qr_url_clear(&c->url);
    mem_free(c->group);
    mem_free(c->stream);
    mem_free(c->dead_letter);
    mem_free(c->name);
    mem_free(c->label);
    mem_free(c);
}

static char *qr_default_name(void)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    return mem_printf("%s:%ld", host, (long)getpid());
}

static int qr_consumer_open(const queue_conf *conf, const char *group, void **impl, char *errbuf,
                            size_t errlen)
{
    *impl = NULL;
    qr_consumer *c = mem_calloc(1, sizeof *c);
    int rc = qr_url_parse(conf->broker_url, &c->url, errbuf, errlen);
    if (rc) {
        mem_free(c);
        return rc;
    }
    const char *prefix = qr_prefix(conf);
    c->group = mem_strdup(group);
    c->stream = qr_stream_key(prefix, group);
    c->dead_letter = mem_printf("%sdead-letter", prefix);
    c->name =
        conf->client_name && *conf->client_name ? mem_strdup(conf->client_name) : qr_default_name();
    c->label = mem_printf("group=%s stream=%s consumer=%s", c->group, c->stream, c->name);
    c->reclaim_idle_ms =
        conf->reclaim_idle_ms > 0 ? conf->reclaim_idle_ms : QR_RECLAIM_IDLE_DEFAULT_MS;
    snprintf(c->reclaim_cursor, sizeof c->reclaim_cursor, "0-0");
    c->next_reclaim_ms = 0; /* at the first poll: a predecessor may have died */
    qr_conn_init(&c->rconn, &c->url, "consumer", c->label, c->name, 1);
    qr_conn_init(&c->cconn, &c->url, "consumer-cmd", c->label, c->name, 0);

    qr_sigpipe sp;
    qr_sigpipe_block(&sp);
    rc = qr_conn_connect(&c->rconn, errbuf, errlen);
    if (!rc)
        rc = qr_ensure_group(&c->rconn, c->group, c->stream, errbuf, errlen);
    if (!rc)
        rc = qr_conn_connect(&c->cconn, errbuf, errlen);
    qr_sigpipe_restore(&sp);
    if (rc) {
        qr_consumer_destroy(c);
        return rc;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->cmd_mu, NULL);
    log_info("redis consumer ready", "broker=%s %s", c->url.addr, c->label);
    *impl = c;
    return QUEUE_OK;
}

/* Deletes this consumer from the group unless it has pending entries: one
 * script, so nothing can become pending between the check and the delete. */
static const char qr_leave_script[] =
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])\n"
    "if #p > 0 then return -1 end\n"
    "return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])\n";

static void qr_consumer_free(void *impl)
{
    qr_consumer *c = impl;
    if (!c)
        return;
    const char *argv[] = {"EVAL", qr_leave_script, "1", c->stream, QR_GROUP, c->name};
    redisReply *r = NULL;
    char err[256], q[300];
    qr_sigpipe sp;
    qr_sigpipe_block(&sp);
    int rc = qr_conn_run(&c->rconn, "leave group", 6, argv, NULL, 0, &r, err, sizeof err);
    qr_sigpipe_restore(&sp);
    if (rc)
        log_warn("redis consumer left without cleanup", "broker=%s %s err=\"%s\"", c->url.addr,
                 c->label, log_quote(err, q, sizeof q));
    else if (r->type == REDIS_REPLY_INTEGER && r->integer < 0)
        log_info("redis consumer left with pending entries; others will reclaim them",
                 "broker=%s %s", c->url.addr, c->label);
    else if (r->type == REDIS_REPLY_INTEGER)
        log_debug("redis consumer deleted", "broker=%s %s", c->url.addr, c->label);
    else if (!qr_reply_is(r, "NOGROUP"))
        log_warn(
            "redis consumer left without cleanup", "broker=%s %s err=\"%s\"", c->url.addr, c->label,
            log_quote(r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply", q, sizeof q));
    if (r)
        freeReplyObject(r);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->cmd_mu);
    pthread_cond_destroy(&c->cond);
    qr_consumer_destroy(c);
}

/* A message from a stream entry [id, [field, value, ...]]; NULL when the
 * entry is malformed or deleted. */
static queue_msg *qr_msg_new(qr_consumer *c, const redisReply *e)
{
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[0]->len >= sizeof(((queue_msg *)0)->id))
        return NULL;
    const redisReply *id = e->element[0];
    const redisReply *m = qr_map_get(e->element[1], "m");
    qr_msg *rm = mem_calloc(1, sizeof *rm);
    rm->ops = &queue__redis_ops;
    memcpy(rm->msg.id, id->str, id->len);
    rm->msg.id[id->len] = '\0';
    if (m && m->type == REDIS_REPLY_STRING) {
        rm->msg.len = m->len;
    } else {
        /* not written by dagq: an empty payload, which the worker dead-letters */
        log_warn("redis entry without field m", "broker=%s %s id=%s", c->url.addr, c->label,
                 rm->msg.id);
        rm->msg.len = 0;
    }
    rm->msg.data = mem_strndup(rm->msg.len ? m->str : "", rm->msg.len);
    rm->msg.priv = rm;
    return &rm->msg;
}

static void qr_msg_free(queue_msg *m)
{
    qr_msg *rm = m->priv;
    mem_free((void *)m->data);
    mem_free(rm);
}

/* Takes entries in the group's pending list idle for reclaim_idle_ms. */
static int qr_reclaim(qr_consumer *c, int max, queue_msg **msgs, int *n, char *errbuf,
                      size_t errlen)
{
    char idle[16], count[16];
    snprintf(idle, sizeof idle, "%d", c->reclaim_idle_ms);
    snprintf(count, sizeof count, "%d", max);
    const char *argv[] = {"XAUTOCLAIM", c->stream,         QR_GROUP, c->name,
                          idle,         c->reclaim_cursor, "COUNT",  count};
    redisReply *r;
    int rc = qr_conn_run(&c->rconn, "XAUTOCLAIM", 8, argv, NULL, 0, &r, errbuf, errlen);
    if (rc)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
        rc = qr_reply_rc(&c->rconn, r, "XAUTOCLAIM", errbuf, errlen);
        if (qr_reply_is(r, "NOGROUP"))
            rc = QR_ENOGROUP;
        freeReplyObject(r);
        return rc;
    }
    const redisReply *entries = r->element[1];
    for (size_t i = 0; i < entries->elements && *n < max; i++) {
        queue_msg *m = qr_msg_new(c, entries->element[i]);
        if (m) {
            log_info("redis entry reclaimed", "broker=%s %s id=%s", c->url.addr, c->label, m->id);
            msgs[(*n)++] = m;
        }
    }
    snprintf(c->reclaim_cursor, sizeof c->reclaim_cursor, "%.*s", (int)r->element[0]->len,
             r->element[0]->str);
    /* a full scan wraps to 0-0: wait an interval; otherwise go on soon */
    int64_t now = qr_now_ms();
    int interval = c->reclaim_idle_ms / 2;
    if (interval < QR_RECLAIM_MIN_INTERVAL_MS)
        interval = QR_RECLAIM_MIN_INTERVAL_MS;
    c->next_reclaim_ms = strcmp(c->reclaim_cursor, "0-0") == 0 ? now + interval : now;
    freeReplyObject(r);
    return 0;
}

/* XREADGROUP of new entries, blocking up to block_ms (0: no BLOCK). */
static int qr_read(qr_consumer *c, int max, int block_ms, queue_msg **msgs, int *n, char *errbuf,
                   size_t errlen)
{
    char count[16], block[16];
    snprintf(count, sizeof count, "%d", max);
    snprintf(block, sizeof block, "%d", block_ms);
    const char *argv[12] = {"XREADGROUP", "GROUP", QR_GROUP, c->name, "COUNT", count};
    int argc = 6;
    if (block_ms > 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = c->stream;
    argv[argc++] = ">";
    if (block_ms > 0) {
        /* settle the connection first: wake must see the id that blocks */
        qr_conn_check_idle(&c->rconn);
        int rc = qr_conn_connect(&c->rconn, errbuf, errlen);
        if (rc)
            return rc;
        pthread_mutex_lock(&c->mu);
        int woken = c->wake_pending;
        c->in_block = !woken;
        c->block_id = c->rconn.client_id;
        pthread_mutex_unlock(&c->mu);
        if (woken)
            return 0;
    }
    redisReply *r;
    int rc = qr_conn_run(&c->rconn, "XREADGROUP", argc, argv, NULL,
                         block_ms > 0 ? block_ms + QR_BLOCK_GRACE_MS : 0, &r, errbuf, errlen);
    if (block_ms > 0) {
        pthread_mutex_lock(&c->mu);
        c->in_block = 0;
        pthread_mutex_unlock(&c->mu);
    }
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return 0;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = qr_reply_rc(&c->rconn, r, "XREADGROUP", errbuf, errlen);
        if (qr_reply_is(r, "NOGROUP"))
            rc = QR_ENOGROUP;
        freeReplyObject(r);
        return rc;
    }
    for (size_t s = 0; s < r->elements; s++) {
        const redisReply *st = r->element[s];
        if (st->type != REDIS_REPLY_ARRAY || st->elements < 2 ||
            st->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *entries = st->element[1];
        for (size_t i = 0; i < entries->elements && *n < max; i++) {
            queue_msg *m = qr_msg_new(c, entries->element[i]);
            if (m)
                msgs[(*n)++] = m;
        }
    }
    freeReplyObject(r);
    return 0;
}

static int qr_consumer_poll(void *impl, int max, int timeout_ms, queue_msg **msgs, int *n,
                            char *errbuf, size_t errlen)
{
    qr_consumer *c = impl;
    int64_t deadline = qr_now_ms() + timeout_ms;
    if (qr_take_wake(c))
        return QUEUE_OK;
    if (max == 0) {
        qr_wait(c, deadline);
        qr_take_wake(c);
        return QUEUE_OK;
    }
    int rc = QUEUE_OK, retried = 0, regrouped = 0;
    qr_sigpipe sp;
    qr_sigpipe_block(&sp);
    for (;;) {
        int stale = c->rconn.ctx != NULL; /* connected before this call */
        rc = qr_conn_connect(&c->rconn, errbuf, errlen);
        if (rc) {
            if (rc == QUEUE_ECONN) {
                int64_t until = c->rconn.next_try_ms < deadline ? c->rconn.next_try_ms : deadline;
                qr_wait(c, until);
            }
            break;
        }
        if (!stale)
            retried = 1; /* a fresh connection that fails is not retried */
        if (qr_now_ms() >= c->next_reclaim_ms) {
            rc = qr_reclaim(c, max, msgs, n, errbuf, errlen);
            if (rc || *n > 0)
                goto check;
        }
        int64_t now = qr_now_ms(), until = deadline;
        if (c->next_reclaim_ms < until)
            until = c->next_reclaim_ms;
        int block = until > now ? (int)(until - now) : 0;
        if (deadline <= now)
            block = 0;
        rc = qr_read(c, max, block, msgs, n, errbuf, errlen);
    check:
        if (rc == QR_ENOGROUP) {
            rc = QUEUE_EBROKER;
            if (!regrouped) {
                regrouped = 1;
                log_warn("redis consumer group missing; creating it again", "broker=%s %s",
                         c->url.addr, c->label);
                rc = qr_ensure_group(&c->rconn, c->group, c->stream, errbuf, errlen);
                if (!rc)
                    continue;
            }
        }
        if (rc == QUEUE_ECONN && !retried && !c->rconn.ctx && !c->rconn.timed_out) {
            retried = 1;
            continue;
        }
        if (rc == QUEUE_ECONN && c->rconn.ctx) {
            /* Redis answered "not now" (LOADING, BUSY...): do not spin */
            int64_t soon = qr_now_ms() + 100;
            qr_wait(c, soon < deadline ? soon : deadline);
        }
        if (rc || *n > 0 || qr_take_wake(c) || qr_now_ms() >= deadline)
            break;
    }
    qr_sigpipe_restore(&sp);
    if (rc) {
        for (int i = 0; i < *n; i++)
            qr_msg_free(msgs[i]);
        *n = 0;
        return rc;
    }
    qr_take_wake(c);
    if (*n)
        log_debug("redis poll", "broker=%s %s count=%d first_id=%s", c->url.addr, c->label, *n,
                  msgs[0]->id);
    return QUEUE_OK;
}

/* Runs the MULTI ... EXEC of ack or dead_letter on the command connection;
 * retried once on a fresh connection when the old one turns out broken. */
static int qr_cmd_tx(qr_consumer *c, const char *what, int n, const int *argcs,
                     const char **const *argvs, const size_t *const *lens, char *errbuf,
                     size_t errlen)
{
    redisReply *replies[8];
    int rc;
    pthread_mutex_lock(&c->cmd_mu);
    qr_sigpipe sp;
    qr_sigpipe_block(&sp);
    for (int attempt = 0;; attempt++) {
        int stale = c->cconn.ctx != NULL;
        rc = qr_conn_pipeline(&c->cconn, what, n, argcs, argvs, lens, replies, errbuf, errlen);
        if (rc == QUEUE_ECONN && stale && attempt == 0 && !c->cconn.ctx && !c->cconn.timed_out)
            continue;
        break;
    }
    if (!rc) {
        /* replies: +OK, +QUEUED..., then EXEC's array (nil: aborted) */
        const redisReply *exec = replies[n - 1];
        for (int i = 0; i < n - 1 && !rc; i++)
            if (replies[i]->type == REDIS_REPLY_ERROR)
                rc = qr_reply_rc(&c->cconn, replies[i], what, errbuf, errlen);
        if (!rc && exec->type != REDIS_REPLY_ARRAY)
            rc = qr_reply_rc(&c->cconn, exec, what, errbuf, errlen);
        for (size_t i = 0; !rc && i < exec->elements; i++)
            if (exec->element[i]->type == REDIS_REPLY_ERROR)
                rc = qr_reply_rc(&c->cconn, exec->element[i], what, errbuf, errlen);
        for (int i = 0; i < n; i++)
            freeReplyObject(replies[i]);
    }
    qr_sigpipe_restore(&sp);
    pthread_mutex_unlock(&c->cmd_mu);
    return rc;
}

static int qr_consumer_ack(void *impl, queue_msg *m, char *errbuf, size_t errlen)
{
    qr_consumer *c = impl;
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const char *xack[] = {"XACK", c->stream, QR_GROUP, m->id};
    const char *xdel[] = {"XDEL", c->stream, m->id};
    const int argcs[] = {1, 4, 3, 1};
    const char **const argvs[] = {multi, xack, xdel, exec};
    const size_t *const lens[] = {NULL, NULL, NULL, NULL};
    int rc = qr_cmd_tx(c, "ack", 4, argcs, argvs, lens, errbuf, errlen);
    if (rc == 0) /* the caller logs a failure */
        log_debug("redis entry acked", "broker=%s %s id=%s", c->url.addr, c->label, m->id);
    return rc;
}

static int qr_consumer_dead_letter(void *impl, queue_msg *m, const char *reason, char *errbuf,
                                   size_t errlen)
{
    qr_consumer *c = impl;
    if (!reason)
        reason = "";
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const char *payload = m->data ? (const char *)m->data : "";
    const char *xadd[] = {"XADD",   c->dead_letter, "*",  "reason", reason,  "payload", payload,
                          "stream", c->stream,      "id", m->id,    "group", c->group};
    size_t xadd_lens[13];
    for (int i = 0; i < 13; i++)
        xadd_lens[i] = strlen(xadd[i]);
    xadd_lens[6] = m->data ? m->len : 0; /* the payload: binary */
    const char *xack[] = {"XACK", c->stream, QR_GROUP, m->id};
    const char *xdel[] = {"XDEL", c->stream, m->id};
    const int argcs[] = {1, 13, 4, 3, 1};
    const char **const argvs[] = {multi, xadd, xack, xdel, exec};
    const size_t *const lens[] = {NULL, xadd_lens, NULL, NULL, NULL};
    char q[300];
    int rc = qr_cmd_tx(c, "dead-letter", 5, argcs, argvs, lens, errbuf, errlen);
    if (rc == 0) /* the caller logs a failure */
        log_warn("message dead-lettered", "broker=%s %s id=%s dead_letter=%s reason=\"%s\"",
                 c->url.addr, c->label, m->id, c->dead_letter, log_quote(reason, q, sizeof q));
    return rc;
}

static void qr_consumer_wake(void *impl)
{
    qr_consumer *c = impl;
    pthread_mutex_lock(&c->mu);
    c->wake_pending = 1;
    pthread_cond_broadcast(&c->cond);
    int blocking = c->in_block;
    long long id = c->block_id;
    pthread_mutex_unlock(&c->mu);
    /* the XREADGROUP may not have reached Redis yet: then UNBLOCK says 0 and
     * is tried again while poll is still in it */
    for (int i = 0; blocking && i < QR_WAKE_TRIES; i++) {
        char ids[32], err[256], q[300];
        snprintf(ids, sizeof ids, "%lld", id);
        const char *argv[] = {"CLIENT", "UNBLOCK", ids};
        redisReply *r = NULL;
        pthread_mutex_lock(&c->cmd_mu);
        qr_sigpipe sp;
        qr_sigpipe_block(&sp);
        int rc = qr_conn_run(&c->cconn, "CLIENT UNBLOCK", 3, argv, NULL, 0, &r, err, sizeof err);
        qr_sigpipe_restore(&sp);
        pthread_mutex_unlock(&c->cmd_mu);
        int done = rc || r->type != REDIS_REPLY_INTEGER || r->integer == 1;
        if (rc)
            log_warn("redis wake failed", "broker=%s %s err=\"%s\"", c->url.addr, c->label,
                     log_quote(err, q, sizeof q));
        if (r)
            freeReplyObject(r);
        if (done)
            break;
        qr_sleep_ms(QR_WAKE_RETRY_MS);
        pthread_mutex_lock(&c->mu);
        blocking = c->in_block && c->block_id == id;
        pthread_mutex_unlock(&c->mu);
    }
}

const queue__ops queue__redis_ops = {
    .scheme = "redis",
    .url_check = qr_url_check,
    .open = qr_open,
    .free = qr_free,
    .ensure_group = qr_ensure_group_op,
    .push = qr_push,
    .flush = qr_flush,
    .backlog = qr_backlog,
    .consumer_open = qr_consumer_open,
    .consumer_free = qr_consumer_free,
    .consumer_poll = qr_consumer_poll,
    .consumer_ack = qr_consumer_ack,
    .consumer_dead_letter = qr_consumer_dead_letter,
    .consumer_wake = qr_consumer_wake,
    .msg_free = qr_msg_free,
};
