#include "redis_conn.h"

#include "backoff.h"
#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "redis_reply.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static struct timeval qr_conn_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

void qr_conn__sigpipe_block(qr_conn_sigpipe *s)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    s->was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &s->old);
}

void qr_conn__sigpipe_restore(qr_conn_sigpipe *s)
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

/* hiredis's context first (it owns the socket the relay serves), then the
 * TLS session. */
static void qr_conn_free_ctx(redisContext *ctx, qr_relay *tls)
{
    if (ctx)
        redisFree(ctx);
    qr_relay__free(tls);
}

void qr_conn__init(qr_conn *conn, const qr_url *url, const char *role, const char *label,
                   const char *client_name, int want_id)
{
    char q[300];
    memset(conn, 0, sizeof *conn);
    conn->url = url;
    conn->want_id = want_id;
    conn->logctx = mem_printf("broker=\"%s\" conn=%s%s%s", log_quote(url->addr, q, sizeof q), role,
                              label[0] ? " " : "", label);
    if (client_name && *client_name) {
        /* CLIENT SETNAME refuses spaces and newlines */
        conn->setname = mem_printf("dagq-%s:%s", role, client_name);
        for (char *p = conn->setname; *p; p++)
            if ((unsigned char)*p <= ' ' || (unsigned char)*p > '~')
                *p = '_';
    }
}

void qr_conn__close(qr_conn *conn)
{
    qr_conn_free_ctx(conn->ctx, conn->tls);
    conn->ctx = NULL;
    conn->tls = NULL;
    mem_free(conn->setname);
    conn->setname = NULL;
    mem_free(conn->logctx);
    conn->logctx = NULL;
}

void qr_conn__drop(qr_conn *conn, const char *why)
{
    if (!conn->ctx)
        return;
    char q[300];
    log_warn("redis connection lost", "%s err=\"%s\"", conn->logctx, log_quote(why, q, sizeof q));
    /* hiredis reports a socket timeout as an I/O error with strerror(EAGAIN) */
    conn->timed_out = conn->ctx->err == REDIS_ERR_IO && (strcmp(why, strerror(EAGAIN)) == 0 ||
                                                         strcmp(why, strerror(EWOULDBLOCK)) == 0);
    qr_conn_free_ctx(conn->ctx, conn->tls);
    conn->ctx = NULL;
    conn->tls = NULL;
    conn->lost = 1;
    conn->failures = 0;
    conn->next_try_ms = 0;
}

/* With no reply outstanding, anything readable on the socket is EOF or an
 * error: Redis closed it while we were idle. Reconnecting now, before a
 * command is sent, saves that command. */
void qr_conn__check_idle(qr_conn *conn)
{
    if (!conn->ctx)
        return;
    struct pollfd pfd = {.fd = conn->ctx->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
        qr_conn__drop(conn, "closed by the server while idle");
}

int qr_conn__set_timeout(qr_conn *conn, int ms)
{
    if (ms < 1)
        ms = 1;
    if (conn->timeout_ms == ms)
        return 0;
    if (redisSetTimeout(conn->ctx, qr_conn_tv(ms)) != REDIS_OK) {
        qr_conn__drop(conn, "cannot set the socket timeout");
        return -1;
    }
    conn->timeout_ms = ms;
    return 0;
}

/* One command during the handshake; 0, or a QUEUE_E* code with why set. */
static int qr_conn_handshake(redisContext *ctx, const char *what, int argc, const char **argv,
                             int want_type, redisReply **out, char *why, size_t whylen)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (!r) {
        errbuf_printf(why, whylen, "%s: %s", what, ctx->errstr);
        return QUEUE_ECONN;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        rc = qr_reply__transient(r) ? QUEUE_ECONN : QUEUE_EINVAL;
        errbuf_printf(why, whylen, "%s: %s", what, r->str);
    } else if (r->type != want_type) {
        rc = QUEUE_EBROKER;
        errbuf_printf(why, whylen, "%s: unexpected reply type %d", what, r->type);
    }
    if (rc || !out)
        freeReplyObject(r);
    else
        *out = r;
    return rc;
}

/* AUTH, SELECT, CLIENT SETNAME and CLIENT ID on a new context. */
static int qr_conn_hello(qr_conn *conn, redisContext *ctx, char *why, size_t whylen)
{
    const qr_url *u = conn->url;
    int rc = 0;
    if (u->password) {
        const char *argv[3] = {"AUTH"};
        int argc = 1;
        if (u->user)
            argv[argc++] = u->user;
        argv[argc++] = u->password;
        rc = qr_conn_handshake(ctx, "AUTH", argc, argv, REDIS_REPLY_STATUS, NULL, why, whylen);
    }
    if (!rc && u->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        const char *argv[] = {"SELECT", db};
        rc = qr_conn_handshake(ctx, "SELECT", 2, argv, REDIS_REPLY_STATUS, NULL, why, whylen);
    }
    if (!rc && conn->setname) {
        const char *argv[] = {"CLIENT", "SETNAME", conn->setname};
        rc = qr_conn_handshake(ctx, "CLIENT SETNAME", 3, argv, REDIS_REPLY_STATUS, NULL, why,
                               whylen);
    }
    if (!rc && conn->want_id) {
        redisReply *r = NULL;
        const char *argv[] = {"CLIENT", "ID"};
        rc = qr_conn_handshake(ctx, "CLIENT ID", 2, argv, REDIS_REPLY_INTEGER, &r, why, whylen);
        if (!rc) {
            conn->client_id = r->integer;
            freeReplyObject(r);
        }
    }
    return rc;
}

/* A context on a TLS session (*tls), or NULL with why and *rc. */
static redisContext *qr_conn_open_tls(qr_conn *conn, qr_relay **tls, int *rc, char *why,
                                      size_t whylen)
{
    int fd = -1;
    *rc = qr_tls__connect(conn->url, QR_CONNECT_TIMEOUT_MS, tls, &fd, why, whylen);
    if (*rc)
        return NULL;
    redisContext *ctx = redisConnectFd(fd); /* keepalive: on the TCP socket */
    if (!ctx || ctx->err) {
        errbuf_printf(why, whylen, "connect: %s", ctx ? ctx->errstr : "cannot allocate a context");
        if (!ctx)
            close(fd);
        qr_conn_free_ctx(ctx, *tls);
        *tls = NULL;
        *rc = QUEUE_ECONN;
        return NULL;
    }
    return ctx;
}

/* A connected context with the command timeout and keepalive set, or NULL
 * with why and *rc (QUEUE_ECONN; QUEUE_EINVAL for TLS configuration). */
static redisContext *qr_conn_open(qr_conn *conn, qr_relay **tls, int *rc, char *why, size_t whylen)
{
    redisContext *ctx = NULL;
    *tls = NULL;
    *rc = QUEUE_ECONN;
    if (conn->url->tls) {
        if (!(ctx = qr_conn_open_tls(conn, tls, rc, why, whylen)))
            return NULL;
    } else {
        ctx = redisConnectWithTimeout(conn->url->host, conn->url->port,
                                      qr_conn_tv(QR_CONNECT_TIMEOUT_MS));
        if (!ctx || ctx->err) {
            errbuf_printf(why, whylen, "connect: %s",
                          ctx ? ctx->errstr : "cannot allocate a context");
            qr_conn_free_ctx(ctx, NULL);
            return NULL;
        }
        redisEnableKeepAlive(ctx);
    }
    if (redisSetTimeout(ctx, qr_conn_tv(QR_CMD_TIMEOUT_MS)) != REDIS_OK) {
        errbuf_printf(why, whylen, "cannot set the socket timeout");
        qr_conn_free_ctx(ctx, *tls);
        *tls = NULL;
        return NULL;
    }
    return ctx;
}

int qr_conn__connect(qr_conn *conn, char *errbuf, size_t errlen)
{
    if (conn->ctx)
        return 0;
    int64_t now = clock_now_ms();
    if (now < conn->next_try_ms) {
        errbuf_printf(errbuf, errlen, "redis %s unreachable; next reconnect attempt in %lld ms",
                      conn->url->addr, (long long)(conn->next_try_ms - now));
        return QUEUE_ECONN;
    }
    char why[300];
    int rc;
    qr_relay *tls = NULL;
    redisContext *ctx = qr_conn_open(conn, &tls, &rc, why, sizeof why);
    if (ctx && (rc = qr_conn_hello(conn, ctx, why, sizeof why)) == 0) {
        conn->ctx = ctx;
        conn->tls = tls;
        conn->timeout_ms = QR_CMD_TIMEOUT_MS;
        if (conn->lost)
            log_info("redis reconnected", "%s", conn->logctx);
        conn->lost = 0;
        conn->failures = 0;
        conn->next_try_ms = 0;
        return 0;
    }
    char refused[300];
    int trc = ctx && tls ? qr_relay__refused(tls, refused, sizeof refused) : 0;
    if (trc) {
        errbuf_printf(why, sizeof why, "%s", refused);
        rc = trc;
    }
    qr_conn_free_ctx(ctx, tls);
    char q[300];
    int delay = backoff_reconnect_ms(conn->failures++);
    conn->next_try_ms = clock_now_ms() + delay;
    if (conn->lost)
        log_warn("redis reconnect failed", "%s attempt=%d retry_in_ms=%d err=\"%s\"", conn->logctx,
                 conn->failures, delay, log_quote(why, q, sizeof q));
    errbuf_printf(errbuf, errlen, "redis %s: %s", conn->url->addr, why);
    return rc;
}
