/* server — dagq-web's HTTP side, on libmicrohttpd: a pool of threads that
 * poll the connections (a slow or idle client holds a connection slot, never
 * a thread: its request is handled only once it has arrived whole), per
 * connection a timeout, per client address a connection limit, a limit on
 * request bodies (413 past it), and for each request:
 *
 *   /api/v1/...   the route (web/routes.c); unless the route is public, the
 *                 token of `Authorization: Bearer` looked up through
 *                 dagq.token_authenticate (401 without a valid one), then
 *                 BEGIN, SET LOCAL ROLE to the token's role, the handler,
 *                 COMMIT (ROLLBACK on an error); every write is recorded
 *                 with dagq.audit_write, in the same transaction when it
 *                 succeeded, after the rollback when it did not
 *   / and /static/NAME  the UI's files, embedded at build time (web/ui/)
 *
 * No cookie is read or set: the UI sends the token in a header, so a page
 * of another site cannot make a request in its name (no CSRF). */
#ifndef DAGQ_SERVER_H
#define DAGQ_SERVER_H

#include "pool.h"

#include <stddef.h>

typedef struct server_conf {
    const char *bind;     /* address to listen on; NULL or "": all */
    int port;             /* 0: any (see server_port) */
    const char *base_url; /* the public URL; its path is a prefix the server strips */
    int threads;          /* polling threads; each uses at most one connection of pool */
    int per_ip_limit;     /* connections at once from one address */
    int max_connections;  /* in all */
    int timeout_s;        /* an idle connection is closed after this */
    size_t max_body;      /* bytes */
    int statement_timeout_ms;
    pool *pool; /* borrowed; at least `threads` connections */
} server_conf;

typedef struct server server; /* opaque */

/* Starts serving. c is copied (its strings too). Returns 0 and *out, or -1
 * with the reason in errbuf. */
int server_start(const server_conf *c, server **out, char *errbuf, size_t errlen);
/* The port it listens on. */
int server_port(const server *s);
/* Stops the threads, closes the socket, frees. NULL does nothing. */
void server_stop(server *s);

#endif
