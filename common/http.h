/* http — the daemons' operator endpoints, served by libmicrohttpd on its own
 * thread (MHD_USE_INTERNAL_POLLING_THREAD), so a slow scrape never stalls the
 * single-threaded main loops:
 *
 *   GET /healthz  200 "ok", or 503 with the reason when PostgreSQL or the
 *                 broker has been unreachable for longer than health_timeout_s
 *   GET /metrics  the registry in Prometheus text format
 *
 * Anything else is 404; methods other than GET and HEAD are 405. */
#ifndef DAGQ_HTTP_H
#define DAGQ_HTTP_H

#include "metrics.h"

#include <stddef.h>

typedef struct http_server http_server; /* opaque */

/* Listens on port (all addresses). m is borrowed: it must outlive the
 * server. Returns 0 and *out, or -1 with the reason in errbuf. */
int http_start(int port, metrics *m, double health_timeout_s, http_server **out, char *errbuf,
               size_t errlen);

/* Stops the server thread, closes the socket and frees. NULL does nothing. */
void http_stop(http_server *h);

#endif
