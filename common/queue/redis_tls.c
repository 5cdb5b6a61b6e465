#include "redis_tls.h"

#include "clock.h"
#include "errbuf.h"
#include "mem.h"
#include "queue.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QR_TLS_BUF 16384 /* one TLS record */

struct qr_tls {
    SSL *ssl;
    int tcp;  /* to Redis */
    int side; /* our end of the socketpair; hiredis has the other */
    pthread_t relay;
    int started;
    int client_cert;    /* we sent one */
    pthread_mutex_t mu; /* guards the fields below, set by the relay */
    int replied;        /* bytes came from the server */
    int ended;          /* the session ended: alert, early, or later */
    int alert;          /* ... with a TLS alert from the server */
    char err[256];      /* ... how */
};

/* OpenSSL's last error as words (or fallback). */
static const char *qr_tls_err(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        errbuf_printf(buf, len, "%s", fallback);
    ERR_clear_error();
    return buf;
}

/* A client context for u: 0, or QUEUE_EINVAL with why. */
static int qr_tls_ctx(const qr_url *u, SSL_CTX **out, char *why, size_t whylen)
{
    char e[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    *out = NULL;
    if (!ctx) {
        errbuf_printf(why, whylen, "TLS: %s", qr_tls_err(e, sizeof e, "cannot make a context"));
        return QUEUE_EINVAL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    const char *what = NULL, *file = NULL;
    if (u->tls_ca && !SSL_CTX_load_verify_locations(ctx, u->tls_ca, NULL))
        what = "cannot load the CA file (tls-ca)", file = u->tls_ca;
    else if (!u->tls_ca && !SSL_CTX_set_default_verify_paths(ctx))
        what = "cannot load the system's CA certificates", file = "";
    else if (u->tls_cert && !SSL_CTX_use_certificate_chain_file(ctx, u->tls_cert))
        what = "cannot load the client certificate (tls-cert)", file = u->tls_cert;
    else if (u->tls_key && !SSL_CTX_use_PrivateKey_file(ctx, u->tls_key, SSL_FILETYPE_PEM))
        what = "cannot load the client key (tls-key)", file = u->tls_key;
    else if (u->tls_key && !SSL_CTX_check_private_key(ctx))
        what = "the client key does not match the certificate (tls-key)", file = u->tls_key;
    if (what) {
        errbuf_printf(why, whylen, "TLS: %s %s: %s", what, file,
                      qr_tls_err(e, sizeof e, "unknown error"));
        SSL_CTX_free(ctx);
        return QUEUE_EINVAL;
    }
    *out = ctx;
    return 0;
}

/* Waits until fd is ready for events or the deadline: 1 ready, 0 timed out. */
static int qr_tls_wait(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - clock_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return 1; /* the next call on fd reports the error */
    }
}

/* A non-blocking socket connected to one of addr's addresses. */
static int qr_tls_tcp_one(const struct addrinfo *a, int64_t deadline, int *err)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
        socklen_t sl = sizeof *err;
        *err = ETIMEDOUT;
        if (qr_tls_wait(fd, POLLOUT, deadline) &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &sl) == 0 && *err == 0)
            rc = 0;
    } else if (rc < 0) {
        *err = errno;
    }
    if (rc < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* A TCP connection to host:port: the socket, or -1 with why. */
static int qr_tls_tcp(const char *host, int port, int64_t deadline, char *why, size_t whylen)
{
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(host, ports, &hints, &res);
    if (gai) {
        errbuf_printf(why, whylen, "connect: %s", gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (const struct addrinfo *a = res; a && fd < 0; a = a->ai_next)
        fd = qr_tls_tcp_one(a, deadline, &err);
    freeaddrinfo(res);
    if (fd < 0)
        errbuf_printf(why, whylen, "connect: %s", strerror(err));
    return fd;
}

/* The name the server's certificate must carry, and SNI for a DNS name. */
static int qr_tls_name(SSL *ssl, const qr_url *u)
{
    const char *name = u->tls_server_name ? u->tls_server_name : u->host;
    unsigned char ip[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    return SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
}

/* Why a handshake failed, and whether it is configuration (QUEUE_EINVAL) or
 * the network (QUEUE_ECONN). */
static int qr_tls_failed(SSL *ssl, int sslerr, char *why, size_t whylen)
{
    char e[256];
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        errbuf_printf(why, whylen,
                      "TLS: the server's certificate is not accepted: %s (check tls-ca and "
                      "tls-server-name)",
                      X509_verify_cert_error_string(v));
        ERR_clear_error();
        return QUEUE_EINVAL;
    }
    if (sslerr == SSL_ERROR_SSL) {
        errbuf_printf(why, whylen, "TLS handshake failed: %s",
                      qr_tls_err(e, sizeof e, "protocol error"));
        return QUEUE_EINVAL;
    }
    errbuf_printf(why, whylen, "TLS handshake failed: %s",
                  qr_tls_err(e, sizeof e, errno ? strerror(errno) : "connection closed"));
    return QUEUE_ECONN;
}

static int qr_tls_handshake(SSL *ssl, int fd, int64_t deadline, char *why, size_t whylen)
{
    for (;;) {
        errno = 0;
        int r = SSL_connect(ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return qr_tls_failed(ssl, e, why, whylen);
        if (!qr_tls_wait(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
            errbuf_printf(why, whylen, "TLS handshake: timed out");
            return QUEUE_ECONN;
        }
    }
}

/* One direction's bytes in flight: b[off..len) still to be written. */
typedef struct qr_tls_buf {
    char b[QR_TLS_BUF];
    size_t off, len;
} qr_tls_buf;

/* The end of the session: what OpenSSL said, and whether it was an alert
 * the server sent (its reason codes start at SSL_AD_REASON_OFFSET). */
static void qr_tls_ended(qr_tls *t, int sslerr)
{
    unsigned long e = ERR_peek_last_error();
    pthread_mutex_lock(&t->mu);
    if (!t->ended) {
        t->ended = 1;
        if (e)
            ERR_error_string_n(e, t->err, sizeof t->err);
        else
            errbuf_printf(t->err, sizeof t->err, "%s",
                          sslerr == SSL_ERROR_SYSCALL && errno ? strerror(errno)
                                                               : "connection closed");
        t->alert = e && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET;
    }
    pthread_mutex_unlock(&t->mu);
    ERR_clear_error();
}

/* An SSL_read or SSL_write result: 1 progress, 0 wait (*tcp says for what),
 * -1 the session is over. */
static int qr_tls_ssl(qr_tls *t, int r, short *tcp)
{
    if (r > 0)
        return 1;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        *tcp |= POLLIN;
    else if (e == SSL_ERROR_WANT_WRITE)
        *tcp |= POLLOUT;
    else {
        qr_tls_ended(t, e);
        return -1;
    }
    return 0;
}

/* A read or send on the socketpair: 1 progress, 0 wait, -1 closed. */
static int qr_tls_sys(ssize_t n)
{
    if (n > 0)
        return 1;
    return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
}

/* Moves what it can in both directions without waiting: 1 when something
 * moved, 0 when it must wait (*tcp: for what on the TCP socket), -1 when
 * either side is gone. up: hiredis to Redis; down: Redis to hiredis. */
static int qr_tls_step(qr_tls *t, qr_tls_buf *up, qr_tls_buf *down, short *tcp)
{
    int moved = 0, r;
    *tcp = 0;
    if (!up->len) {
        ssize_t n = read(t->side, up->b, sizeof up->b);
        if ((r = qr_tls_sys(n)) < 0)
            return -1;
        if (r)
            up->off = 0, up->len = (size_t)n, moved = 1;
    }
    if (up->len) {
        int n = SSL_write(t->ssl, up->b + up->off, (int)(up->len - up->off));
        if ((r = qr_tls_ssl(t, n, tcp)) < 0)
            return -1;
        if (r && (up->off += (size_t)n) == up->len)
            up->len = 0;
        moved |= r;
    }
    if (!down->len) {
        int n = SSL_read(t->ssl, down->b, sizeof down->b);
        if ((r = qr_tls_ssl(t, n, tcp)) < 0)
            return -1;
        if (r && !down->len) {
            pthread_mutex_lock(&t->mu);
            t->replied = 1;
            pthread_mutex_unlock(&t->mu);
        }
        if (r)
            down->off = 0, down->len = (size_t)n, moved = 1;
    }
    if (down->len) {
        ssize_t n = send(t->side, down->b + down->off, down->len - down->off, MSG_NOSIGNAL);
        if ((r = qr_tls_sys(n)) < 0)
            return -1;
        if (r && (down->off += (size_t)n) == down->len)
            down->len = 0;
        moved |= r;
    }
    return moved;
}

/* The relay thread: until either side is gone, then hiredis's side gets
 * EOF. */
static void *qr_tls_relay(void *arg)
{
    qr_tls *t = arg;
    qr_tls_buf *up = mem_alloc(sizeof *up), *down = mem_alloc(sizeof *down);
    up->len = down->len = 0;
    for (;;) {
        short tcp = 0;
        int r = qr_tls_step(t, up, down, &tcp);
        if (r < 0)
            break;
        if (r > 0)
            continue;
        struct pollfd p[2] = {
            {.fd = t->side, .events = (short)((up->len ? 0 : POLLIN) | (down->len ? POLLOUT : 0))},
            {.fd = t->tcp, .events = tcp}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if ((p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) && !(p[0].revents & POLLIN))
            break; /* hiredis's side is closed */
    }
    shutdown(t->side, SHUT_RDWR);
    mem_free(up);
    mem_free(down);
    return NULL;
}

/* The socketpair and the relay thread, started with every signal blocked. */
static int qr_tls_start(qr_tls *t, int *fd, char *why, size_t whylen)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        errbuf_printf(why, whylen, "TLS: socketpair: %s", strerror(errno));
        return QUEUE_ECONN;
    }
    t->side = sv[1];
    fcntl(t->side, F_SETFL, fcntl(t->side, F_GETFL) | O_NONBLOCK);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&t->relay, NULL, qr_tls_relay, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        close(sv[0]);
        errbuf_printf(why, whylen, "TLS: cannot start the relay thread: %s", strerror(rc));
        return QUEUE_ECONN;
    }
    t->started = 1;
    *fd = sv[0];
    return 0;
}

int qr_tls__refused(qr_tls *t, char *buf, size_t len)
{
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    if (t->ended && t->alert) {
        errbuf_printf(buf, len, "TLS: the server refused the session: %s", t->err);
        rc = QUEUE_EINVAL;
    } else if (t->ended && !t->replied) {
        errbuf_printf(
            buf, len, "TLS: the server ended the session before it replied (%s)%s", t->err,
            t->client_cert ? "" : "; does it want a client certificate (tls-cert, tls-key)?");
        rc = QUEUE_ECONN;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void qr_tls__free(qr_tls *t)
{
    if (!t)
        return;
    if (t->started) {
        shutdown(t->tcp, SHUT_RDWR); /* in case the relay waits on Redis */
        pthread_join(t->relay, NULL);
    }
    if (t->ssl)
        SSL_free(t->ssl);
    if (t->tcp >= 0)
        close(t->tcp);
    if (t->side >= 0)
        close(t->side);
    pthread_mutex_destroy(&t->mu);
    mem_free(t);
}

int qr_tls__connect(const qr_url *u, int timeout_ms, qr_tls **out, int *fd, char *why,
                    size_t whylen)
{
    int64_t deadline = clock_now_ms() + timeout_ms;
    *out = NULL;
    SSL_CTX *ctx;
    int rc = qr_tls_ctx(u, &ctx, why, whylen);
    if (rc)
        return rc;
    qr_tls *t = mem_calloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->side = -1;
    t->client_cert = u->tls_cert != NULL;
    t->tcp = qr_tls_tcp(u->host, u->port, deadline, why, whylen);
    rc = t->tcp < 0 ? QUEUE_ECONN : 0;
    if (!rc) {
        t->ssl = SSL_new(ctx);
        if (!t->ssl || !SSL_set_fd(t->ssl, t->tcp) || !qr_tls_name(t->ssl, u)) {
            errbuf_printf(why, whylen, "TLS: cannot set up the session");
            rc = QUEUE_EINVAL;
        }
    }
    SSL_CTX_free(ctx); /* the session holds a reference */
    if (!rc)
        rc = qr_tls_handshake(t->ssl, t->tcp, deadline, why, whylen);
    if (!rc)
        rc = qr_tls_start(t, fd, why, whylen);
    if (rc) {
        qr_tls__free(t);
        return rc;
    }
    *out = t;
    return 0;
}
