/* cmd_alerts — the alert commands of the dagq CLI:
 *
 *   dagq alerts [--dag D] [--undelivered] [--limit N]
 *       events of the outbox, newest first, each with its deliveries: the
 *       channel, the state (pending, sending, retrying, batched, delivered,
 *       undeliverable), attempts, and the receiver's answer or the error
 *   dagq alert test CHANNEL [--wait S]
 *       writes a test event for CHANNEL (dagq.alert_test); a running
 *       dagq-scheduler delivers it at once, and this prints what the
 *       receiver answered (exit 0 when delivered, 1 when not)
 *
 * Both go through named statements and the SQL functions of
 * sql/012b_alert_delivery.sql, as a psql user would. */
#ifndef DAGQ_CMD_ALERTS_H
#define DAGQ_CMD_ALERTS_H

#include "cmd.h"

int cmd_alerts(cmd_ctx *c);
int cmd_alert_test(cmd_ctx *c);

#endif
