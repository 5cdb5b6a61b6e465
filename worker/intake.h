/* intake — the worker's consumers: one thread per worker group, each
 * polling its group's queue for at most as many messages as the worker has
 * free slots, and handing them to the main loop through an inbox. A write to
 * wake_fd tells the main loop that the inbox has something.
 *
 * Slot accounting: running tries (told by intake_set_running) + messages in
 * the inbox + messages being polled for never exceed the slots, so a busy
 * worker takes nothing it cannot start (Kafka: it pauses its partitions and
 * keeps polling, staying in its consumer group). */
#ifndef DAGQ_INTAKE_H
#define DAGQ_INTAKE_H

#include "metrics.h"
#include "queue.h"

typedef struct intake intake; /* opaque */

typedef struct intake_item {
    queue_msg *msg;           /* owned: give it back with intake_done or intake_claimed */
    queue_consumer *consumer; /* borrowed */
    const char *group;        /* borrowed */
    struct intake_item *next;
} intake_item;

/* Starts one consumer thread per group. conf must outlive the intake; so
 * must m (borrowed, may be NULL), told whether the broker answers. */
intake *intake_start(const queue_conf *conf, char **groups, int ngroups, int slots, int wake_fd,
                     metrics *m);

/* The oldest message, or NULL. The caller owns the item until it calls
 * intake_done or intake_claimed. */
intake_item *intake_take(intake *in);
/* Puts an item back at the head (e.g. the database is down). */
void intake_unget(intake *in, intake_item *it);

/* The message was decided on: frees its slot at once, and has the intake's
 * settler thread ack it (or dead-letter it with reason when reason is not
 * NULL) and free it and the item. The caller never waits for the broker, so
 * a stalled broker cannot starve its heartbeats. */
void intake_done(intake *in, intake_item *it, const char *reason);

/* The message's try was claimed: the settler acks it and frees it and the
 * item; its slot passes to the try, counted as running until
 * intake_set_running says otherwise, so no consumer can take it in
 * between. */
void intake_claimed(intake *in, intake_item *it);

/* How many tries run now; frees slots for the consumers. */
void intake_set_running(intake *in, int running);

/* Stops the threads (acks already asked for are done first; messages not
 * yet taken are left unacked, so the broker delivers them again elsewhere)
 * and leaves the consumer groups. */
void intake_stop(intake *in);

#endif
