#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "dagq";
static enum log_level log_min = LOG_INFO;
static const char *const log_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *prog)
{
    log_prog = prog;
}

int log_set_level_name(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, log_names[i]) == 0) {
            log_min = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_quote(const char *s, char *buf, size_t len)
{
    size_t o = 0;
    for (; s && *s && o + 3 < len; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            buf[o++] = '\\';
        buf[o++] = ch < ' ' ? ' ' : (char)ch;
    }
    buf[o] = '\0';
    return buf;
}

int log_enabled(enum log_level level)
{
    return level >= log_min;
}

void log_write(enum log_level level, const char *msg, const char *ctx, ...)
{
    if (level < log_min)
        return;
    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s prog=%s msg=\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(tv.tv_usec / 1000), log_names[level], log_prog);
    /* the message is quoted; escape quotes and newlines in it */
    for (const char *p = msg; *p && n < (int)sizeof line - 8; p++) {
        if (*p == '"' || *p == '\\')
            line[n++] = '\\';
        line[n++] = (*p == '\n') ? ' ' : *p;
    }
    line[n++] = '"';
    if (ctx && *ctx) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, ctx);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, ctx, ap);
        va_end(ap);
        if (m > 0)
            n += (m < (int)sizeof line - n - 2) ? m : (int)sizeof line - n - 2;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
