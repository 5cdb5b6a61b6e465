/* errbuf — the caller's error buffer that functions which can fail fill in
 * (librdkafka's errstr habit). */
#ifndef DAGQ_ERRBUF_H
#define DAGQ_ERRBUF_H

#include <stddef.h>

/* snprintf into buf[0..len); does nothing when buf is NULL or len is 0, so a
 * caller that wants no words may pass NULL, 0. */
void errbuf_printf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
