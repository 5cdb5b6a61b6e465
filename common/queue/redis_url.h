/* redis_url — redis:// and rediss:// broker URLs (internal to common/queue/).
 *
 *   redis://[[user]:password@]host[:port][/db]
 *   rediss://[[user]:password@]host[:port][/db][?tls-ca=FILE&tls-cert=FILE
 *            &tls-key=FILE&tls-server-name=NAME]
 * Port 6379 and db 0 by default, an IPv6 host in brackets; user, password
 * and parameter values may be percent-encoded, and '@', '?' and '#' in a
 * password must be. rediss:// is TLS (redis_tls.h); a parameter the URL does
 * not give is taken from queue_conf (--redis-tls-ca ...). */
#ifndef DAGQ_REDIS_URL_H
#define DAGQ_REDIS_URL_H

#include "queue.h"

#include <stddef.h>

typedef struct qr_url {
    char *host;
    int port;
    int db;
    char *user;                        /* NULL: AUTH with the password alone */
    char *password;                    /* NULL: no AUTH; zeroed before it is freed */
    char *addr;                        /* "host:port" ("[v6]:port"), for logs and errors */
    int tls;                           /* rediss:// */
    char *tls_ca, *tls_cert, *tls_key; /* files, or NULL */
    char *tls_server_name;             /* NULL: host */
} qr_url;

/* Fills *u from url, with the TLS files conf gives where the URL gives none
 * (conf may be NULL): 0, or QUEUE_EINVAL with the reason in errbuf (which
 * shows the URL with its password redacted). On 0 free with qr_url__clear. */
int qr_url__parse(const char *url, const queue_conf *conf, qr_url *u, char *errbuf, size_t errlen);

/* Frees what *u holds and zeroes it; a zeroed qr_url does nothing. */
void qr_url__clear(qr_url *u);

/* queue__ops.url_check: parses and forgets. */
int qr_url__check(const char *url, char *errbuf, size_t errlen);

#endif
