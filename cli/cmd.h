/* cmd — the commands of the dagq CLI, one function each (the ETL commands,
 * backfill, mark and stop, are in cmd_etl.h). They read and write the
 * metastore only through named, parameterised statements and the SQL
 * functions of sql/ (dagq.trigger_dag, dagq.clear, dagq.pause,
 * dagq.unpause), so the CLI does exactly what a psql user can.
 * Results go to stdout; an error is one line on stderr, "dagq: ...". */
#ifndef DAGQ_CMD_H
#define DAGQ_CMD_H

#include "db.h"

/* Exit statuses. */
#define CMD_OK 0
#define CMD_ERR 1   /* the command failed (the database said no, or is unreachable) */
#define CMD_USAGE 2 /* the command line is wrong */

typedef struct cmd_ctx {
    db *db;                         /* connected; borrowed */
    int nargs;                      /* positional arguments after the command words */
    char *const *args;              /* borrowed */
    const char *conf;               /* --conf, or NULL */
    const char *logical_date;       /* --logical-date, or NULL */
    long long limit;                /* --limit */
    long long try_number;           /* --try, 0 when not given */
    int downstream;                 /* --downstream */
    const char *broker_url;         /* --broker-url, or NULL: queues shows no broker backlog */
    const char *redis_prefix;       /* --redis-prefix */
    const char *kafka_topic_prefix; /* --kafka-topic-prefix */
    const char *dag;                /* alerts: --dag, or NULL */
    int undelivered;                /* alerts: --undelivered */
    long long wait_s;               /* alert test: --wait */
    const char *token_name;         /* tokens create: --name */
    const char *token_role;         /* tokens create: --role */
    const char *expires;            /* tokens create: --expires, or NULL */
    const char *from, *to;          /* backfill: --from, --to, or NULL */
    const char *reprocess;          /* backfill: --reprocess (none, failed, all) */
    int reverse;                    /* backfill: --reverse */
    long long max_active_runs;      /* backfill: --max-active-runs, 0 when not given */
    int dry_run;                    /* backfill, db prune: --dry-run */
    const char *older_than;         /* db prune: --older-than, or NULL */
} cmd_ctx;

typedef int (*cmd_fn)(cmd_ctx *c);

/* Each returns CMD_OK, CMD_ERR or CMD_USAGE, having printed what happened. */
int cmd_db_migrate(cmd_ctx *c);
int cmd_dags(cmd_ctx *c);
int cmd_trigger(cmd_ctx *c);
int cmd_runs(cmd_ctx *c);
int cmd_tasks(cmd_ctx *c);
int cmd_logs(cmd_ctx *c);
int cmd_clear(cmd_ctx *c);
int cmd_pause(cmd_ctx *c);
int cmd_unpause(cmd_ctx *c);
int cmd_workers(cmd_ctx *c);
int cmd_queues(cmd_ctx *c);
int cmd_pools(cmd_ctx *c);

/* The words of a libpq or server error without the decoration: drops a
 * leading "<stmt>: ", "ERROR:  " and the statement-position lines, turns
 * DETAIL/HINT into "; ...", and whitespace runs into one space. Caller frees
 * with mem_free. */
char *cmd_clean_error(const char *err, const char *stmt);

/* Prints "dagq: " + the formatted message + newline on stderr, with any
 * newline inside the message turned into a space so it stays one line. */
void cmd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
