/* cmd_prune — `dagq db prune --older-than AGE [--dry-run]`: deletes
 * finished runs that ended longer ago than AGE, with their task instances,
 * tries, logs and events, through dagq.prune_history (sql/014_retention.sql)
 * in batches of 1,000 runs, each its own short transaction; then the rows of
 * workers gone for a day (dagq.prune_workers). --dry-run prints what would
 * go, per DAG (dagq.prune_preview), and deletes nothing. Members of
 * dagq_admin (or dagq_scheduler) may call them. */
#ifndef DAGQ_CMD_PRUNE_H
#define DAGQ_CMD_PRUNE_H

#include "cmd.h"

int cmd_db_prune(cmd_ctx *c);

#endif
