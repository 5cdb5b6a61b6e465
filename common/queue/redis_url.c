#include "redis_url.h"

#include "errbuf.h"
#include "mem.h"
#include "queue.h"
#include "queue_url.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

#define QR_URL_FORM "redis[s]://[[user]:password@]host:port[/db]"
#define QR_URL_DEFAULT_PORT 6379

void qr_url__clear(qr_url *u)
{
    mem_free(u->host);
    mem_free(u->user);
    if (u->password)
        memset(u->password, 0, strlen(u->password));
    mem_free(u->password);
    mem_free(u->addr);
    mem_free(u->tls_ca);
    mem_free(u->tls_cert);
    mem_free(u->tls_key);
    mem_free(u->tls_server_name);
    memset(u, 0, sizeof *u);
}

/* [user]:password in s[0..n): 0, or -1 with why. */
static int qr_url_credentials(const char *s, size_t n, qr_url *u, char *why, size_t whylen)
{
    const char *colon = memchr(s, ':', n);
    if (!colon) {
        errbuf_printf(why, whylen, "credentials must be :password@ or user:password@");
        return -1;
    }
    if (colon + 1 == s + n) {
        errbuf_printf(why, whylen, "the password is empty");
        return -1;
    }
    if (colon > s)
        u->user = queue_url__pct_decode(s, (size_t)(colon - s));
    u->password = queue_url__pct_decode(colon + 1, (size_t)(s + n - colon - 1));
    if (!u->password || (colon > s && !u->user)) {
        errbuf_printf(why, whylen, "bad %%-escape in the credentials");
        return -1;
    }
    return 0;
}

/* The authority and path after the scheme, rest[0..end): 0, or -1 with why. */
static int qr_url_split(const char *rest, const char *end, qr_url *u, char *why, size_t whylen)
{
    const char *at = NULL, *hp = rest;
    for (const char *p = rest; p < end; p++)
        if (*p == '@')
            at = p;
    if (at) {
        if (qr_url_credentials(rest, (size_t)(at - rest), u, why, whylen))
            return -1;
        hp = at + 1;
    }
    const char *slash = memchr(hp, '/', (size_t)(end - hp));
    const char *hend = slash ? slash : end;
    if (queue_url__hostport(hp, (size_t)(hend - hp), QR_URL_DEFAULT_PORT, &u->host, &u->port, why,
                            whylen))
        return -1;
    long db = 0;
    if (slash && slash + 1 < end &&
        queue_url__int(slash + 1, (size_t)(end - slash - 1), 0, INT_MAX, &db)) {
        errbuf_printf(why, whylen, "database \"%.*s\" is not a non-negative integer",
                      (int)(end - slash - 1), slash + 1);
        return -1;
    }
    u->db = (int)db;
    return 0;
}

/* One name=value of the query, s[0..n), into its field of u. */
static int qr_url_param(const char *s, size_t n, qr_url *u, char *why, size_t whylen)
{
    static const char *const names[] = {"tls-ca", "tls-cert", "tls-key", "tls-server-name"};
    char **fields[] = {&u->tls_ca, &u->tls_cert, &u->tls_key, &u->tls_server_name};
    const char *eq = memchr(s, '=', n);
    for (size_t i = 0; eq && eq > s && i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i]) != (size_t)(eq - s) || strncmp(s, names[i], (size_t)(eq - s)))
            continue;
        mem_free(*fields[i]);
        *fields[i] = queue_url__pct_decode(eq + 1, (size_t)(s + n - eq - 1));
        if (!*fields[i] || !**fields[i]) {
            errbuf_printf(why, whylen, "parameter %s: empty or a bad %%-escape", names[i]);
            return -1;
        }
        return 0;
    }
    errbuf_printf(why, whylen,
                  "unknown parameter \"%.*s\" (tls-ca, tls-cert, tls-key, tls-server-name)",
                  (int)(eq ? eq - s : (ptrdiff_t)n), s);
    return -1;
}

/* The query q[0..end) (after '?'): rediss:// only. */
static int qr_url_query(const char *q, const char *end, qr_url *u, char *why, size_t whylen)
{
    if (!u->tls) {
        errbuf_printf(why, whylen, "parameters are for rediss:// only");
        return -1;
    }
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *e = amp ? amp : end;
        if (e > q && qr_url_param(q, (size_t)(e - q), u, why, whylen))
            return -1;
        q = amp ? amp + 1 : end;
    }
    return 0;
}

/* The TLS files conf gives, where the URL gives none; a certificate needs
 * its key and a key its certificate. */
static int qr_url_tls(const queue_conf *conf, qr_url *u, char *why, size_t whylen)
{
    if (!u->tls)
        return 0;
    const char *from[] = {conf ? conf->redis_tls_ca : NULL, conf ? conf->redis_tls_cert : NULL,
                          conf ? conf->redis_tls_key : NULL,
                          conf ? conf->redis_tls_server_name : NULL};
    char **to[] = {&u->tls_ca, &u->tls_cert, &u->tls_key, &u->tls_server_name};
    for (size_t i = 0; i < sizeof to / sizeof to[0]; i++)
        if (!*to[i] && from[i] && *from[i])
            *to[i] = mem_strdup(from[i]);
    if (!u->tls_cert != !u->tls_key) {
        errbuf_printf(why, whylen, "tls-cert and tls-key go together");
        return -1;
    }
    return 0;
}

int qr_url__parse(const char *url, const queue_conf *conf, qr_url *u, char *errbuf, size_t errlen)
{
    memset(u, 0, sizeof *u);
    size_t skip = url && !strncmp(url, "redis://", 8)    ? 8
                  : url && !strncmp(url, "rediss://", 9) ? 9
                                                         : 0;
    if (!skip) {
        errbuf_printf(errbuf, errlen,
                      "redis URL must start with redis:// or rediss:// (" QR_URL_FORM ")");
        return QUEUE_EINVAL;
    }
    u->tls = skip == 9;
    const char *rest = url + skip, *q = strchr(rest, '?'), *end = rest + strlen(rest);
    char why[300] = "fragments are not supported";
    int bad = strchr(rest, '#') != NULL;
    bad = bad || qr_url_split(rest, q ? q : end, u, why, sizeof why) ||
          (q && qr_url_query(q + 1, end, u, why, sizeof why)) ||
          qr_url_tls(conf, u, why, sizeof why);
    if (bad) {
        char shown[512];
        queue_url_redact(url, shown, sizeof shown);
        errbuf_printf(errbuf, errlen, "redis URL \"%s\": %s (expected " QR_URL_FORM ")", shown,
                      why);
        qr_url__clear(u);
        return QUEUE_EINVAL;
    }
    u->addr = strchr(u->host, ':') ? mem_printf("[%s]:%d", u->host, u->port)
                                   : mem_printf("%s:%d", u->host, u->port);
    return QUEUE_OK;
}

int qr_url__check(const char *url, char *errbuf, size_t errlen)
{
    qr_url u;
    int rc = qr_url__parse(url, NULL, &u, errbuf, errlen);
    if (rc == QUEUE_OK)
        qr_url__clear(&u);
    return rc;
}
