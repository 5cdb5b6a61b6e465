#include "queue_ensured.h"

#include "mem.h"

#include <string.h>

const char *queue_ensured__find(const queue_ensured *e, const char *group)
{
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->items[i].group, group))
            return e->items[i].name;
    return NULL;
}

const char *queue_ensured__add(queue_ensured *e, const char *group, char *name)
{
    e->items = mem_realloc(e->items, sizeof *e->items * (size_t)(e->n + 1));
    e->items[e->n++] = (struct queue_ensured_item){mem_strdup(group), name};
    return name;
}

void queue_ensured__forget_name(queue_ensured *e, const char *name)
{
    for (int i = 0; i < e->n;) {
        if (strcmp(e->items[i].name, name)) {
            i++;
            continue;
        }
        mem_free(e->items[i].group);
        mem_free(e->items[i].name);
        e->items[i] = e->items[--e->n];
    }
}

void queue_ensured__clear(queue_ensured *e)
{
    for (int i = 0; i < e->n; i++) {
        mem_free(e->items[i].group);
        mem_free(e->items[i].name);
    }
    mem_free(e->items);
    e->items = NULL;
    e->n = 0;
}
