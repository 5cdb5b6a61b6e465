/* redis_reply — reading hiredis replies (internal to common/queue/). */
#ifndef DAGQ_REDIS_REPLY_H
#define DAGQ_REDIS_REPLY_H

#include <hiredis.h>

/* An error reply whose text starts with prefix ("NOGROUP", "BUSYGROUP"). */
int qr_reply__is(const redisReply *r, const char *prefix);

/* A string or status reply equal to s. */
int qr_reply__str_eq(const redisReply *r, const char *s);

/* An error reply Redis gives while it cannot serve for now (LOADING, BUSY,
 * MASTERDOWN, TRYAGAIN, READONLY: a restart or a failover): retriable. */
int qr_reply__transient(const redisReply *r);

/* An error reply that means the URL lacks the password, or the user the
 * rights (NOAUTH, WRONGPASS, NOPERM): configuration, not retriable. */
int qr_reply__auth(const redisReply *r);

/* The value of key in a flat [k1, v1, k2, v2, ...] array, or NULL. The reply
 * returned is part of map. */
const redisReply *qr_reply__map_get(const redisReply *map, const char *key);

#endif
