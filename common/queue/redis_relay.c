#include "redis_relay.h"

#include "errbuf.h"
#include "mem.h"
#include "queue.h"

#include <openssl/err.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QR_RELAY_BUF 16384 /* one TLS record */

struct qr_relay {
    SSL *ssl;
    int tcp;  /* to Redis */
    int side; /* our end of the socketpair; hiredis has the other */
    pthread_t thread;
    int started;
    int client_cert;    /* we sent one */
    pthread_mutex_t mu; /* guards the fields below, set by the thread */
    int replied;        /* bytes came from the server */
    int ended;          /* the session ended: alert, early, or later */
    int alert;          /* ... with a TLS alert from the server */
    char err[256];      /* ... how */
};

/* One direction's bytes in flight: b[off..len) still to be written. */
typedef struct qr_relay_buf {
    char b[QR_RELAY_BUF];
    size_t off, len;
} qr_relay_buf;

/* The end of the session: what OpenSSL said, and whether it was an alert
 * the server sent (its reason codes start at SSL_AD_REASON_OFFSET). */
static void qr_relay_ended(qr_relay *t, int sslerr)
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
static int qr_relay_ssl(qr_relay *t, int r, short *tcp)
{
    if (r > 0)
        return 1;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        *tcp |= POLLIN;
    else if (e == SSL_ERROR_WANT_WRITE)
        *tcp |= POLLOUT;
    else {
        qr_relay_ended(t, e);
        return -1;
    }
    return 0;
}

/* A read or send on the socketpair: 1 progress, 0 wait, -1 closed. */
static int qr_relay_sys(ssize_t n)
{
    if (n > 0)
        return 1;
    return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
}

/* Moves what it can in both directions without waiting: 1 when something
 * moved, 0 when it must wait (*tcp: for what on the TCP socket), -1 when
 * either side is gone. up: hiredis to Redis; down: Redis to hiredis. */
static int qr_relay_step(qr_relay *t, qr_relay_buf *up, qr_relay_buf *down, short *tcp)
{
    int moved = 0, r;
    *tcp = 0;
    if (!up->len) {
        ssize_t n = read(t->side, up->b, sizeof up->b);
        if ((r = qr_relay_sys(n)) < 0)
            return -1;
        if (r)
            up->off = 0, up->len = (size_t)n, moved = 1;
    }
    if (up->len) {
        int n = SSL_write(t->ssl, up->b + up->off, (int)(up->len - up->off));
        if ((r = qr_relay_ssl(t, n, tcp)) < 0)
            return -1;
        if (r && (up->off += (size_t)n) == up->len)
            up->len = 0;
        moved |= r;
    }
    if (!down->len) {
        int n = SSL_read(t->ssl, down->b, sizeof down->b);
        if ((r = qr_relay_ssl(t, n, tcp)) < 0)
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
        if ((r = qr_relay_sys(n)) < 0)
            return -1;
        if (r && (down->off += (size_t)n) == down->len)
            down->len = 0;
        moved |= r;
    }
    return moved;
}

/* The relay thread: until either side is gone, then hiredis's side gets
 * EOF. */
static void *qr_relay_run(void *arg)
{
    qr_relay *t = arg;
    qr_relay_buf *up = mem_alloc(sizeof *up), *down = mem_alloc(sizeof *down);
    up->len = down->len = 0;
    for (;;) {
        short tcp = 0;
        int r = qr_relay_step(t, up, down, &tcp);
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
static int qr_relay_start_thread(qr_relay *t, int *fd, char *why, size_t whylen)
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
    int rc = pthread_create(&t->thread, NULL, qr_relay_run, t);
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

int qr_relay__refused(qr_relay *t, char *buf, size_t len)
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

void qr_relay__free(qr_relay *t)
{
    if (!t)
        return;
    if (t->started) {
        shutdown(t->tcp, SHUT_RDWR); /* in case the relay waits on Redis */
        pthread_join(t->thread, NULL);
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

int qr_relay__start(SSL *ssl, int tcp, int client_cert, qr_relay **out, int *fd, char *why,
                    size_t whylen)
{
    qr_relay *t = mem_calloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->ssl = ssl;
    t->tcp = tcp;
    t->side = -1;
    t->client_cert = client_cert;
    int rc = qr_relay_start_thread(t, fd, why, whylen);
    if (rc) {
        qr_relay__free(t);
        return rc;
    }
    *out = t;
    return 0;
}
