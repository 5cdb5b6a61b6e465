/* queue_ensured — the worker groups a producer has made sure exist on the
 * broker, each with the broker's name for it (Redis: the stream key; Kafka:
 * the topic), so only the first push to a group pays for the check (internal
 * to common/queue/). Used by one thread at a time; a zeroed struct is an
 * empty set. */
#ifndef DAGQ_QUEUE_ENSURED_H
#define DAGQ_QUEUE_ENSURED_H

typedef struct queue_ensured {
    struct queue_ensured_item {
        char *group, *name;
    } * items;
    int n;
} queue_ensured;

/* The broker's name of group, or NULL when it has not been ensured. The
 * string stays the set's until the group is forgotten or the set cleared. */
const char *queue_ensured__find(const queue_ensured *e, const char *group);

/* Remembers group (copied) under name, which the set takes; returns name. */
const char *queue_ensured__add(queue_ensured *e, const char *group, char *name);

/* Forgets every group whose broker name is name (deleted behind our back:
 * the next push ensures it again). name is borrowed and must not be one of
 * the set's own strings. */
void queue_ensured__forget_name(queue_ensured *e, const char *name);

/* Forgets everything and frees what the set holds; the set stays usable. */
void queue_ensured__clear(queue_ensured *e);

#endif
