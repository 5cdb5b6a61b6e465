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
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

int qr_tls__connect(const qr_url *u, int timeout_ms, qr_relay **out, int *fd, char *why,
                    size_t whylen)
{
    int64_t deadline = clock_now_ms() + timeout_ms;
    *out = NULL;
    SSL_CTX *ctx;
    int rc = qr_tls_ctx(u, &ctx, why, whylen);
    if (rc)
        return rc;
    SSL *ssl = NULL;
    int tcp = qr_tls_tcp(u->host, u->port, deadline, why, whylen);
    rc = tcp < 0 ? QUEUE_ECONN : 0;
    if (!rc) {
        ssl = SSL_new(ctx);
        if (!ssl || !SSL_set_fd(ssl, tcp) || !qr_tls_name(ssl, u)) {
            errbuf_printf(why, whylen, "TLS: cannot set up the session");
            rc = QUEUE_EINVAL;
        }
    }
    SSL_CTX_free(ctx); /* the session holds a reference */
    if (!rc)
        rc = qr_tls_handshake(ssl, tcp, deadline, why, whylen);
    if (!rc) /* ssl and tcp are the relay's now, even when it fails */
        return qr_relay__start(ssl, tcp, u->tls_cert != NULL, out, fd, why, whylen);
    if (ssl)
        SSL_free(ssl);
    if (tcp >= 0)
        close(tcp);
    return rc;
}
