#include "queue_url.h"

#include "mem.h"
#include "redact.h"

#include "errbuf.h"
#include "mem.h"
#include "queue.h"

#include <stdio.h>
#include <string.h>

/* The password is what follows the first ':' of the userinfo, which ends at
 * the last '@' (an unencoded '@' in a password is taken as part of it, so a
 * password is never printed; an '@' further on only hides more than
 * needed). A userinfo without ':' is a user name, shown as it is. */
void queue_url_redact(const char *url, char *buf, size_t len)
{
    if (!buf || !len)
        return;
    /* the one redaction routine (redact.h), written into the caller's buffer */
    char *r = redact_url(url ? url : "");
    snprintf(buf, len, "%s", r ? r : "");
    mem_free(r);
}

int queue_url__int(const char *s, size_t n, long lo, long hi, long *out)
{
    if (n == 0 || n > 10)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (long)v;
    return 0;
}

static int queue_url_hex(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

char *queue_url__pct_decode(const char *s, size_t n)
{
    char *out = mem_alloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int a = i + 2 < n ? queue_url_hex((unsigned char)s[i + 1]) : -1;
        int b = i + 2 < n ? queue_url_hex((unsigned char)s[i + 2]) : -1;
        if (a < 0 || b < 0 || (a == 0 && b == 0)) {
            mem_free(out);
            return NULL;
        }
        *o++ = (char)(a * 16 + b);
        i += 2;
    }
    *o = '\0';
    return out;
}

int queue_url__hostport(const char *s, size_t n, int default_port, char **host, int *port,
                        char *why, size_t whylen)
{
    const char *end = s + n, *h = s, *h_end, *p = NULL;
    *host = NULL;
    if (n && *s == '[') {
        const char *close = memchr(s, ']', n);
        if (!close) {
            errbuf_printf(why, whylen, "unterminated [ in the host");
            return -1;
        }
        h = s + 1;
        h_end = close;
        if (close + 1 < end && close[1] != ':') {
            errbuf_printf(why, whylen, "junk after ] in the host");
            return -1;
        }
        if (close + 1 < end)
            p = close + 2;
    } else {
        const char *colon = memchr(s, ':', n);
        h_end = colon ? colon : end;
        if (colon)
            p = colon + 1;
    }
    if (h_end == h) {
        errbuf_printf(why, whylen, "the host is missing");
        return -1;
    }
    for (const char *c = h; c < h_end; c++) {
        if ((unsigned char)*c <= ' ' || strchr("@/?#", *c)) {
            errbuf_printf(why, whylen, "the host contains a space or a reserved character");
            return -1;
        }
    }
    long v = default_port;
    if ((p && p == end) || (!p && !default_port)) {
        errbuf_printf(why, whylen, "the port is missing");
        return -1;
    }
    if (p && queue_url__int(p, (size_t)(end - p), 1, 65535, &v)) {
        errbuf_printf(why, whylen, "port \"%.*s\" is not a number in 1..65535", (int)(end - p), p);
        return -1;
    }
    *host = mem_strndup(h, (size_t)(h_end - h));
    *port = (int)v;
    return 0;
}
