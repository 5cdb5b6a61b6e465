/* table — aligned text tables for people, as the CLI prints them: a header
 * row, each column as wide as its widest cell, two spaces between columns,
 * numbers right-aligned, no trailing blanks. Cells are copied; control
 * characters in a cell are shown escaped ("\n", "\t", "?") so a cell never
 * breaks its row. Widths count UTF-8 characters, not bytes. */
#ifndef DAGQ_TABLE_H
#define DAGQ_TABLE_H

#include <stddef.h>
#include <stdio.h>

typedef struct table table; /* opaque */

/* headers: ncols strings (copied). align: ncols characters, 'l' or 'r'
 * (anything else is 'l'); NULL means all left. Free with table_free. */
table *table_new(int ncols, const char *const *headers, const char *align);
void table_free(table *t); /* table_free(NULL) does nothing */

/* Appends one cell (copied); a row is complete after ncols cells. NULL is
 * shown as "-". */
void table_cell(table *t, const char *s);
void table_cellf(table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Complete rows so far. */
int table_rows(const table *t);

/* Prints the header and the rows; a row left incomplete is padded with "-". */
void table_print(const table *t, FILE *out);

/* A duration for people: "0.4s", "59.9s", "3m04s", "2h05m", "3d04h".
 * Negative durations are shown as 0; NaN or infinity as "-". */
void table_duration(double seconds, char *buf, size_t len);

#endif
