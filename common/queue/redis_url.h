/* redis_url — redis:// broker URLs (internal to common/queue/).
 *
 * redis://[[user]:password@]host[:port][/db]; port 6379 and db 0 by default,
 * an IPv6 host in brackets, user and password may be percent-encoded (an
 * '@' in a password must be: the userinfo ends at the last '@'). */
#ifndef DAGQ_REDIS_URL_H
#define DAGQ_REDIS_URL_H

#include <stddef.h>

typedef struct qr_url {
    char *host;
    int port;
    int db;
    char *user;     /* NULL: AUTH with the password alone */
    char *password; /* NULL: no AUTH; zeroed before it is freed */
    char *addr;     /* "host:port" ("[v6]:port"), for logs and errors */
} qr_url;

/* Fills *u from url: 0, or QUEUE_EINVAL with the reason in errbuf (which
 * shows the URL with its password redacted). On 0 free with qr_url__clear. */
int qr_url__parse(const char *url, qr_url *u, char *errbuf, size_t errlen);

/* Frees what *u holds and zeroes it; a zeroed qr_url does nothing. */
void qr_url__clear(qr_url *u);

/* queue__ops.url_check: parses and forgets. */
int qr_url__check(const char *url, char *errbuf, size_t errlen);

#endif
