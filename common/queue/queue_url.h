/* queue_url — the pieces of broker URL syntax both brokers share (internal
 * to common/queue/; queue_url_redact itself is public, in queue.h).
 *
 * Every function that fails writes why into why[0..whylen) as a phrase the
 * caller puts after `<kind> URL "<redacted url>": `. */
#ifndef DAGQ_QUEUE_URL_H
#define DAGQ_QUEUE_URL_H

#include <stddef.h>

/* Parses s[0..n) as `host[:port]` or `[ipv6]:port`. A host may hold no
 * blank, control character or any of @ / ? #. default_port 0: the port is
 * required. On 0, *host is the host without brackets (caller frees with
 * mem_free) and *port 1..65535; -1 otherwise. */
int queue_url__hostport(const char *s, size_t n, int default_port, char **host, int *port,
                        char *why, size_t whylen);

/* The decimal in s[0..n) (1 to 10 digits, nothing else) if within [lo, hi]:
 * 0 with *out set, or -1. */
int queue_url__int(const char *s, size_t n, long lo, long hi, long *out);

/* s[0..n) percent-decoded into a new string (caller frees with mem_free);
 * NULL when a %XX is malformed or decodes to NUL. */
char *queue_url__pct_decode(const char *s, size_t n);

#endif
