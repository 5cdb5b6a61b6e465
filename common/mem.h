/* mem — allocation wrappers that abort on out-of-memory, so callers never
 * test for NULL (Redis's zmalloc habit). mem_free(NULL) does nothing. */
#ifndef DAGQ_MEM_H
#define DAGQ_MEM_H

#include <stddef.h>

void *mem_alloc(size_t n); /* caller frees with mem_free */
void *mem_calloc(size_t count, size_t n);
void *mem_realloc(void *p, size_t n);
char *mem_strdup(const char *s); /* NULL in, NULL out */
char *mem_strndup(const char *s, size_t n);
char *mem_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mem_free(void *p);

#endif
