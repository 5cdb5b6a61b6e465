#include "table.h"

#include "mem.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

struct table {
    int ncols;
    char **headers; /* ncols */
    char *align;    /* ncols, 'l' or 'r' */
    char **cells;   /* row-major, ncells of them */
    size_t ncells, cap;
};

table *table_new(int ncols, const char *const *headers, const char *align)
{
    table *t = mem_calloc(1, sizeof *t);
    t->ncols = ncols > 0 ? ncols : 1;
    t->headers = mem_calloc((size_t)t->ncols, sizeof(char *));
    t->align = mem_calloc((size_t)t->ncols + 1, 1);
    int alen = align ? (int)strlen(align) : 0;
    for (int i = 0; i < t->ncols; i++) {
        t->headers[i] = mem_strdup(i < ncols && headers && headers[i] ? headers[i] : "");
        t->align[i] = (i < alen && align[i] == 'r') ? 'r' : 'l';
    }
    return t;
}

void table_free(table *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->ncols; i++)
        mem_free(t->headers[i]);
    for (size_t i = 0; i < t->ncells; i++)
        mem_free(t->cells[i]);
    mem_free(t->headers);
    mem_free(t->align);
    mem_free(t->cells);
    mem_free(t);
}

/* A copy of s where control characters cannot break the row. */
static char *table_clean(const char *s)
{
    size_t n = strlen(s);
    char *out = mem_alloc(2 * n + 1);
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n' || *p == '\t' || *p == '\r') {
            out[o++] = '\\';
            out[o++] = *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r';
        } else if (*p < 0x20 || *p == 0x7f) {
            out[o++] = '?';
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
    return out;
}

void table_cell(table *t, const char *s)
{
    if (t->ncells == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->cells = mem_realloc(t->cells, t->cap * sizeof(char *));
    }
    t->cells[t->ncells++] = table_clean(s ? s : "-");
}

void table_cellf(table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        table_cell(t, "?");
        return;
    }
    char *buf = mem_alloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
    table_cell(t, buf);
    mem_free(buf);
}

int table_rows(const table *t)
{
    return (int)(t->ncells / (size_t)t->ncols);
}

/* Display width: UTF-8 continuation bytes do not count. */
static size_t table_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80)
            w++;
    return w;
}

static void table_pad(FILE *out, size_t n)
{
    while (n--)
        fputc(' ', out);
}

static void table_print_row(const table *t, FILE *out, char *const *row, size_t have,
                            const size_t *width)
{
    for (int c = 0; c < t->ncols; c++) {
        const char *s = (size_t)c < have ? row[c] : "-";
        size_t w = table_width(s);
        size_t pad = width[c] > w ? width[c] - w : 0;
        int last = c == t->ncols - 1;
        if (c > 0)
            fputs("  ", out);
        if (t->align[c] == 'r')
            table_pad(out, pad);
        fputs(s, out);
        if (t->align[c] != 'r' && !last)
            table_pad(out, pad);
    }
    fputc('\n', out);
}

void table_print(const table *t, FILE *out)
{
    size_t *width = mem_calloc((size_t)t->ncols, sizeof(size_t));
    for (int c = 0; c < t->ncols; c++)
        width[c] = table_width(t->headers[c]);
    for (size_t i = 0; i < t->ncells; i++) {
        size_t w = table_width(t->cells[i]);
        size_t c = i % (size_t)t->ncols;
        if (w > width[c])
            width[c] = w;
    }
    table_print_row(t, out, t->headers, (size_t)t->ncols, width);
    for (size_t i = 0; i < t->ncells; i += (size_t)t->ncols) {
        size_t have = t->ncells - i < (size_t)t->ncols ? t->ncells - i : (size_t)t->ncols;
        table_print_row(t, out, t->cells + i, have, width);
    }
    mem_free(width);
}

void table_duration(double seconds, char *buf, size_t len)
{
    if (isnan(seconds) || isinf(seconds)) {
        snprintf(buf, len, "-");
        return;
    }
    if (seconds < 0)
        seconds = 0;
    if (seconds < 59.95) {
        snprintf(buf, len, "%.1fs", seconds);
        return;
    }
    if (seconds > 1e15) /* beyond any real duration; keeps the arithmetic exact */
        seconds = 1e15;
    long long s = llround(seconds);
    if (s < 3600)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    else
        snprintf(buf, len, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
}
