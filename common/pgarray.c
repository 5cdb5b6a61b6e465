#include "pgarray.h"

#include "mem.h"

#include <stdio.h>
#include <string.h>

void pgarray_init(pgarray *a)
{
    a->cap = 64;
    a->p = mem_alloc(a->cap);
    a->p[0] = '{';
    a->len = 1;
    a->n = 0;
}

void pgarray_free(pgarray *a)
{
    mem_free(a->p);
    a->p = NULL;
    a->len = a->cap = 0;
    a->n = 0;
}

/* Room for need more bytes and the closing "}\0". */
static void pgarray_room(pgarray *a, size_t need)
{
    if (a->len + need + 2 <= a->cap)
        return;
    while (a->len + need + 2 > a->cap)
        a->cap *= 2;
    a->p = mem_realloc(a->p, a->cap);
}

static void pgarray_sep(pgarray *a)
{
    pgarray_room(a, 1);
    if (a->n++ > 0)
        a->p[a->len++] = ',';
}

static void pgarray_raw(pgarray *a, const char *s, size_t n)
{
    pgarray_room(a, n);
    memcpy(a->p + a->len, s, n);
    a->len += n;
}

void pgarray_add(pgarray *a, const char *s)
{
    pgarray_sep(a);
    if (!s) {
        pgarray_raw(a, "NULL", 4);
        return;
    }
    /* quoted, with " and \ escaped: each byte may double, plus the quotes */
    size_t n = strlen(s);
    pgarray_room(a, 2 * n + 2);
    a->p[a->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            a->p[a->len++] = '\\';
        a->p[a->len++] = s[i];
    }
    a->p[a->len++] = '"';
}

void pgarray_add_ll(pgarray *a, long long v)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", v);
    pgarray_sep(a);
    pgarray_raw(a, b, (size_t)n);
}

void pgarray_add_double(pgarray *a, double v)
{
    char b[64];
    int n = snprintf(b, sizeof b, "%.17g", v);
    pgarray_sep(a);
    pgarray_raw(a, b, (size_t)n);
}

void pgarray_add_bool(pgarray *a, int v)
{
    pgarray_sep(a);
    pgarray_raw(a, v ? "t" : "f", 1);
}

const char *pgarray_lit(pgarray *a)
{
    a->p[a->len] = '}';
    a->p[a->len + 1] = '\0';
    return a->p;
}
