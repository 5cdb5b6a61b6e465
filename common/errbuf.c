#include "errbuf.h"

#include <stdarg.h>
#include <stdio.h>

void errbuf_printf(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}
