/* redis_backlog — queue_backlog on Redis (internal to common/queue/).
 *
 * The group's `lag` from XINFO GROUPS (Redis >= 7.0). When lag is nil (Redis
 * cannot compute it, e.g. after entries ahead of the group were deleted) or
 * absent (Redis < 7), backlog = XLEN - pending: acked and dead-lettered
 * entries are deleted in the same MULTI as their XACK, so every entry still
 * in the stream is either pending or not yet delivered. No stream: 0. No
 * group yet: XLEN (the group will be created at id 0). */
#ifndef DAGQ_REDIS_BACKLOG_H
#define DAGQ_REDIS_BACKLOG_H

#include <stddef.h>
#include <stdint.h>

/* queue__ops.backlog; impl is a qr_producer (its connection is used). */
int qr_backlog__get(void *impl, const char *group, int64_t *backlog, char *errbuf, size_t errlen);

#endif
