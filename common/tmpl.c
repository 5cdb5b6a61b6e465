#include "tmpl.h"

#include "cron.h"
#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void tmpl_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void tmpl_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

typedef struct tmpl_buf {
    char *data;
    size_t len, cap;
} tmpl_buf;

static void tmpl_buf_add(tmpl_buf *b, const char *s, size_t n)
{
    if (b->cap - b->len <= n) { /* keep room for the final NUL */
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len <= n)
            cap *= 2;
        b->data = mem_realloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static int tmpl_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The last entry named name[0..n), or NULL. */
static const tmpl_var *tmpl_lookup(const tmpl_var *vars, size_t nvars, const char *name, size_t n)
{
    for (size_t i = nvars; i-- > 0;) {
        const char *v = vars[i].name;
        if (v && strncmp(v, name, n) == 0 && v[n] == '\0')
            return &vars[i];
    }
    return NULL;
}

int tmpl_render(const char *src, const tmpl_var *vars, size_t n, char **out, char *errbuf,
                size_t errlen)
{
    tmpl_buf b = {0};

    *out = NULL;
    if (!src) {
        tmpl_err(errbuf, errlen, "no template");
        return -1;
    }
    tmpl_buf_add(&b, "", 0);

    const char *p = src;
    for (;;) {
        const char *open = strstr(p, "{{");
        if (!open) {
            tmpl_buf_add(&b, p, strlen(p));
            break;
        }
        tmpl_buf_add(&b, p, (size_t)(open - p));

        const char *start = open + 2;
        const char *close = strstr(start, "}}");
        if (!close) {
            tmpl_err(errbuf, errlen, "unclosed {{ at offset %zu", (size_t)(open - src));
            goto fail;
        }
        const char *name = start, *end = close;
        while (name < end && tmpl_space(*name))
            name++;
        while (end > name && tmpl_space(end[-1]))
            end--;
        if (name == end) {
            tmpl_err(errbuf, errlen, "empty {{ }} at offset %zu", (size_t)(open - src));
            goto fail;
        }
        const tmpl_var *v = tmpl_lookup(vars, n, name, (size_t)(end - name));
        if (!v) {
            tmpl_err(errbuf, errlen, "unknown template variable %.*s", (int)(end - name), name);
            goto fail;
        }
        if (v->value)
            tmpl_buf_add(&b, v->value, strlen(v->value));
        p = close + 2;
    }
    *out = b.data;
    return 0;
fail:
    mem_free(b.data);
    return -1;
}

/* UTC calendar fields of t, by integer arithmetic (cron_civil_from_days): no
 * time zone, no locale, and no gmtime failure for out-of-range years. */
typedef struct tmpl_tm {
    long long year;
    int mon, day, hour, min, sec;
} tmpl_tm;

static tmpl_tm tmpl_utc(long long t)
{
    tmpl_tm tm;
    long long days = t / 86400, secs = t % 86400;
    if (secs < 0) { /* floor, not truncation, for times before 1970 */
        secs += 86400;
        days--;
    }
    int64_t y;
    cron_civil_from_days(days, &y, &tm.mon, &tm.day);
    tm.year = y;
    tm.hour = (int)(secs / 3600);
    tm.min = (int)(secs / 60 % 60);
    tm.sec = (int)(secs % 60);
    return tm;
}

static void tmpl_ts(char buf[40], long long t)
{
    tmpl_tm tm = tmpl_utc(t);
    snprintf(buf, 40, "%04lld-%02d-%02dT%02d:%02d:%02d+00:00", tm.year, tm.mon, tm.day, tm.hour,
             tm.min, tm.sec);
}

void tmpl_date_vars(long long logical_date, long long start, long long end, tmpl_var *vars,
                    char bufs[5][40])
{
    tmpl_tm tm = tmpl_utc(logical_date);

    snprintf(bufs[0], 40, "%04lld-%02d-%02d", tm.year, tm.mon, tm.day);
    snprintf(bufs[1], 40, "%04lld%02d%02d", tm.year, tm.mon, tm.day);
    tmpl_ts(bufs[2], logical_date);
    tmpl_ts(bufs[3], start);
    tmpl_ts(bufs[4], end);

    vars[0] = (tmpl_var){"ds", bufs[0]};
    vars[1] = (tmpl_var){"ds_nodash", bufs[1]};
    vars[2] = (tmpl_var){"ts", bufs[2]};
    vars[3] = (tmpl_var){"data_interval_start", bufs[3]};
    vars[4] = (tmpl_var){"data_interval_end", bufs[4]};
}
