/* http — the daemons' operator endpoints, served by libmicrohttpd:
 *
 *   GET /healthz  200 "ok", or 503 with the reason when PostgreSQL or the
 *                 broker has been unreachable for longer than health_timeout_s
 *   GET /metrics  the registry in Prometheus text format
 *
 * Anything else is 404; methods other than GET and HEAD are 405, answered
 * before any body is read (the connection is then closed).
 *
 * Made to keep answering /healthz while clients misbehave (slow, idle,
 * malformed or too many), so a probe is never starved by them:
 *
 *   - libmicrohttpd's own threads (a pool of HTTP_THREADS, epoll), never the
 *     daemon's main loop, and non-blocking sockets: a stuck connection holds
 *     no thread;
 *   - at most HTTP_CONNECTIONS connections at once, HTTP_PER_IP of them from
 *     one client address (the rest are closed as they are accepted);
 *   - a connection silent for HTTP_IDLE_S seconds is closed, and one whose
 *     request head (request line and headers) is not complete
 *     HTTP_HEAD_MS after it opened, or after its previous answer, is shut
 *     down (slow-loris: libmicrohttpd's own timeout restarts with every byte,
 *     so a watchdog thread of ours keeps that deadline);
 *   - a request head larger than HTTP_MEMORY bytes is answered 431 (414 for
 *     the URL), a malformed one 400, by libmicrohttpd; a request body is
 *     never read (the answer comes first, then the connection is closed).
 *
 * libmicrohttpd's own messages (about clients, almost all) are logged at
 * debug level, so a client cannot fill the log. */
#ifndef DAGQ_HTTP_H
#define DAGQ_HTTP_H

#include "metrics.h"

#include <stddef.h>

#define HTTP_THREADS 2
#define HTTP_CONNECTIONS 256
#define HTTP_PER_IP 16
#define HTTP_IDLE_S 10
#define HTTP_HEAD_MS 5000
#define HTTP_MEMORY (32 * 1024)

/* What --http-bind means when it is not given: every IPv4 address (what a
 * container needs, for probes and scrapes from outside it). */
#define HTTP_BIND_DEFAULT "0.0.0.0"

typedef struct http_server http_server; /* opaque */

/* Listens on bind_addr, a numeric IPv4 or IPv6 address (brackets allowed around
 * IPv6, "[::1]", and a scope, "fe80::1%eth0"; "::" is every IPv6 and IPv4
 * address; NULL or "": HTTP_BIND_DEFAULT) and port. m is borrowed: it must
 * outlive the server. Returns 0 and *out, or -1 with the reason in errbuf
 * (naming the address and port: not an address of this machine, in use, not
 * permitted, ...) and *out NULL. */
int http_start(const char *bind_addr, int port, metrics *m, double health_timeout_s,
               http_server **out, char *errbuf, size_t errlen);

/* Stops the server's threads, closes its sockets and frees. NULL does
 * nothing. */
void http_stop(http_server *h);

#endif
