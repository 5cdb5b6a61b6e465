/* cron — 5-field cron expressions evaluated in an IANA time zone.
 *
 * An expression is parsed into one bit set per field. Evaluation walks the
 * calendar in *wall-clock* time (year, month, day, hour, minute), skipping a
 * whole month, day or hour as soon as it cannot match, and maps each matching
 * wall time to an instant with the zone's UTC offsets (see wall_instant for
 * the DST rules). Offsets come from glibc's localtime_r with TZ set to the
 * zone's file under the tz database; the zone name is checked against that
 * database first, because glibc silently falls back to UTC for a TZ it cannot
 * load.
 *
 * sql/002_cron_check.sql repeats the parser in PL/pgSQL (dagq.cron_check;
 * sql/011_etl_schedules.sql adds @every and @once), and sql/011 also ports
 * the evaluation (dagq.cron_fires, for backfills): change them together, and
 * tests/cron_cases.tsv and tests/cron_next_cases.sh with them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* tm_gmtoff */
#endif

#include "cron.h"
#include "mem.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cron_expr {
    cron_kind kind;
    long long every_s; /* CRON_EVERY: the period in seconds */
    uint64_t minute;   /* bit n: minute n, 0-59 */
    uint32_t hour;     /* 0-23 */
    uint32_t dom;      /* 1-31 */
    uint16_t month;    /* 1-12 */
    uint8_t dow;       /* 0-6, Sunday 0 (7 is folded into 0) */
    int dom_star;      /* the field's text starts with '*' (Vixie's DOM_STAR) */
    int dow_star;
};

#define CRON_SEARCH_YEARS 5

/* Instants we accept: years 0001 to 9989 (leaving room for the 5-year
 * search), so the calendar arithmetic and localtime_r never overflow. */
#define CRON_T_MIN (-62135596800LL + 7 * 86400LL)
#define CRON_T_MAX (253402300799LL - 10LL * 366 * 86400LL)

static int cron_fail(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cron_fail(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- parsing ----------------------------------------------------------- */

static const char *const cron_month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                               "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const cron_dow_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

typedef struct cron_field {
    const char *name;
    int min, max;
    const char *const *names; /* NULL when the field takes no names */
    int names_base;           /* the value of names[0] */
    int names_count;
} cron_field;

static const cron_field cron_fields[5] = {
    {"minute", 0, 59, NULL, 0, 0},
    {"hour", 0, 23, NULL, 0, 0},
    {"day-of-month", 1, 31, NULL, 0, 0},
    {"month", 1, 12, cron_month_names, 1, 12},
    {"day-of-week", 0, 7, cron_dow_names, 0, 7},
};

static const struct {
    const char *name, *expansion;
} cron_macros[] = {
    {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

/* Separators between fields. Everything else belongs to a field. */
static int cron_is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static int cron_is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static int cron_is_alpha(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static char cron_upper(char ch)
{
    return (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
}

/* Case-insensitive ASCII comparison of s[0..n) with the NUL-terminated w. */
static int cron_word_eq(const char *s, size_t n, const char *w)
{
    if (strlen(w) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (cron_upper(s[i]) != cron_upper(w[i]))
            return 0;
    return 1;
}

/* A scanner over one field's text. */
typedef struct cron_scan {
    const cron_field *f;
    const char *text; /* the whole field, for messages */
    int len;
    const char *p, *end;
    char *errbuf;
    size_t errlen;
} cron_scan;

static int cron_unexpected(cron_scan *s)
{
    unsigned char ch = (unsigned char)*s->p;
    if (ch > 0x20 && ch < 0x7f)
        return cron_fail(s->errbuf, s->errlen, "%s: unexpected character '%c' in \"%.*s\"",
                         s->f->name, ch, s->len, s->text);
    return cron_fail(s->errbuf, s->errlen, "%s: unexpected byte 0x%02X", s->f->name, ch);
}

/* Reads a run of digits into *v (saturating at 1000000, far above any field's
 * range); *tok and *toklen get the digits as written, for messages. */
static void cron_digits(cron_scan *s, int *v, const char **tok, int *toklen)
{
    *tok = s->p;
    *v = 0;
    while (s->p < s->end && cron_is_digit(*s->p)) {
        if (*v < 1000000)
            *v = *v * 10 + (*s->p - '0');
        s->p++;
    }
    *toklen = (int)(s->p - *tok);
}

/* A number or a name, checked against the field's range. s->p is at a digit
 * or a letter (the caller checked). */
static int cron_value(cron_scan *s, int *out, const char **tok, int *toklen)
{
    if (cron_is_digit(*s->p)) {
        cron_digits(s, out, tok, toklen);
        if (*out < s->f->min || *out > s->f->max)
            return cron_fail(s->errbuf, s->errlen, "%s: %.*s is out of range %d-%d", s->f->name,
                             *toklen, *tok, s->f->min, s->f->max);
        return 0;
    }
    *tok = s->p;
    while (s->p < s->end && cron_is_alpha(*s->p))
        s->p++;
    *toklen = (int)(s->p - *tok);
    for (int i = 0; i < s->f->names_count; i++) {
        if (cron_word_eq(*tok, (size_t)*toklen, s->f->names[i])) {
            *out = s->f->names_base + i;
            return 0;
        }
    }
    return cron_fail(s->errbuf, s->errlen, "%s: unknown name %.*s", s->f->name, *toklen, *tok);
}

/* Parses one field: a comma list of items, each `*`, a value, or a range
 * `a-b`, optionally followed by `/step` (only after `*` or a range). The
 * order of the checks is the order of dagq.cron_check's, so both report the
 * same first problem. */
static int cron_parse_field(const cron_field *f, const char *text, int len, uint64_t *bits,
                            char *errbuf, size_t errlen)
{
    cron_scan s = {f, text, len, text, text + len, errbuf, errlen};
    *bits = 0;
    for (;;) {
        int lo, hi, step = 1, star = 0, range = 0;
        const char *tok, *tok2;
        int toklen, toklen2;

        if (s.p == s.end || *s.p == ',')
            return cron_fail(errbuf, errlen, "%s: empty list item in \"%.*s\"", f->name, len, text);
        if (*s.p == '*') {
            star = 1;
            lo = f->min;
            hi = f->max;
            s.p++;
        } else if (cron_is_digit(*s.p) || cron_is_alpha(*s.p)) {
            if (cron_value(&s, &lo, &tok, &toklen) < 0)
                return -1;
            hi = lo;
            if (s.p < s.end && *s.p == '-') {
                s.p++;
                if (s.p == s.end || !(cron_is_digit(*s.p) || cron_is_alpha(*s.p)))
                    return cron_fail(errbuf, errlen, "%s: expected a value after '-' in \"%.*s\"",
                                     f->name, len, text);
                if (cron_value(&s, &hi, &tok2, &toklen2) < 0)
                    return -1;
                if (lo > hi)
                    return cron_fail(errbuf, errlen, "%s: range %.*s-%.*s is reversed", f->name,
                                     toklen, tok, toklen2, tok2);
                range = 1;
            }
        } else {
            return cron_unexpected(&s);
        }
        if (s.p < s.end && *s.p == '/') {
            if (!star && !range)
                return cron_fail(errbuf, errlen,
                                 "%s: step needs * or a range before '/' in \"%.*s\"", f->name, len,
                                 text);
            s.p++;
            if (s.p == s.end || !cron_is_digit(*s.p))
                return cron_fail(errbuf, errlen, "%s: expected a step number after '/' in \"%.*s\"",
                                 f->name, len, text);
            cron_digits(&s, &step, &tok, &toklen);
            if (step == 0)
                return cron_fail(errbuf, errlen, "%s: step 0 is not allowed", f->name);
            if (step > f->max)
                return cron_fail(errbuf, errlen, "%s: step %.*s is out of range 1-%d", f->name,
                                 toklen, tok, f->max);
        }
        if (s.p < s.end && *s.p != ',')
            return cron_unexpected(&s);
        for (int v = lo; v <= hi; v += step)
            *bits |= (uint64_t)1 << v;
        if (s.p == s.end)
            return 0;
        s.p++; /* the comma */
    }
}

/* Splits expr at whitespace into at most `max` fields; returns how many
 * fields there are (which may exceed max). */
static int cron_split(const char *expr, const char **start, int *len, int max)
{
    int n = 0;
    const char *p = expr;
    for (;;) {
        while (*p && cron_is_space(*p))
            p++;
        if (!*p)
            return n;
        const char *b = p;
        while (*p && !cron_is_space(*p))
            p++;
        if (n < max) {
            start[n] = b;
            len[n] = (int)(p - b);
        }
        n++;
    }
}

/* The duration of `@every`: one or more <digits><unit>, units d h m s (lower
 * case) from the largest down, each at most once, adding up to 1s .. 365d.
 * dagq.cron_check (sql/011_etl_schedules.sql) makes the same checks in the
 * same order, with the same messages. */
static int cron_parse_duration(const char *text, int len, long long *out, char *errbuf,
                               size_t errlen)
{
    static const char units[] = "dhms";
    static const long long unit_s[] = {86400, 3600, 60, 1};
    long long total = 0;
    int next_unit = 0; /* units before this one are used up */
    int i = 0;
    while (i < len) {
        long long v = 0;
        int digits = 0;
        while (i < len && cron_is_digit(text[i])) {
            if (v < 1000000000LL)
                v = v * 10 + (text[i] - '0');
            i++, digits++;
        }
        const char *u = i < len ? strchr(units, text[i]) : NULL;
        if (!digits || !u || !text[i] || (int)(u - units) < next_unit)
            return cron_fail(errbuf, errlen,
                             "@every: duration \"%.*s\" is not valid: use whole numbers with the "
                             "units d, h, m, s, largest first, each once (e.g. 1h30m)",
                             len, text);
        next_unit = (int)(u - units) + 1;
        total += v * unit_s[u - units];
        if (total > 1000000000LL)
            total = 1000000000LL;
        i++;
    }
    if (total < 1 || total > 365LL * 86400)
        return cron_fail(errbuf, errlen, "@every: %.*s is out of range 1s-365d", len, text);
    *out = total;
    return 0;
}

static int cron_parse_fields(const char *expr, cron_expr *c, char *errbuf, size_t errlen)
{
    const char *start[5];
    int len[5];
    int n = cron_split(expr, start, len, 5);

    if (n == 0)
        return cron_fail(errbuf, errlen, "empty expression");
    if (start[0][0] == '@') {
        for (size_t i = 0; i < sizeof cron_macros / sizeof cron_macros[0]; i++) {
            if (cron_word_eq(start[0], (size_t)len[0], cron_macros[i].name)) {
                if (n > 1)
                    return cron_fail(errbuf, errlen, "unexpected text after %.*s", len[0],
                                     start[0]);
                return cron_parse_fields(cron_macros[i].expansion, c, errbuf, errlen);
            }
        }
        if (cron_word_eq(start[0], (size_t)len[0], "@once")) {
            if (n > 1)
                return cron_fail(errbuf, errlen, "unexpected text after %.*s", len[0], start[0]);
            c->kind = CRON_ONCE;
            return 0;
        }
        if (cron_word_eq(start[0], (size_t)len[0], "@every")) {
            if (n == 1)
                return cron_fail(errbuf, errlen, "@every needs a duration, e.g. @every 1h30m");
            if (n > 2)
                return cron_fail(errbuf, errlen, "unexpected text after %.*s %.*s", len[0],
                                 start[0], len[1], start[1]);
            c->kind = CRON_EVERY;
            return cron_parse_duration(start[1], len[1], &c->every_s, errbuf, errlen);
        }
        if (cron_word_eq(start[0], (size_t)len[0], "@reboot"))
            return cron_fail(errbuf, errlen, "@reboot is not supported");
        return cron_fail(errbuf, errlen, "unknown macro %.*s", len[0], start[0]);
    }
    if (n != 5)
        return cron_fail(errbuf, errlen, "expected 5 fields, got %d", n);

    uint64_t bits[5];
    for (int i = 0; i < 5; i++)
        if (cron_parse_field(&cron_fields[i], start[i], len[i], &bits[i], errbuf, errlen) < 0)
            return -1;
    c->kind = CRON_CRON;
    c->every_s = 0;
    c->minute = bits[0];
    c->hour = (uint32_t)bits[1];
    c->dom = (uint32_t)bits[2];
    c->month = (uint16_t)bits[3];
    c->dow = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday too */
    c->dom_star = start[2][0] == '*';
    c->dow_star = start[4][0] == '*';
    return 0;
}

int cron_parse(const char *expr, cron_expr **out, char *errbuf, size_t errlen)
{
    cron_expr tmp = {0};
    *out = NULL;
    if (!expr)
        return cron_fail(errbuf, errlen, "empty expression");
    if (cron_parse_fields(expr, &tmp, errbuf, errlen) < 0)
        return -1;
    *out = mem_alloc(sizeof **out);
    **out = tmp;
    return 0;
}

void cron_free(cron_expr *c)
{
    mem_free(c);
}

cron_kind cron_get_kind(const cron_expr *c)
{
    return c->kind;
}

long long cron_every_seconds(const cron_expr *c)
{
    return c->kind == CRON_EVERY ? c->every_s : 0;
}

/* ---- calendar ---------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant). */
static int64_t cron_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void cron_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t cron_floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int cron_days_in_month(int64_t y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

/* A wall-clock time, minute resolution. */
typedef struct cron_wall {
    int64_t y;
    int mon, day, hour, min;
} cron_wall;

/* "Local seconds": the wall time read as if it were UTC. */
static int64_t cron_wall_local(const cron_wall *w)
{
    return cron_days_from_civil(w->y, w->mon, w->day) * 86400 + w->hour * 3600 + w->min * 60;
}

static cron_wall cron_wall_from_local(int64_t local)
{
    cron_wall w;
    int64_t days = cron_floor_div(local, 86400), secs = local - days * 86400;
    cron_civil_from_days(days, &w.y, &w.mon, &w.day);
    w.hour = (int)(secs / 3600);
    w.min = (int)(secs % 3600 / 60);
    return w;
}

static int cron_day_matches(const cron_expr *c, const cron_wall *w)
{
    int dow = (int)((cron_days_from_civil(w->y, w->mon, w->day) % 7 + 11) % 7); /* 0 = Sunday */
    int dom_ok = (int)(c->dom >> w->day & 1), dow_ok = c->dow >> dow & 1;
    /* Vixie cron: when both fields are restricted, either one may match. */
    if (c->dom_star || c->dow_star)
        return dom_ok && dow_ok;
    return dom_ok || dow_ok;
}

static void cron_next_month(cron_wall *w)
{
    if (++w->mon > 12) {
        w->mon = 1;
        w->y++;
    }
    w->day = 1;
    w->hour = w->min = 0;
}

static void cron_prev_month(cron_wall *w)
{
    if (--w->mon < 1) {
        w->mon = 12;
        w->y--;
    }
    w->day = cron_days_in_month(w->y, w->mon);
    w->hour = 23;
    w->min = 59;
}

static void cron_prev_day(cron_wall *w)
{
    if (--w->day < 1)
        cron_prev_month(w);
    w->hour = 23;
    w->min = 59;
}

/* The lowest set bit of bits at or above `from` (bits below 64), or -1. */
static int cron_bit_at_or_above(uint64_t bits, int from)
{
    for (int i = from; i < 64; i++)
        if (bits >> i & 1)
            return i;
    return -1;
}

static int cron_bit_at_or_below(uint64_t bits, int from)
{
    for (int i = from; i >= 0; i--)
        if (bits >> i & 1)
            return i;
    return -1;
}

/* Moves *w to the earliest matching wall time at or after it. Each step
 * either accepts a field or jumps to the start of the next month, day, hour
 * or matching minute, so a yearly expression costs a few hundred steps over
 * the whole search, never a walk minute by minute. -1 when nothing matches
 * up to the end of year ylim. */
static int cron_match_next(const cron_expr *c, cron_wall *w, int64_t ylim)
{
    for (;;) {
        if (w->y > ylim)
            return -1;
        if (!(c->month >> w->mon & 1) || w->day > cron_days_in_month(w->y, w->mon)) {
            cron_next_month(w);
            continue;
        }
        if (!cron_day_matches(c, w)) {
            w->day++; /* past the month's end: caught above */
            w->hour = w->min = 0;
            continue;
        }
        int h = cron_bit_at_or_above(c->hour, w->hour);
        if (h < 0 || h >= 24) {
            w->day++;
            w->hour = w->min = 0;
            continue;
        }
        if (h != w->hour) {
            w->hour = h;
            w->min = 0;
        }
        int m = cron_bit_at_or_above(c->minute, w->min);
        if (m < 0 || m >= 60) {
            w->min = 0;
            if (++w->hour == 24) {
                w->hour = 0;
                w->day++;
            }
            continue;
        }
        w->min = m;
        return 0;
    }
}

/* The mirror image: the latest matching wall time at or before *w, -1 when
 * nothing matches back to the start of year ylim. */
static int cron_match_prev(const cron_expr *c, cron_wall *w, int64_t ylim)
{
    for (;;) {
        if (w->y < ylim)
            return -1;
        if (!(c->month >> w->mon & 1)) {
            cron_prev_month(w);
            continue;
        }
        if (!cron_day_matches(c, w)) {
            cron_prev_day(w);
            continue;
        }
        int h = cron_bit_at_or_below(c->hour, w->hour);
        if (h < 0) {
            cron_prev_day(w);
            continue;
        }
        if (h != w->hour) {
            w->hour = h;
            w->min = 59;
        }
        int m = cron_bit_at_or_below(c->minute, w->min);
        if (m < 0) {
            w->min = 59;
            if (--w->hour < 0)
                cron_prev_day(w);
            continue;
        }
        w->min = m;
        return 0;
    }
}

/* ---- time zones -------------------------------------------------------- */

typedef struct cron_zone {
    int utc;
} cron_zone;

/* IANA names are letters, digits and / _ - +; never absolute, never "..". */
static int cron_zone_name_ok(const char *tz)
{
    size_t n = strlen(tz);
    if (n == 0 || n > 200 || tz[0] == '/' || strstr(tz, "..") || strncmp(tz, "right/", 6) == 0)
        return 0;
    for (const char *p = tz; *p; p++)
        if (!(cron_is_alpha(*p) || cron_is_digit(*p) || strchr("/_-+", *p)))
            return 0;
    return 1;
}

/* A regular file that starts with the TZif magic. */
static int cron_zone_file_ok(const char *path)
{
    char magic[4];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int ok = 0;
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, magic, 4) == 4 &&
        memcmp(magic, "TZif", 4) == 0)
        ok = 1;
    close(fd);
    return ok;
}

/* Makes tz the process's time zone for localtime_r. TZ is set to ":<path of
 * the zone file>", so glibc loads exactly the file checked here. TZ is left
 * set afterwards: glibc's tzset reloads only when TZ changes, so repeated
 * calls for one zone cost a string comparison. NULL or "" is UTC, which needs
 * no zone at all. */
static int cron_zone_enter(cron_zone *z, const char *tz, char *errbuf, size_t errlen)
{
    static char checked[256]; /* the last name found valid */
    const char *dir;
    char *want;

    z->utc = !tz || !*tz;
    if (z->utc)
        return 0;
    if (!cron_zone_name_ok(tz))
        return cron_fail(errbuf, errlen, "unknown time zone \"%.200s\"", tz);
    dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    want = mem_printf(":%s/%s", dir, tz);
    if (strcmp(checked, want) != 0) {
        if (!cron_zone_file_ok(want + 1)) {
            mem_free(want);
            return cron_fail(errbuf, errlen, "unknown time zone \"%s\"", tz);
        }
        if (strlen(want) < sizeof checked)
            memcpy(checked, want, strlen(want) + 1);
    }
    const char *cur = getenv("TZ");
    if (!cur || strcmp(cur, want) != 0)
        setenv("TZ", want, 1);
    tzset();
    mem_free(want);
    return 0;
}

/* The zone's UTC offset (seconds east) at instant t. */
static int64_t cron_offset(const cron_zone *z, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (z->utc || !localtime_r(&tt, &tm))
        return 0; /* t is range-checked by the callers; not reached */
    return tm.tm_gmtoff;
}

/* The instant at which wall time `local` fires:
 *  - a wall time that happens once: that instant;
 *  - one that happens twice (fall back): the first occurrence;
 *  - one that does not happen (spring forward): the first instant after
 *    the gap, i.e. the transition itself (02:30 in a 02:00->03:00 gap fires
 *    at 03:00 local).
 * The offsets one day either side bracket any transition near `local`
 * (zones change offset at most once in a few weeks, by less than a day).
 * Candidate t = local - o is real if the zone's offset at t is o. This map
 * is non-decreasing in `local`, which is what lets cron_next and cron_prev
 * walk wall times in order. */
static int64_t cron_wall_instant(const cron_zone *z, int64_t local)
{
    if (z->utc)
        return local;
    int64_t o1 = cron_offset(z, local - 86400), o2 = cron_offset(z, local + 86400);
    int64_t t1 = local - o1, t2 = local - o2;
    int ok1 = cron_offset(z, t1) == o1, ok2 = cron_offset(z, t2) == o2;
    if (ok1 && ok2)
        return t1 < t2 ? t1 : t2;
    if (ok1)
        return t1;
    if (ok2)
        return t2;
    /* In the gap: find the transition between the two candidates, the
     * first instant whose offset differs from the earlier one's. */
    int64_t lo = t1 < t2 ? t1 : t2, hi = t1 < t2 ? t2 : t1;
    int64_t olo = cron_offset(z, lo);
    if (cron_offset(z, hi) == olo)
        return hi; /* no transition between them: not reached for real zones */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cron_offset(z, mid) == olo)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

/* ---- next / prev ------------------------------------------------------- */

int cron_next(const cron_expr *c, const char *tz, time_t after, time_t *next, char *errbuf,
              size_t errlen)
{
    cron_zone z;
    if (!c || !next)
        return cron_fail(errbuf, errlen, "no expression or no result");
    if (c->kind != CRON_CRON)
        return cron_fail(errbuf, errlen, "@every and @once have no fire times of their own");
    if ((int64_t)after < CRON_T_MIN || (int64_t)after > CRON_T_MAX)
        return cron_fail(errbuf, errlen, "time %lld is out of range", (long long)after);
    if (cron_zone_enter(&z, tz, errbuf, errlen) < 0)
        return -1;

    /* Wall times at or before the wall time of `after` fire at or before
     * `after` (clocks only move forward, or jump over a gap whose times fire
     * at its end), so the search starts at the next whole minute. In a
     * repeated hour, the matches whose first occurrence has passed are
     * skipped by the `t > after` test. */
    int64_t local = (int64_t)after + cron_offset(&z, (int64_t)after);
    cron_wall w = cron_wall_from_local(cron_floor_div(local, 60) * 60 + 60);
    int64_t ylim = w.y + CRON_SEARCH_YEARS;
    for (;;) {
        if (cron_match_next(c, &w, ylim) < 0)
            return cron_fail(errbuf, errlen, "no match within %d years", CRON_SEARCH_YEARS);
        int64_t l = cron_wall_local(&w), t = cron_wall_instant(&z, l);
        if (t > (int64_t)after) {
            *next = (time_t)t;
            return 0;
        }
        w = cron_wall_from_local(l + 60);
    }
}

int cron_prev(const cron_expr *c, const char *tz, time_t at, time_t *prev, char *errbuf,
              size_t errlen)
{
    cron_zone z;
    if (!c || !prev)
        return cron_fail(errbuf, errlen, "no expression or no result");
    if (c->kind != CRON_CRON)
        return cron_fail(errbuf, errlen, "@every and @once have no fire times of their own");
    if ((int64_t)at < CRON_T_MIN || (int64_t)at > CRON_T_MAX)
        return cron_fail(errbuf, errlen, "time %lld is out of range", (long long)at);
    if (cron_zone_enter(&z, tz, errbuf, errlen) < 0)
        return -1;

    /* A wall time that fires at or before `at` is at most `at` read with the
     * larger of the offsets in force over the last day: after a fall back,
     * the first occurrences of the repeated hour lie ahead of `at`'s own
     * wall time. Walk down from there, skipping matches that fire later. */
    int64_t o1 = cron_offset(&z, (int64_t)at), o2 = cron_offset(&z, (int64_t)at - 86400);
    int64_t local = (int64_t)at + (o1 > o2 ? o1 : o2);
    cron_wall w = cron_wall_from_local(cron_floor_div(local, 60) * 60);
    int64_t ylim = w.y - CRON_SEARCH_YEARS;
    for (;;) {
        if (cron_match_prev(c, &w, ylim) < 0)
            return cron_fail(errbuf, errlen, "no match within %d years", CRON_SEARCH_YEARS);
        int64_t l = cron_wall_local(&w), t = cron_wall_instant(&z, l);
        if (t <= (int64_t)at) {
            *prev = (time_t)t;
            return 0;
        }
        w = cron_wall_from_local(l - 60);
    }
}
