/* dagq — the admin CLI. Parses the command line with common/config's option
 * table (global options and the options of single commands in one table, so
 * each can also come from the environment), checks the command's arguments,
 * connects to the metastore and hands over to cli/cmd.c. */
#include "cmd.h"
#include "cmd_alerts.h"
#include "cmd_prune.h"
#include "cmd_tokens.h"
#include "cmd_etl.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "mem.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static char *opt_database_url;
static char *opt_log_level;
static char *opt_conf;
static char *opt_logical_date;
static long long opt_limit;
static long long opt_try;
static int opt_downstream;
static char *opt_broker_url;
static char *opt_redis_prefix;
static char *opt_kafka_topic_prefix;
static char *opt_dag;
static int opt_undelivered;
static long long opt_wait;
static char *opt_token_name, *opt_token_role, *opt_expires;
static char *opt_from, *opt_to, *opt_reprocess;
static int opt_reverse, opt_dry_run;
static long long opt_max_active_runs;
static char *opt_older_than;

/* The first two rows apply to every command; the others to the commands
 * that list them in cli_commands[].options. */
static const config_option cli_options[] = {
    {"database-url", CONFIG_SECRET, NULL,
     "metastore conninfo or URI (unset: libpq's defaults, PGHOST ...)", &opt_database_url},
    {"log-level", CONFIG_STRING, "error", "debug, info, warn or error", &opt_log_level},
    {"conf", CONFIG_STRING, NULL, "trigger, backfill: the runs' conf, a JSON object", &opt_conf},
    {"logical-date", CONFIG_STRING, NULL,
     "trigger: the run's logical date (default now; UTC unless a zone is given)",
     &opt_logical_date},
    {"limit", CONFIG_INT, "50", "runs, alerts: show at most N rows", &opt_limit, 1, 1000000},
    {"try", CONFIG_INT, NULL, "logs: the try to show (default: the latest with a log)", &opt_try, 1,
     INT_MAX},
    {"downstream", CONFIG_FLAG, NULL, "clear, mark: also the task instances downstream of TASK_ID",
     &opt_downstream},
    {"from", CONFIG_STRING, NULL,
     "backfill: the first logical date (a date or a wall-clock time in the DAG's time zone)",
     &opt_from},
    {"to", CONFIG_STRING, NULL, "backfill: the last logical date (included), as --from", &opt_to},
    {"reprocess", CONFIG_STRING, "none",
     "backfill: an interval that has a run: none (leave it), failed (rerun it if it failed), all",
     &opt_reprocess},
    {"reverse", CONFIG_FLAG, NULL, "backfill: run the newest interval first", &opt_reverse},
    {"max-active-runs", CONFIG_INT, NULL,
     "backfill: most of its runs at once (default: the DAG's max_active_runs)",
     &opt_max_active_runs, 1, 10000},
    {"dry-run", CONFIG_FLAG, NULL,
     "backfill, db prune: print what it would do (intervals, rows to delete); change nothing",
     &opt_dry_run},
    {"broker-url", CONFIG_SECRET, NULL,
     "queues: the broker (redis://... or kafka://...) whose backlog to show", &opt_broker_url},
    {"redis-prefix", CONFIG_STRING, "dagq:", "queues: Redis key prefix", &opt_redis_prefix},
    {"kafka-topic-prefix", CONFIG_STRING, "dagq.", "queues: Kafka topic prefix",
     &opt_kafka_topic_prefix},
    {"dag", CONFIG_STRING, NULL, "alerts: only the events of this DAG", &opt_dag},
    {"undelivered", CONFIG_FLAG, NULL, "alerts: only deliveries not delivered (yet)",
     &opt_undelivered},
    {"wait", CONFIG_INT, "30", "alert test: seconds to wait for a scheduler to send it", &opt_wait,
     1, 3600},
    {"name", CONFIG_STRING, NULL, "tokens create: the token's name", &opt_token_name},
    {"role", CONFIG_STRING, NULL,
     "tokens create: viewer, operator, author (dagq_<that>) or a team role in one of them",
     &opt_token_role},
    {"expires", CONFIG_STRING, NULL, "tokens create: valid for this long (90d, 12h, 2 weeks)",
     &opt_expires},
    {"older-than", CONFIG_STRING, NULL,
     "db prune: finished runs that ended longer ago than this (30d, 12h, 90 days)",
     &opt_older_than},
    {NULL},
};
#define CLI_GLOBAL_OPTIONS 2

typedef struct cli_command {
    const char *name;        /* one or two words: "db migrate" */
    const char *synopsis;    /* arguments and options, for usage lines */
    int min_args, max_args;  /* positional arguments after the name */
    const char *argnames[3]; /* for "missing argument" errors */
    const char *options;     /* the non-global options it takes: ",conf,logical-date," */
    const char *help;
    cmd_fn fn; /* NULL: help */
} cli_command;

static const cli_command cli_commands[] = {
    {"db migrate",
     "",
     0,
     0,
     {NULL},
     "",
     "apply missing migrations; prints how many and the current one",
     cmd_db_migrate},
    {"db prune",
     "--older-than AGE [--dry-run]",
     0,
     0,
     {NULL},
     ",older-than,dry-run,",
     "delete finished runs older than AGE with their task instances, tries, logs and events",
     cmd_db_prune},
    {"dags",
     "",
     0,
     0,
     {NULL},
     "",
     "list DAGs with their schedule, state and next run, and what they wait on",
     cmd_etl_dags},
    {"trigger",
     "DAG [--conf JSON] [--logical-date TS]",
     1,
     1,
     {"DAG"},
     ",conf,logical-date,",
     "start a manual run of DAG; prints its run id",
     cmd_trigger},
    {"runs", "[DAG] [--limit N]", 0, 1, {"DAG"}, ",limit,", "list runs, newest first", cmd_runs},
    {"tasks", "RUN_ID", 1, 1, {"RUN_ID"}, "", "list the task instances of a run", cmd_tasks},
    {"logs",
     "RUN_ID TASK_ID [--try N]",
     2,
     2,
     {"RUN_ID", "TASK_ID"},
     ",try,",
     "print the captured output of a try",
     cmd_logs},
    {"clear",
     "RUN_ID [TASK_ID] [--downstream]",
     1,
     2,
     {"RUN_ID", "TASK_ID"},
     ",downstream,",
     "set finished task instances back to scheduled",
     cmd_clear},
    {"mark",
     "RUN_ID TASK_ID success|failed [--downstream]",
     3,
     3,
     {"RUN_ID", "TASK_ID", "success|failed"},
     ",downstream,",
     "set a task instance's state as your decision (a running try is stopped)",
     cmd_mark},
    {"stop",
     "RUN_ID [TASK_ID]",
     1,
     2,
     {"RUN_ID", "TASK_ID"},
     "",
     "stop a run (or one task): running tries are killed, the rest do not start",
     cmd_stop},
    {"backfill cancel",
     "BACKFILL_ID",
     1,
     1,
     {"BACKFILL_ID"},
     "",
     "cancel a backfill: its runs that have not started are deleted",
     cmd_backfill_cancel},
    {"backfill",
     "DAG --from DATE --to DATE [--reprocess none|failed|all] [--reverse] [--max-active-runs N] "
     "[--conf JSON] [--dry-run]",
     1,
     1,
     {"DAG"},
     ",from,to,reprocess,reverse,max-active-runs,conf,dry-run,",
     "run every interval of DAG's schedule whose logical date lies in the range; prints its id",
     cmd_backfill},
    {"backfills",
     "[DAG]",
     0,
     1,
     {"DAG"},
     "",
     "list backfills with their progress, newest first",
     cmd_backfills},
    {"pause", "DAG", 1, 1, {"DAG"}, "", "stop creating runs and queueing tasks", cmd_pause},
    {"unpause", "DAG", 1, 1, {"DAG"}, "", "resume DAG", cmd_unpause},
    {"workers", "", 0, 0, {NULL}, "", "list workers (no heartbeat for 60 s: lost)", cmd_workers},
    {"queues",
     "[--broker-url URL]",
     0,
     0,
     {NULL},
     ",broker-url,redis-prefix,kafka-topic-prefix,",
     "per worker group: queued, broker backlog, running, live workers, free slots",
     cmd_queues},
    {"pools", "", 0, 0, {NULL}, "", "list pools: slots, slots in use, free", cmd_pools},
    {"alerts",
     "[--dag DAG] [--undelivered] [--limit N]",
     0,
     0,
     {NULL},
     ",dag,undelivered,limit,",
     "events and their alert deliveries, newest first",
     cmd_alerts},
    {"alert test",
     "CHANNEL [--wait S]",
     1,
     1,
     {"CHANNEL"},
     ",wait,",
     "send a test alert to CHANNEL and print the receiver's answer",
     cmd_alert_test},
    {"tokens create",
     "--name NAME --role ROLE [--expires 90d]",
     0,
     0,
     {NULL},
     ",name,role,expires,",
     "make a dagq-web API token; prints it once, on the last line",
     cmd_tokens_create},
    {"tokens list", "", 0, 0, {NULL}, "", "list API tokens (never their values)", cmd_tokens_list},
    {"tokens revoke", "NAME", 1, 1, {"NAME"}, "", "revoke an API token", cmd_tokens_revoke},
    {"help", "", 0, 0, {NULL}, "", "print this help", NULL},
    {NULL},
};

static void cli_usage(FILE *out)
{
    fprintf(out, "usage: dagq [OPTIONS] COMMAND [ARGS]\n\n"
                 "The dagq admin CLI: DAGs, runs, task instances, logs and workers of the\n"
                 "PostgreSQL metastore; triggers, clears, pauses, backfills, marks and stops\n"
                 "through the same SQL functions (dagq.trigger_dag, dagq.clear, dagq.pause,\n"
                 "dagq.unpause, dagq.backfill, dagq.mark, dagq.stop) a psql user calls.\n\n"
                 "commands:\n");
    for (const cli_command *c = cli_commands; c->name; c++) {
        char left[256];
        snprintf(left, sizeof left, "%s%s%s", c->name, *c->synopsis ? " " : "", c->synopsis);
        if (strlen(left) > 36)
            fprintf(out, "  %s\n  %-36s  %s\n", left, "", c->help);
        else
            fprintf(out, "  %-36s  %s\n", left, c->help);
    }
    fprintf(out, "\noptions (the command line wins over the environment, which wins over the "
                 "default):\n");
    config_usage(out, cli_options);
    fprintf(out, "\nTimes are shown in UTC. Exit status: 0 done, 1 failed, 2 wrong usage.\n");
}

/* "db migrate, dags, trigger, ..." */
static void cli_command_list(char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const cli_command *c = cli_commands; c->name && n < len; c++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", c == cli_commands ? "" : ", ", c->name);
}

/* Which options of cli_options were given on the command line (as opposed
 * to the environment or the default), scanning argv as config_load does. */
static void cli_given(int argc, char **argv, unsigned char *given)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            break;
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            continue;
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        for (int k = 0; cli_options[k].name; k++) {
            const config_option *o = &cli_options[k];
            if (strlen(o->name) == nlen && !strncmp(o->name, name, nlen)) {
                given[k] = 1;
                if (!eq && o->type != CONFIG_FLAG)
                    i++; /* its value */
                break;
            }
        }
    }
}

/* Does command c take option name? */
static int cli_takes(const cli_command *c, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, ",%s,", name);
    return strstr(c->options, key) != NULL;
}

/* Finds the command named by the first positional words; *words is how many
 * it used. NULL (after an error message) when there is none. */
static const cli_command *cli_find(const config_list *pos, int *words)
{
    char list[512];
    cli_command_list(list, sizeof list);
    if (pos->n == 0) {
        cmd_error("no command given; commands: %s (see dagq --help)", list);
        return NULL;
    }
    const char *w0 = pos->items[0];
    int prefix = 0;
    for (const cli_command *c = cli_commands; c->name; c++) {
        const char *sp = strchr(c->name, ' ');
        size_t l0 = sp ? (size_t)(sp - c->name) : strlen(c->name);
        if (strlen(w0) != l0 || strncmp(c->name, w0, l0) != 0)
            continue;
        if (!sp) {
            *words = 1;
            return c;
        }
        prefix = 1;
        if (pos->n > 1 && !strcmp(sp + 1, pos->items[1])) {
            *words = 2;
            return c;
        }
    }
    if (prefix && pos->n == 1)
        cmd_error("\"%s\" needs a subcommand; commands: %s", w0, list);
    else if (prefix)
        cmd_error("unknown command \"%s %s\"; commands: %s", w0, pos->items[1], list);
    else
        cmd_error("unknown command \"%s\"; commands: %s", w0, list);
    return NULL;
}

/* Checks arguments and options of the command line against command c. */
static int cli_check(const cli_command *c, int nargs, char *const *args, int argc, char **argv)
{
    if (nargs < c->min_args) {
        cmd_error("%s: missing argument %s (usage: dagq %s %s)", c->name, c->argnames[nargs],
                  c->name, c->synopsis);
        return -1;
    }
    if (nargs > c->max_args) {
        cmd_error("%s: unexpected argument \"%s\" (usage: dagq %s%s%s)", c->name, args[c->max_args],
                  c->name, *c->synopsis ? " " : "", c->synopsis);
        return -1;
    }
    unsigned char given[sizeof cli_options / sizeof cli_options[0]] = {0};
    cli_given(argc, argv, given);
    for (int k = CLI_GLOBAL_OPTIONS; cli_options[k].name; k++) {
        if (!given[k] || cli_takes(c, cli_options[k].name))
            continue;
        char users[128] = "";
        size_t n = 0;
        for (const cli_command *o = cli_commands; o->name; o++)
            if (cli_takes(o, cli_options[k].name) && n < sizeof users)
                n += (size_t)snprintf(users + n, sizeof users - n, "%s%s", n ? ", " : "", o->name);
        cmd_error("option --%s does not apply to %s (it is for: %s)", cli_options[k].name, c->name,
                  users);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    config_list pos = {0};
    db *d = NULL;
    char err[1024];
    int status = CMD_USAGE;

    log_init("dagq");
    int rc = config_load(cli_options, argc, argv, &pos, err, sizeof err);
    if (rc == CONFIG_HELP) {
        cli_usage(stdout);
        status = CMD_OK;
        goto out;
    }
    if (rc != CONFIG_OK) {
        cmd_error("%s", err);
        goto out;
    }
    if (!opt_log_level || log_set_level_name(opt_log_level) != 0) {
        cmd_error("--log-level must be debug, info, warn or error, got \"%s\"",
                  opt_log_level ? opt_log_level : "");
        goto out;
    }
    int words = 0;
    const cli_command *c = cli_find(&pos, &words);
    if (!c)
        goto out;
    int nargs = pos.n - words;
    char *const *args = pos.items + words;
    if (cli_check(c, nargs, args, argc, argv))
        goto out;
    if (!c->fn) {
        cli_usage(stdout);
        status = CMD_OK;
        goto out;
    }

    d = db_new(opt_database_url, "dagq-cli");
    if (db_connect(d, err, sizeof err) != DB_OK) {
        char *msg = cmd_clean_error(err, NULL);
        cmd_error("cannot connect to the database: %s", msg);
        mem_free(msg);
        status = CMD_ERR;
        goto out;
    }
    /* errors raised inside SQL functions: the message, not the PL/pgSQL stack */
    PQsetErrorContextVisibility(db_conn(d), PQSHOW_CONTEXT_NEVER);
    /* times are read and shown in UTC whatever the server's TimeZone */
    if (db_exec(d, "SET TimeZone TO 'UTC'", err, sizeof err) != DB_OK) {
        char *msg = cmd_clean_error(err, NULL);
        cmd_error("setting the session time zone: %s", msg);
        mem_free(msg);
        status = CMD_ERR;
        goto out;
    }
    cmd_ctx ctx = {
        .db = d,
        .nargs = nargs,
        .args = args,
        .conf = opt_conf,
        .logical_date = opt_logical_date,
        .limit = opt_limit,
        .try_number = opt_try,
        .downstream = opt_downstream,
        .broker_url = opt_broker_url,
        .redis_prefix = opt_redis_prefix,
        .kafka_topic_prefix = opt_kafka_topic_prefix,
        .dag = opt_dag,
        .undelivered = opt_undelivered,
        .wait_s = opt_wait,
        .token_name = opt_token_name,
        .token_role = opt_token_role,
        .expires = opt_expires,
        .from = opt_from,
        .to = opt_to,
        .reprocess = opt_reprocess,
        .reverse = opt_reverse,
        .max_active_runs = opt_max_active_runs,
        .older_than = opt_older_than,
        .dry_run = opt_dry_run,
    };
    status = c->fn(&ctx);

out:
    db_free(d);
    config_list_free(&pos);
    config_free(cli_options);
    if (fflush(stdout) != 0 && status == CMD_OK) {
        cmd_error("writing the output failed");
        status = CMD_ERR;
    }
    return status;
}
