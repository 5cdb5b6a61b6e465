#include "http.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if MHD_VERSION < 0x00097002
typedef int http_result; /* before 0.9.71 callbacks returned int */
#else
typedef enum MHD_Result http_result;
#endif

#define HTTP_WATCH_MS 250 /* how often the watchdog looks at request heads */

/* One open connection, from libmicrohttpd's STARTED notification to its
 * CLOSED one (which comes before it closes the socket: fd stays this
 * connection's while the entry is in the list). Fields under http_server.mu. */
typedef struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    int64_t since_ms; /* the current request head began: connect, or the previous answer */
    int head_done;    /* its request head is complete */
    int cut;          /* the watchdog shut it down */
} http_conn;

struct http_server {
    struct MHD_Daemon *daemon;
    metrics *m;
    double health_timeout_s;
    char addr[INET6_ADDRSTRLEN + IF_NAMESIZE + 8]; /* numeric, for logs */
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the watchdog to stop */
    http_conn *conns;
    int stopping, watching;
    pthread_t watchdog;
    char start_err[256]; /* libmicrohttpd's last message while it starts */
    int starting;
};

/* ---- the address ---- */

/* The address text as the sockaddr to listen on, or -1 with the reason. */
static int http_addr(const char *text, int port, struct sockaddr_storage *ss, int *v6, int *any,
                     char *errbuf, size_t errlen)
{
    char a[INET6_ADDRSTRLEN + IF_NAMESIZE + 8], q[80];
    size_t n = strlen(text);
    if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
        text++;
        n -= 2;
    }
    memset(ss, 0, sizeof *ss);
    *v6 = memchr(text, ':', n) != NULL;
    int ok = n > 0 && n < sizeof a;
    if (ok) {
        memcpy(a, text, n);
        a[n] = '\0';
    }
    if (ok && !*v6) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        ok = inet_pton(AF_INET, a, &s4->sin_addr) == 1; /* dotted quads only */
        *any = ok && s4->sin_addr.s_addr == htonl(INADDR_ANY);
    } else if (ok) {
        struct addrinfo hints = {.ai_family = AF_INET6, .ai_flags = AI_NUMERICHOST}, *res = NULL;
        ok = getaddrinfo(a, NULL, &hints, &res) == 0 && res->ai_addrlen <= sizeof *ss;
        if (ok) {
            memcpy(ss, res->ai_addr, res->ai_addrlen);
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
            s6->sin6_port = htons((uint16_t)port);
            *any = !memcmp(&s6->sin6_addr, &in6addr_any, sizeof in6addr_any);
        }
        if (res)
            freeaddrinfo(res);
    }
    if (!ok) {
        errbuf_printf(errbuf, errlen,
                      "HTTP address \"%s\" (--http-text) is not an IPv4 or IPv6 address: write "
                      "one such as 0.0.0.0 (every IPv4 address), :: (every address), 127.0.0.1 "
                      "or ::1",
                      log_quote(text, q, sizeof q));
        return -1;
    }
    return 0;
}

/* Is a specific address one of this machine's? A bind to it on an ephemeral
 * port says, before libmicrohttpd binds the real one. 0, or -1 with why. */
static int http_addr_local(const struct sockaddr_storage *ss, int v6, const char *shown,
                           char *errbuf, size_t errlen)
{
    struct sockaddr_storage probe = *ss;
    socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (v6)
        ((struct sockaddr_in6 *)&probe)->sin6_port = 0;
    else
        ((struct sockaddr_in *)&probe)->sin_port = 0;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0; /* libmicrohttpd will say why */
    int rc = bind(fd, (struct sockaddr *)&probe, len), e = errno;
    close(fd);
    if (rc == 0 || e != EADDRNOTAVAIL)
        return 0;
    errbuf_printf(errbuf, errlen,
                  "cannot serve HTTP on %s: it is not an address of this machine (--http-bind: "
                  "one of its addresses, 0.0.0.0 or ::)",
                  shown);
    return -1;
}

/* ---- connections and the request-head deadline ---- */

static http_conn *http_conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void http_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    http_server *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        http_conn *c = mem_calloc(1, sizeof *c);
        c->fd = ci ? ci->connect_fd : -1;
        c->since_ms = clock_now_ms();
        pthread_mutex_lock(&h->mu);
        c->next = h->conns;
        if (h->conns)
            h->conns->prev = c;
        h->conns = c;
        pthread_mutex_unlock(&h->mu);
        *socket_context = c;
        return;
    }
    http_conn *c = *socket_context;
    if (toe != MHD_CONNECTION_NOTIFY_CLOSED || !c)
        return;
    pthread_mutex_lock(&h->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&h->mu);
    mem_free(c);
    *socket_context = NULL;
}

/* A request ended: the next one on the connection has its own deadline. */
static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)con_cls;
    (void)toe;
    http_server *h = cls;
    http_conn *c = http_conn_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&h->mu);
    c->head_done = 0;
    c->since_ms = clock_now_ms();
    pthread_mutex_unlock(&h->mu);
}

static void http_head_done(http_server *h, struct MHD_Connection *conn)
{
    http_conn *c = http_conn_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&h->mu);
    c->head_done = 1;
    pthread_mutex_unlock(&h->mu);
}

/* Shuts down the connections whose request head is late. libmicrohttpd then
 * reads the end of the stream and closes them itself; the socket is not
 * closed here, and cannot be another one meanwhile (the CLOSED notification
 * waits for mu). */
static void *http_watch(void *arg)
{
    http_server *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        int64_t now = clock_now_ms();
        int cut = 0;
        for (http_conn *c = h->conns; c; c = c->next) {
            if (c->head_done || c->cut || c->fd < 0 || now - c->since_ms <= HTTP_HEAD_MS)
                continue;
            shutdown(c->fd, SHUT_RDWR);
            c->cut = 1;
            cut++;
        }
        if (cut)
            log_debug("http: closed connections whose request head was not complete in time",
                      "connections=%d head_timeout_ms=%d", cut, HTTP_HEAD_MS);
        struct timespec ts = clock_after_ms(HTTP_WATCH_MS);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- requests ---- */

/* Queues a response; body is copied (MHD_RESPMEM_MUST_COPY). */
static http_result http_reply(struct MHD_Connection *conn, unsigned status, const char *type,
                              const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    http_result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static http_result http_answer(http_server *h, struct MHD_Connection *conn, const char *url,
                               const char *method)
{
    static const char text[] = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return http_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, "method not allowed\n");
    if (!strcmp(url, "/healthz")) {
        char reason[256], body[300];
        if (metrics_healthy(h->m, h->health_timeout_s, reason, sizeof reason))
            return http_reply(conn, MHD_HTTP_OK, text, "ok\n");
        snprintf(body, sizeof body, "unhealthy: %s\n", reason);
        return http_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text, body);
    }
    if (!strcmp(url, "/metrics")) {
        char *metrics_text = metrics_render(h->m);
        http_result ret =
            http_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", metrics_text);
        mem_free(metrics_text);
        return ret;
    }
    return http_reply(conn, MHD_HTTP_NOT_FOUND, text, "not found (try /healthz or /metrics)\n");
}

/* Does the request announce a body? */
static int http_has_body(struct MHD_Connection *conn)
{
    const char *len =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) !=
               NULL ||
           (len && strcmp(len, "0") != 0);
}

/* The first call comes with the request head; a request without a body is
 * answered at the second, so its connection may stay open for the next one.
 * One with a body, or a method we do not serve, is answered at once:
 * libmicrohttpd then reads no body and closes the connection. */
static http_result http_handle(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    http_server *h = cls;
    if (*con_cls == NULL) {
        *con_cls = h;
        http_head_done(h, conn);
        if ((strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) || http_has_body(conn))
            return http_answer(h, conn, url, method);
        return MHD_YES;
    }
    if (*upload_data_size) { /* not expected: a body was answered at once */
        *upload_data_size = 0;
        return MHD_YES;
    }
    return http_answer(h, conn, url, method);
}

/* ---- the server ---- */

/* libmicrohttpd's messages: while it starts, the reason it fails; then
 * debug lines (nearly all are about clients: a client must not fill the
 * log). */
static void http_log(void *cls, const char *fm, va_list ap)
{
    http_server *h = cls;
    char line[256], q[300];
    vsnprintf(line, sizeof line, fm, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    pthread_mutex_lock(&h->mu);
    if (h->starting)
        snprintf(h->start_err, sizeof h->start_err, "%s", line);
    pthread_mutex_unlock(&h->mu);
    log_debug("libmicrohttpd", "addr=%s port=%d what=\"%s\"", h->addr, h->port,
              log_quote(line, q, sizeof q));
}

static struct MHD_Daemon *http_daemon_start(http_server *h, const struct sockaddr_storage *ss,
                                            int v6, int any)
{
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= any ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    return MHD_start_daemon(
        flags, (uint16_t)h->port, NULL, NULL, http_handle, h, MHD_OPTION_EXTERNAL_LOGGER, http_log,
        h, MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)HTTP_THREADS, MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_IDLE_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY,
        MHD_OPTION_NOTIFY_CONNECTION, http_notify, h, MHD_OPTION_NOTIFY_COMPLETED, http_completed,
        h, MHD_OPTION_END);
}

static http_server *http_new(const char *addr, int port, metrics *m, double health_timeout_s)
{
    http_server *h = mem_calloc(1, sizeof *h);
    h->m = m;
    h->health_timeout_s = health_timeout_s;
    h->port = port;
    snprintf(h->addr, sizeof h->addr, "%s", addr);
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    return h;
}

static void http_free(http_server *h)
{
    while (h->conns) { /* none once the daemon stopped; none before it started */
        http_conn *c = h->conns;
        h->conns = c->next;
        mem_free(c);
    }
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    mem_free(h);
}

int http_start(const char *bind_addr, int port, metrics *m, double health_timeout_s,
               http_server **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    if (!bind_addr || !*bind_addr)
        bind_addr = HTTP_BIND_DEFAULT;
    struct sockaddr_storage ss;
    int v6 = 0, any = 0;
    if (http_addr(bind_addr, port, &ss, &v6, &any, errbuf, errlen))
        return -1;
    char addr[INET6_ADDRSTRLEN + IF_NAMESIZE + 8], shown[sizeof addr + 16];
    if (getnameinfo((struct sockaddr *)&ss,
                    v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in), addr,
                    sizeof addr, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(addr, sizeof addr, "?");
    snprintf(shown, sizeof shown, v6 ? "[%s]:%d" : "%s:%d", addr, port);
    if (!any && http_addr_local(&ss, v6, shown, errbuf, errlen))
        return -1;
    http_server *h = http_new(addr, port, m, health_timeout_s);
    pthread_mutex_lock(&h->mu);
    h->starting = 1;
    pthread_mutex_unlock(&h->mu);
    h->daemon = http_daemon_start(h, &ss, v6, any);
    pthread_mutex_lock(&h->mu);
    h->starting = 0;
    pthread_mutex_unlock(&h->mu);
    if (!h->daemon) {
        errbuf_printf(errbuf, errlen, "cannot serve HTTP on %s: %s", shown,
                      h->start_err[0] ? h->start_err : "libmicrohttpd refused to start");
        http_free(h);
        return -1;
    }
    if (pthread_create(&h->watchdog, NULL, http_watch, h) == 0)
        h->watching = 1;
    else
        log_warn("http: no watchdog thread: slow request heads are only cut by the idle timeout",
                 "addr=%s port=%d idle_timeout_s=%d", addr, port, HTTP_IDLE_S);
    log_info("serving /healthz and /metrics",
             "addr=%s port=%d connections=%d per_ip=%d head_timeout_ms=%d idle_timeout_s=%d", addr,
             port, HTTP_CONNECTIONS, HTTP_PER_IP, HTTP_HEAD_MS, HTTP_IDLE_S);
    *out = h;
    return 0;
}

void http_stop(http_server *h)
{
    if (!h)
        return;
    if (h->watching) {
        pthread_mutex_lock(&h->mu);
        h->stopping = 1;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->watchdog, NULL);
    }
    MHD_stop_daemon(h->daemon);
    http_free(h);
}
