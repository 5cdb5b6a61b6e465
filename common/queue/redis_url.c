#include "redis_url.h"

#include "errbuf.h"
#include "mem.h"
#include "queue.h"
#include "queue_url.h"

#include <limits.h>
#include <string.h>

#define QR_URL_FORM "redis://[[user]:password@]host:port[/db]"
#define QR_URL_DEFAULT_PORT 6379

void qr_url__clear(qr_url *u)
{
    mem_free(u->host);
    mem_free(u->user);
    if (u->password)
        memset(u->password, 0, strlen(u->password));
    mem_free(u->password);
    mem_free(u->addr);
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
    if (strpbrk(rest, "?#")) {
        errbuf_printf(why, whylen, "query strings and fragments are not supported");
        return -1;
    }
    const char *at = strrchr(rest, '@'), *hp = rest;
    if (at) {
        if (qr_url_credentials(rest, (size_t)(at - rest), u, why, whylen))
            return -1;
        hp = at + 1;
    }
    const char *slash = strchr(hp, '/');
    const char *hend = slash ? slash : end;
    if (queue_url__hostport(hp, (size_t)(hend - hp), QR_URL_DEFAULT_PORT, &u->host, &u->port, why,
                            whylen))
        return -1;
    long db = 0;
    if (slash && slash + 1 < end &&
        queue_url__int(slash + 1, (size_t)(end - slash - 1), 0, INT_MAX, &db)) {
        errbuf_printf(why, whylen, "database \"%s\" is not a non-negative integer", slash + 1);
        return -1;
    }
    u->db = (int)db;
    return 0;
}

int qr_url__parse(const char *url, qr_url *u, char *errbuf, size_t errlen)
{
    static const char scheme[] = "redis://";
    memset(u, 0, sizeof *u);
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        errbuf_printf(errbuf, errlen, "redis URL must start with redis:// (" QR_URL_FORM ")");
        return QUEUE_EINVAL;
    }
    const char *rest = url + sizeof scheme - 1;
    char why[256];
    if (qr_url_split(rest, rest + strlen(rest), u, why, sizeof why)) {
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
    int rc = qr_url__parse(url, &u, errbuf, errlen);
    if (rc == QUEUE_OK)
        qr_url__clear(&u);
    return rc;
}
