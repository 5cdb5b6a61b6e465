/* cmd_etl — the CLI's commands for what ETL teams do every day: backfills
 * (create, dry run, list with progress, cancel), marking a task instance
 * success or failed, stopping a run or a task, and `dagq dags` with what
 * each DAG waits on. They only call the SQL functions and read the views of
 * sql/011*_etl_*.sql (dagq.backfill, dagq.backfill_plan,
 * dagq.backfill_cancel, dagq.mark, dagq.stop, dagq.backfill_progress,
 * dagq.dag_waits_on), so they do exactly what a psql user with the same
 * role can, and a role that may not act on a DAG gets the database's
 * permission error. Output is aligned tables (table.h); an error is one
 * line on stderr, "dagq: ...". */
#ifndef DAGQ_CMD_ETL_H
#define DAGQ_CMD_ETL_H

#include "cmd.h"

/* Each returns CMD_OK, CMD_ERR or CMD_USAGE, having printed what happened. */
int cmd_backfill(cmd_ctx *c);        /* DAG --from --to [...]: the id, or the plan (--dry-run) */
int cmd_backfill_cancel(cmd_ctx *c); /* ID */
int cmd_backfills(cmd_ctx *c);       /* [DAG]: backfills with their progress */
int cmd_mark(cmd_ctx *c);            /* RUN TASK success|failed [--downstream] */
int cmd_stop(cmd_ctx *c);            /* RUN [TASK] */
int cmd_etl_dags(cmd_ctx *c);        /* cmd_dags, then what DAGs wait on */

#endif
