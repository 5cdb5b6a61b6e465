/* tmpl — the public half of tmpl.h: variables, the parse of `{{ }}` into
 * elements, rendering (the shell lexer that quotes the values is
 * tmpl_shell.c's, see tmpl_shell.h), param environment names and the date
 * variables. */
#include "tmpl.h"

#include "cron.h"
#include "errbuf.h"
#include "mem.h"
#include "tmpl_shell.h"

#include <stdio.h>
#include <string.h>

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

/* ---- the template as a sequence of elements -------------------------------------------
 * Parsing turns the template into elements (tmpl_shell.h): the bytes of
 * command text (the template's literal text, and the values of `| raw`
 * placeholders, which are command text by the author's word), and one element
 * per placeholder whose value is to be quoted. The lexer reads only the
 * bytes. */

static void tmpl_seq_add(tmpl_seq *s, int el, size_t off)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->el = mem_realloc(s->el, s->cap * sizeof *s->el);
        s->off = mem_realloc(s->off, s->cap * sizeof *s->off);
    }
    s->el[s->n] = el;
    s->off[s->n++] = off;
}

static void tmpl_seq_add_ph(tmpl_seq *s, const tmpl_var *v, size_t off)
{
    if (s->nph == s->capph) {
        s->capph = s->capph ? s->capph * 2 : 16;
        s->ph = mem_realloc(s->ph, s->capph * sizeof *s->ph);
    }
    s->ph[s->nph] = (tmpl_ph){v, off};
    tmpl_seq_add(s, TMPL_PH + (int)s->nph++, off);
}

static void tmpl_seq_free(tmpl_seq *s)
{
    mem_free(s->el);
    mem_free(s->off);
    mem_free(s->ph);
}

static void tmpl_trim(const char **b, const char **e)
{
    while (*b < *e && tmpl_space(**b))
        (*b)++;
    while (*e > *b && tmpl_space((*e)[-1]))
        (*e)--;
}

/* One `{{ NAME [| FILTER] }}` between open and close (the "}}"). */
static int tmpl_expr(const char *src, const char *open, const char *close, const tmpl_var *vars,
                     size_t nvars, tmpl_seq *s, char *errbuf, size_t errlen)
{
    size_t at = (size_t)(open - src);
    const char *name = open + 2, *end = close;
    const char *bar = memchr(name, '|', (size_t)(close - name));
    const char *fil = NULL, *fend = close;
    if (bar) {
        end = bar;
        fil = bar + 1;
        tmpl_trim(&fil, &fend);
    }
    tmpl_trim(&name, &end);
    if (name == end) {
        errbuf_printf(errbuf, errlen, "empty {{ }} at offset %zu", at);
        return -1;
    }
    int raw = 0;
    if (bar) {
        if (fend - fil != 3 || memcmp(fil, "raw", 3) != 0) {
            errbuf_printf(errbuf, errlen,
                          "unknown filter \"%.*s\" at offset %zu (the only filter is raw)",
                          (int)(fend - fil > 64 ? 64 : fend - fil), fil, at);
            return -1;
        }
        raw = 1;
    }
    const tmpl_var *v = tmpl_lookup(vars, nvars, name, (size_t)(end - name));
    if (!v) {
        errbuf_printf(errbuf, errlen, "unknown template variable %.*s", (int)(end - name), name);
        return -1;
    }
    if (raw && v->origin != TMPL_FROM_DAG) {
        errbuf_printf(
            errbuf, errlen,
            "%s at offset %zu comes from the run's conf: | raw is only for values the DAG "
            "defines",
            v->name, at);
        return -1;
    }
    if (!raw) {
        tmpl_seq_add_ph(s, v, at);
        return 0;
    }
    for (const char *p = v->value ? v->value : ""; *p; p++)
        tmpl_seq_add(s, (unsigned char)*p, at);
    return 0;
}

static int tmpl_parse(const char *src, const tmpl_var *vars, size_t nvars, tmpl_seq *s,
                      char *errbuf, size_t errlen)
{
    const char *p = src;
    for (;;) {
        const char *open = strstr(p, "{{");
        const char *stop = open ? open : p + strlen(p);
        for (; p < stop; p++)
            tmpl_seq_add(s, (unsigned char)*p, (size_t)(p - src));
        if (!open)
            return 0;
        const char *close = strstr(open + 2, "}}");
        if (!close) {
            errbuf_printf(errbuf, errlen, "unclosed {{ at offset %zu", (size_t)(open - src));
            return -1;
        }
        if (tmpl_expr(src, open, close, vars, nvars, s, errbuf, errlen))
            return -1;
        p = close + 2;
    }
}

int tmpl_render(const char *src, const tmpl_var *vars, size_t n, char **out, char *errbuf,
                size_t errlen)
{
    *out = NULL;
    if (!src) {
        errbuf_printf(errbuf, errlen, "no template");
        return -1;
    }
    tmpl_seq s = {0};
    int rc = tmpl_parse(src, vars, n, &s, errbuf, errlen);
    if (rc == 0)
        rc = tmpl__lex(&s, out, errbuf, errlen);
    tmpl_seq_free(&s);
    return rc;
}

int tmpl_param_env_name(const char *key, char *buf, size_t len, char *errbuf, size_t errlen)
{
    static const char prefix[] = "DAGQ_PARAM_";
    size_t n = strlen(key);
    if (n == 0) {
        errbuf_printf(errbuf, errlen, "an empty param name has no environment variable");
        return -1;
    }
    if (tmpl__digit((unsigned char)key[0])) {
        errbuf_printf(errbuf, errlen,
                      "a param name that starts with a digit has no environment "
                      "variable");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!tmpl__namec((unsigned char)key[i])) {
            errbuf_printf(
                errbuf, errlen,
                "param name has a byte (0x%02x at %zu) an environment variable name cannot "
                "hold: only letters, digits and _",
                (unsigned char)key[i], i);
            return -1;
        }
    }
    if (sizeof prefix + n > len) {
        errbuf_printf(errbuf, errlen, "param name too long for an environment variable (%zu bytes)",
                      n);
        return -1;
    }
    memcpy(buf, prefix, sizeof prefix - 1);
    for (size_t i = 0; i < n; i++)
        buf[sizeof prefix - 1 + i] =
            (key[i] >= 'a' && key[i] <= 'z') ? (char)(key[i] - 'a' + 'A') : key[i];
    buf[sizeof prefix - 1 + n] = '\0';
    return 0;
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

    vars[0] = (tmpl_var){"ds", bufs[0], TMPL_FROM_DAG};
    vars[1] = (tmpl_var){"ds_nodash", bufs[1], TMPL_FROM_DAG};
    vars[2] = (tmpl_var){"ts", bufs[2], TMPL_FROM_DAG};
    vars[3] = (tmpl_var){"data_interval_start", bufs[3], TMPL_FROM_DAG};
    vars[4] = (tmpl_var){"data_interval_end", bufs[4], TMPL_FROM_DAG};
}
