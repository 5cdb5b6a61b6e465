/* pgarray — PostgreSQL array literals built for text parameters
 * ({1,2,3}, {"a b","c\"d",NULL}), so that a batch travels as one parameter
 * per column and one statement does the work of many. */
#ifndef DAGQ_PGARRAY_H
#define DAGQ_PGARRAY_H

#include <stddef.h>

typedef struct pgarray {
    char *p; /* "{" ... ; "}" added by pgarray_lit */
    size_t len, cap;
    int n; /* elements so far */
} pgarray;

void pgarray_init(pgarray *a);
void pgarray_free(pgarray *a);

/* Adds an element: s quoted (NULL: an SQL NULL element). */
void pgarray_add(pgarray *a, const char *s);
void pgarray_add_ll(pgarray *a, long long v);
void pgarray_add_double(pgarray *a, double v);
void pgarray_add_bool(pgarray *a, int v);

/* The literal so far, "{...}": valid until the next add or free. */
const char *pgarray_lit(pgarray *a);

#endif
