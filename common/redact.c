#include "redact.h"

#include "mem.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Every function finds the byte ranges of the input that are secrets, then
 * writes the input with each range (overlapping and adjacent ones merged)
 * replaced by REDACTED. */

typedef struct redact_range {
    size_t a, b;
} redact_range;

typedef struct redact_ranges {
    redact_range *r;
    size_t n, cap;
} redact_ranges;

static void redact_add(redact_ranges *rs, size_t a, size_t b)
{
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 8;
        rs->r = mem_realloc(rs->r, rs->cap * sizeof *rs->r);
    }
    rs->r[rs->n++] = (redact_range){a, b};
}

static int redact_cmp(const void *x, const void *y)
{
    const redact_range *p = x, *q = y;
    return p->a < q->a ? -1 : p->a > q->a ? 1 : 0;
}

typedef struct redact_buf {
    char *data;
    size_t len;
} redact_buf;

static void redact_put(redact_buf *o, const char *s, size_t n)
{
    o->data = mem_realloc(o->data, o->len + n + 1);
    memcpy(o->data + o->len, s, n);
    o->len += n;
    o->data[o->len] = '\0';
}

/* s[0..len) with the ranges replaced; frees the ranges. */
static char *redact_apply(const char *s, size_t len, redact_ranges *rs)
{
    redact_buf o = {0};
    redact_put(&o, "", 0);
    if (rs->n)
        qsort(rs->r, rs->n, sizeof *rs->r, redact_cmp);
    size_t i = 0, k = 0;
    while (k < rs->n) {
        size_t a = rs->r[k].a, b = rs->r[k].b;
        for (k++; k < rs->n && rs->r[k].a <= b; k++)
            if (rs->r[k].b > b)
                b = rs->r[k].b;
        redact_put(&o, s + i, a - i); /* merged and sorted: a >= i */
        redact_put(&o, REDACTED, strlen(REDACTED));
        i = b;
    }
    redact_put(&o, s + i, len - i);
    mem_free(rs->r);
    rs->r = NULL;
    rs->n = rs->cap = 0;
    return o.data;
}

static int redact_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int redact_alnum(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int redact_hex(int c)
{
    return (c >= '0' && c <= '9')   ? c - '0'
           : (c >= 'a' && c <= 'f') ? c - 'a' + 10
           : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                    : -1;
}

/* libpq's isspace(), in the C locale. */
static int redact_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int redact_contains_ci(const char *s, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t j = 0;
        while (j < m && redact_lower((unsigned char)s[i + j]) == needle[j])
            j++;
        if (j == m)
            return 1;
    }
    return 0;
}

int redact_name_is_secret(const char *name, size_t n)
{
    static const char *const words[] = {"pass", "pwd",        "token", "secret", "key",
                                        "auth", "credential", "sig",   NULL};
    char dec[128];
    size_t m = 0;
    for (size_t i = 0; i < n && m < sizeof dec; i++) { /* percent-decoded */
        int h, l;
        if (name[i] == '%' && i + 2 < n && (h = redact_hex((unsigned char)name[i + 1])) >= 0 &&
            (l = redact_hex((unsigned char)name[i + 2])) >= 0) {
            dec[m++] = (char)(h * 16 + l);
            i += 2;
        } else {
            dec[m++] = name[i];
        }
    }
    for (const char *const *w = words; *w; w++)
        if (redact_contains_ci(name, n, *w) || redact_contains_ci(dec, m, *w))
            return 1;
    return 0;
}

/* ---- URLs ---- */

/* Query parameters in s[from..len): the values of secret ones. A `#` does not
 * end a value here: an unencoded one may be part of a token. */
static void redact_query(const char *s, size_t from, size_t len, size_t base, redact_ranges *rs)
{
    for (size_t i = from; i < len;) {
        size_t j = i;
        while (j < len && s[j] != '&' && s[j] != ';')
            j++;
        const char *eq = memchr(s + i, '=', j - i);
        if (eq && redact_name_is_secret(s + i, (size_t)(eq - (s + i))))
            redact_add(rs, base + (size_t)(eq - s) + 1, base + j);
        i = j + 1;
    }
}

/* The secrets of the URL s[0..len), which starts with its scheme; offsets are
 * relative to base. Returns 0, or -1 when s is not scheme://... */
static int redact_url_ranges(const char *s, size_t len, size_t base, redact_ranges *rs)
{
    const char *sep = memmem(s, len, "://", 3);
    if (!sep || sep == s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return -1;
    for (const char *p = s; p < sep; p++)
        if (!redact_alnum((unsigned char)*p) && !strchr("+-.", *p))
            return -1;
    size_t slen = (size_t)(sep - s), a = slen + 3;
    int http =
        (slen == 4 && !strncasecmp(s, "http", 4)) || (slen == 5 && !strncasecmp(s, "https", 5));
    const char *at = memrchr(s + a, '@', len - a);
    if (at) {
        size_t e = (size_t)(at - s);
        const char *colon = memchr(s + a, ':', e - a);
        if (colon)
            redact_add(rs, base + (size_t)(colon - s) + 1, base + e);
        else if (http)
            redact_add(rs, base + a, base + e);
    }
    const char *q = memchr(s + a, '?', len - a);
    if (q)
        redact_query(s, (size_t)(q - s) + 1, len, base, rs);
    return 0;
}

char *redact_url(const char *url)
{
    if (!url)
        return NULL;
    redact_ranges rs = {0};
    size_t len = strlen(url), i = 0;
    while (i < len && redact_space((unsigned char)url[i]))
        i++;
    if (redact_url_ranges(url + i, len - i, i, &rs) != 0) {
        /* not a URL (a scheme left out, mistyped): a "user:password@host"
         * shape is still masked, from the first ':' to the last '@' */
        const char *at = memrchr(url + i, '@', len - i);
        const char *colon = at ? memchr(url + i, ':', (size_t)(at - url) - i) : NULL;
        if (colon)
            redact_add(&rs, (size_t)(colon - url) + 1, (size_t)(at - url));
    }
    return redact_apply(url, len, &rs);
}

/* ---- libpq conninfo ---- */

/* The end of a value that starts at s[i], by libpq's rules: '...' with \
 * escaping any byte (to the end when unterminated), or up to a blank with \
 * escaping any byte. */
static size_t redact_value_end(const char *s, size_t len, size_t i)
{
    if (i < len && s[i] == '\'') {
        for (i++; i < len; i++) {
            if (s[i] == '\\' && i + 1 < len)
                i++;
            else if (s[i] == '\'')
                return i + 1;
        }
        return len;
    }
    for (; i < len && !redact_space((unsigned char)s[i]); i++)
        if (s[i] == '\\' && i + 1 < len)
            i++;
    return i;
}

static void redact_conninfo_ranges(const char *s, size_t len, redact_ranges *rs)
{
    for (size_t i = 0;;) {
        while (i < len && redact_space((unsigned char)s[i]))
            i++;
        if (i >= len)
            return;
        size_t k = i;
        while (k < len && s[k] != '=' && !redact_space((unsigned char)s[k]))
            k++;
        size_t key_end = k;
        while (k < len && redact_space((unsigned char)s[k]))
            k++;
        if (k >= len || s[k] != '=') { /* not key=value: libpq's error quotes it */
            redact_add(rs, i, key_end);
            i = key_end;
            continue;
        }
        for (k++; k < len && redact_space((unsigned char)s[k]);)
            k++; /* libpq skips blanks after = too: "password= x" is x */
        size_t e = redact_value_end(s, len, k);
        int dbname = key_end - i == 6 && !memcmp(s + i, "dbname", 6);
        if (redact_name_is_secret(s + i, key_end - i) ||
            (dbname && (memchr(s + k, '=', e - k) || memmem(s + k, e - k, "://", 3))))
            redact_add(rs, k, e);
        i = e;
    }
}

/* A URL (any scheme://) or a conninfo. */
static void redact_dsn_ranges(const char *s, size_t len, redact_ranges *rs)
{
    size_t i = 0;
    while (i < len && redact_space((unsigned char)s[i]))
        i++;
    if (redact_url_ranges(s + i, len - i, i, rs) != 0)
        redact_conninfo_ranges(s, len, rs);
}

char *redact_conninfo(const char *conninfo)
{
    if (!conninfo)
        return NULL;
    redact_ranges rs = {0};
    size_t len = strlen(conninfo);
    redact_dsn_ranges(conninfo, len, &rs);
    return redact_apply(conninfo, len, &rs);
}

/* ---- free text ---- */

static int redact_keychar(int c)
{
    return redact_alnum(c) || c == '_' || c == '.' || c == '-';
}

/* Every scheme://... up to the next blank. */
static void redact_text_urls(const char *s, size_t len, redact_ranges *rs)
{
    for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), "://", 3)) != NULL; p += 3) {
        const char *b = p;
        while (b > s && (redact_alnum((unsigned char)b[-1]) || strchr("+-.", b[-1])))
            b--;
        while (b < p && !((*b >= 'a' && *b <= 'z') || (*b >= 'A' && *b <= 'Z')))
            b++;
        const char *e = p + 3;
        while (e < s + len && !redact_space((unsigned char)*e))
            e++;
        if (b < p)
            redact_url_ranges(b, (size_t)(e - b), (size_t)(b - s), rs);
    }
}

/* Every secretname=value (value '...', "..." or up to a blank). */
static void redact_text_pairs(const char *s, size_t len, redact_ranges *rs)
{
    for (size_t i = 0; i < len; i++) {
        if (!redact_keychar((unsigned char)s[i]) || (i && redact_keychar((unsigned char)s[i - 1])))
            continue;
        size_t j = i;
        while (j < len && redact_keychar((unsigned char)s[j]))
            j++;
        size_t k = j;
        while (k < len && (s[k] == ' ' || s[k] == '\t'))
            k++;
        if (k >= len || s[k] != '=' || !redact_name_is_secret(s + i, j - i)) {
            i = j - 1;
            continue;
        }
        for (k++; k < len && (s[k] == ' ' || s[k] == '\t');)
            k++;
        size_t e = k;
        if (k < len && s[k] == '"') {
            for (e = k + 1; e < len && s[e] != '"'; e++)
                if (s[e] == '\\' && e + 1 < len)
                    e++;
            e = e < len ? e + 1 : len;
        } else {
            e = redact_value_end(s, len, k);
        }
        redact_add(rs, k, e);
        i = e ? e - 1 : 0;
    }
}

char *redact_text(const char *msg)
{
    if (!msg)
        return NULL;
    redact_ranges rs = {0};
    size_t len = strlen(msg);
    redact_text_urls(msg, len, &rs);
    redact_text_pairs(msg, len, &rs);
    return redact_apply(msg, len, &rs);
}

/* ---- known secrets ---- */

static void redact_secret_ranges(const char *s, size_t len, const char *const *secrets, size_t n,
                                 redact_ranges *rs)
{
    for (size_t k = 0; k < n; k++) {
        const char *x = secrets ? secrets[k] : NULL;
        size_t m = x ? strlen(x) : 0;
        if (!m)
            continue;
        for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), x, m)) != NULL; p++)
            redact_add(rs, (size_t)(p - s), (size_t)(p - s) + m);
    }
}

char *redact_secret_in(const char *msg, const char *const *secrets, size_t n)
{
    if (!msg)
        return NULL;
    redact_ranges rs = {0};
    size_t len = strlen(msg);
    redact_secret_ranges(msg, len, secrets, n, &rs);
    return redact_apply(msg, len, &rs);
}

typedef struct redact_list {
    char **s;
    size_t n, cap;
} redact_list;

static void redact_list_add(redact_list *l, const char *s, size_t n)
{
    if (!n)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->s = mem_realloc(l->s, l->cap * sizeof *l->s);
    }
    l->s[l->n++] = mem_strndup(s, n);
}

/* One secret as written in a dsn, and the forms a library may quote it in. */
static void redact_variants(redact_list *l, const char *s, size_t n)
{
    redact_list_add(l, s, n);
    if (n >= 2 && s[0] == '\'') { /* '...': without the quotes, unescaped */
        size_t m = s[n - 1] == '\'' ? n - 2 : n - 1;
        redact_list_add(l, s + 1, m);
        s++;
        n = m;
    }
    char *u = mem_alloc(n + 1), *d = mem_alloc(n + 1);
    size_t un = 0, dn = 0;
    for (size_t i = 0; i < n; i++) {
        u[un++] = (s[i] == '\\' && i + 1 < n) ? s[++i] : s[i];
    }
    for (size_t i = 0; i < n; i++) {
        int h, lo;
        if (s[i] == '%' && i + 2 < n && (h = redact_hex((unsigned char)s[i + 1])) >= 0 &&
            (lo = redact_hex((unsigned char)s[i + 2])) >= 0) {
            d[dn++] = (char)(h * 16 + lo);
            i += 2;
        } else {
            d[dn++] = s[i];
        }
    }
    redact_list_add(l, u, un);
    redact_list_add(l, d, dn);
    mem_free(u);
    mem_free(d);
    for (size_t i = 0, j; i < n; i = j + 1) { /* the pieces a URL parser cuts it into */
        for (j = i; j < n && !strchr("/?#@:&;", s[j]); j++)
            ;
        if (j - i < n)
            redact_list_add(l, s + i, j - i);
    }
}

char *redact_error(const char *msg, const char *dsn)
{
    if (!msg)
        return NULL;
    redact_ranges rs = {0};
    redact_list l = {0};
    if (dsn) {
        redact_dsn_ranges(dsn, strlen(dsn), &rs);
        for (size_t k = 0; k < rs.n; k++)
            redact_variants(&l, dsn + rs.r[k].a, rs.r[k].b - rs.r[k].a);
        rs.n = 0;
    }
    size_t len = strlen(msg);
    redact_secret_ranges(msg, len, (const char *const *)l.s, l.n, &rs);
    redact_text_urls(msg, len, &rs);
    redact_text_pairs(msg, len, &rs);
    for (size_t k = 0; k < l.n; k++)
        mem_free(l.s[k]);
    mem_free(l.s);
    return redact_apply(msg, len, &rs);
}
