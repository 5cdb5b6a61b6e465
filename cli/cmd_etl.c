#include "cmd_etl.h"

#include "mem.h"
#include "table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A timestamptz column as "2024-01-31 00:00:00" in UTC (NULL stays NULL). */
#define ETL_TS(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"

/* Reports a failed query as one line: the server's words, and what to do
 * about a missing privilege or schema. */
static void etl_report(cmd_ctx *c, int rc, const char *stmt, const char *err, const char *what)
{
    char *msg = cmd_clean_error(err, stmt);
    const char *st = db_sqlstate(c->db);
    const char *hint = "";
    if (!strcmp(st, "42P01") || !strcmp(st, "3F000") || !strcmp(st, "42883"))
        hint = " (is the schema migrated? run: dagq db migrate)";
    else if (!strcmp(st, "42501") && strstr(msg, "permission denied"))
        hint = " (acting on runs needs a role that is a member of dagq_operator)";
    if (rc == DB_ECONN)
        cmd_error("lost the connection to the database%s%s: %s", what ? " while " : "",
                  what ? what : "", msg);
    else if (what)
        cmd_error("%s: %s%s", what, msg, hint);
    else
        cmd_error("%s%s", msg, hint);
    mem_free(msg);
}

static int etl_query(cmd_ctx *c, const char *name, const char *sql, int n,
                     const char *const *params, PGresult **res, const char *what)
{
    char err[2048];
    int rc = db_query(c->db, name, sql, n, params, res, err, sizeof err);
    if (rc != DB_OK)
        etl_report(c, rc, name, err, what);
    return rc;
}

/* A run or backfill id argument: a positive whole number, normalised into buf. */
static int etl_parse_id(const char *what, const char *s, char *buf, size_t len)
{
    const char *p = s;
    while (*p >= '0' && *p <= '9')
        p++;
    errno = 0;
    long long v = *s && !*p ? strtoll(s, NULL, 10) : 0;
    if (!*s || *p || errno || v <= 0) {
        cmd_error("%s \"%s\" is not a number from 1 to 9223372036854775807", what, s);
        return -1;
    }
    snprintf(buf, len, "%lld", v);
    return 0;
}

/* Prints a result as a table, one header per column; kinds: 't' text
 * (left), 'n' number (right), 'b' yes/no. */
static void etl_print(PGresult *r, const char *const *headers, const char *kinds)
{
    int ncols = (int)strlen(kinds);
    char align[32];
    for (int i = 0; i < ncols && i < (int)sizeof align - 1; i++)
        align[i] = kinds[i] == 'n' ? 'r' : 'l';
    align[ncols < (int)sizeof align ? ncols : (int)sizeof align - 1] = '\0';
    table *t = table_new(ncols, headers, align);
    for (int i = 0; i < PQntuples(r); i++)
        for (int col = 0; col < ncols; col++) {
            if (col >= PQnfields(r) || PQgetisnull(r, i, col))
                table_cell(t, NULL);
            else if (kinds[col] == 'b')
                table_cell(t, PQgetvalue(r, i, col)[0] == 't' ? "yes" : "no");
            else
                table_cell(t, PQgetvalue(r, i, col));
        }
    table_print(t, stdout);
    table_free(t);
}

/* --from / --to: a date or a wall-clock time, read in the DAG's time zone,
 * so it must not name a zone of its own. Returns CMD_OK, CMD_USAGE or
 * CMD_ERR. */
static int etl_check_wall_time(cmd_ctx *c, const char *opt, const char *v)
{
    if (!v) {
        cmd_error("backfill: --%s is required (usage: dagq backfill DAG --from DATE --to DATE ...)",
                  opt);
        return CMD_USAGE;
    }
    /* the session is in UTC: a text with a zone or offset reads differently */
    const char *p[1] = {v};
    PGresult *r;
    char what[32];
    snprintf(what, sizeof what, "--%s", opt);
    int rc = etl_query(c, "cli_check_wall",
                       "SELECT $1::text::timestamptz = ($1::text::timestamp AT TIME ZONE 'UTC')", 1,
                       p, &r, what);
    if (rc != DB_OK)
        return rc == DB_EQUERY ? CMD_USAGE : CMD_ERR;
    int plain = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!plain) {
        cmd_error("--%s \"%s\" names a time zone: give a date or a wall-clock time, which is read "
                  "in the DAG's own time zone",
                  opt, v);
        return CMD_USAGE;
    }
    return CMD_OK;
}

/* The checks backfill makes before it asks the database. */
static int etl_check_backfill(cmd_ctx *c)
{
    int rc;
    if ((rc = etl_check_wall_time(c, "from", c->from)) != CMD_OK ||
        (rc = etl_check_wall_time(c, "to", c->to)) != CMD_OK)
        return rc;
    const char *rp = c->reprocess ? c->reprocess : "none";
    if (strcmp(rp, "none") && strcmp(rp, "failed") && strcmp(rp, "all")) {
        cmd_error("--reprocess must be none, failed or all, got \"%s\"", rp);
        return CMD_USAGE;
    }
    if (c->conf) {
        const char *p[1] = {c->conf};
        PGresult *r;
        rc = etl_query(c, "cli_bf_conf", "SELECT jsonb_typeof($1::jsonb) = 'object'", 1, p, &r,
                       "--conf");
        if (rc != DB_OK)
            return rc == DB_EQUERY ? CMD_USAGE : CMD_ERR;
        int obj = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (!obj) {
            cmd_error("--conf must be a JSON object");
            return CMD_USAGE;
        }
    }
    return CMD_OK;
}

/* --dry-run: the plan, and how many intervals get what. */
static int etl_backfill_plan(cmd_ctx *c, const char *const *params)
{
    /* clang-format off */
    static const char *sql =
        "SELECT p.seq, " ETL_TS("p.logical_date") ", " ETL_TS("p.data_interval_end") ","
        "       CASE p.action WHEN 'new' THEN 'create' WHEN 'rerun_failed' THEN 'rerun failed tasks'"
        "                     WHEN 'rerun_all' THEN 'clear and rerun' ELSE 'leave alone' END,"
        "       p.run_id, p.run_state, p.note"
        "  FROM dagq.backfill_plan($1::text, $2::timestamp, $3::timestamp, $4::text, $5::boolean) p"
        " ORDER BY p.seq";
    /* clang-format on */
    static const char *headers[] = {"#",   "LOGICAL DATE", "INTERVAL END", "ACTION",
                                    "RUN", "RUN STATE",    "NOTE"};
    PGresult *r;
    if (etl_query(c, "cli_backfill_plan", sql, 5, params, &r, NULL))
        return CMD_ERR;
    int n = PQntuples(r), create = 0, rerun = 0;
    for (int i = 0; i < n; i++) {
        const char *a = PQgetvalue(r, i, 3);
        create += !strcmp(a, "create");
        rerun += !strcmp(a, "rerun failed tasks") || !strcmp(a, "clear and rerun");
    }
    if (n == 0)
        printf("no interval of DAG %s has its logical date in that range\n", c->args[0]);
    else
        etl_print(r, headers, "ntttnnt");
    printf("%d interval%s: %d to create, %d to rerun, %d left alone (dry run: nothing was "
           "changed)\n",
           n, n == 1 ? "" : "s", create, rerun, n - create - rerun);
    PQclear(r);
    return CMD_OK;
}

int cmd_backfill(cmd_ctx *c)
{
    int rc = etl_check_backfill(c);
    if (rc != CMD_OK)
        return rc;
    char mar[32];
    snprintf(mar, sizeof mar, "%lld", c->max_active_runs);
    const char *params[7] = {c->args[0],
                             c->from,
                             c->to,
                             c->reprocess ? c->reprocess : "none",
                             c->reverse ? "true" : "false",
                             c->max_active_runs > 0 ? mar : NULL,
                             c->conf};
    if (c->dry_run)
        return etl_backfill_plan(c, params);
    static const char *sql =
        "SELECT dagq.backfill($1::text, $2::timestamp, $3::timestamp, $4::text,"
        " $5::boolean, $6::int, COALESCE($7::jsonb, '{}'::jsonb))";
    PGresult *r;
    if (etl_query(c, "cli_backfill", sql, 7, params, &r, NULL))
        return CMD_ERR;
    printf("%s\n", PQgetvalue(r, 0, 0));
    PQclear(r);
    return CMD_OK;
}

int cmd_backfill_cancel(cmd_ctx *c)
{
    char id[32];
    if (etl_parse_id("backfill id", c->args[0], id, sizeof id))
        return CMD_USAGE;
    const char *p[1] = {id};
    PGresult *r;
    if (etl_query(c, "cli_backfill_cancel", "SELECT dagq.backfill_cancel($1::bigint)", 1, p, &r,
                  NULL))
        return CMD_ERR;
    long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    printf("canceled backfill %s: %lld run%s that had not started deleted (running ones go on)\n",
           id, n, n == 1 ? "" : "s");
    PQclear(r);
    return CMD_OK;
}

int cmd_backfills(cmd_ctx *c)
{
    /* clang-format off */
    static const char *sql =
        "SELECT b.backfill_id, b.dag_id, " ETL_TS("b.from_date") ", " ETL_TS("b.to_date") ","
        "       b.reprocess, CASE WHEN b.reverse THEN 'newest first' ELSE 'oldest first' END,"
        "       b.max_active_runs, b.state, b.runs, b.waiting, b.running, b.succeeded, b.failed,"
        "       b.left_alone, b.created_by, " ETL_TS("b.created_at")
        "  FROM dagq.backfill_progress b"
        " WHERE $1::text IS NULL OR b.dag_id = $1::text"
        " ORDER BY b.backfill_id DESC";
    /* clang-format on */
    static const char *headers[] = {"BACKFILL",  "DAG",        "FROM",       "TO",
                                    "REPROCESS", "ORDER",      "MAX ACTIVE", "STATE",
                                    "RUNS",      "WAITING",    "RUNNING",    "SUCCEEDED",
                                    "FAILED",    "LEFT ALONE", "BY",         "CREATED"};
    const char *p[1] = {c->nargs > 0 ? c->args[0] : NULL};
    PGresult *r;
    if (etl_query(c, "cli_backfills", sql, 1, p, &r, "listing backfills"))
        return CMD_ERR;
    if (PQntuples(r) == 0 && p[0])
        printf("no backfills of DAG %s\n", p[0]);
    else if (PQntuples(r) == 0)
        printf("no backfills\n");
    else
        etl_print(r, headers, "ntttttntnnnnnntt");
    PQclear(r);
    return CMD_OK;
}

int cmd_mark(cmd_ctx *c)
{
    char id[32];
    if (etl_parse_id("run id", c->args[0], id, sizeof id))
        return CMD_USAGE;
    const char *state = c->args[2];
    if (strcmp(state, "success") && strcmp(state, "failed")) {
        cmd_error("mark: the state must be success or failed, got \"%s\"", state);
        return CMD_USAGE;
    }
    const char *p[4] = {id, c->args[1], state, c->downstream ? "true" : "false"};
    PGresult *r;
    if (etl_query(c, "cli_mark", "SELECT dagq.mark($1::bigint, $2::text, $3::text, $4::boolean)", 4,
                  p, &r, NULL))
        return CMD_ERR;
    long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    printf("marked %lld task instance%s %s\n", n, n == 1 ? "" : "s", state);
    PQclear(r);
    return CMD_OK;
}

int cmd_stop(cmd_ctx *c)
{
    char id[32];
    if (etl_parse_id("run id", c->args[0], id, sizeof id))
        return CMD_USAGE;
    const char *task = c->nargs > 1 ? c->args[1] : NULL;
    const char *p[2] = {id, task};
    PGresult *r;
    if (etl_query(c, "cli_stop", "SELECT dagq.stop($1::bigint, $2::text)", 2, p, &r, NULL))
        return CMD_ERR;
    long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    if (task)
        printf("stopped task %s of run %s: %lld task instance%s ended failed\n", task, id, n,
               n == 1 ? "" : "s");
    else
        printf("stopped run %s: %lld task instance%s ended failed\n", id, n, n == 1 ? "" : "s");
    PQclear(r);
    return CMD_OK;
}

int cmd_etl_dags(cmd_ctx *c)
{
    int rc = cmd_dags(c);
    if (rc != CMD_OK)
        return rc;
    /* clang-format off */
    static const char *sql =
        "SELECT w.dag_id, COALESCE(w.task_id, '-'),"
        "       CASE WHEN w.kind = 'trigger' THEN 'a successful run of ' || w.upstream_dag_id"
        "            WHEN w.upstream_task_id IS NULL THEN w.upstream_dag_id || ' (its run)'"
        "            ELSE w.upstream_dag_id || '.' || w.upstream_task_id END,"
        "       CASE WHEN w.kind = 'trigger' THEN 'the same data interval'"
        "            WHEN w.logical_date_offset = interval '0' THEN 'the same'"
        "            ELSE 'this one ' || CASE WHEN w.logical_date_offset < interval '0' THEN '- '"
        "                 || (-w.logical_date_offset)::text ELSE '+ ' || w.logical_date_offset::text END END,"
        "       CASE WHEN w.kind = 'trigger' THEN 'no run' ELSE w.if_upstream_failed END"
        "  FROM dagq.dag_waits_on w"
        " ORDER BY w.dag_id, w.kind, w.task_id NULLS FIRST, w.upstream_dag_id, w.upstream_task_id";
    /* clang-format on */
    static const char *headers[] = {"DAG", "TASK", "WAITS FOR", "LOGICAL DATE", "IF IT FAILS"};
    PGresult *r;
    if (etl_query(c, "cli_dag_waits", sql, 0, NULL, &r, "listing what DAGs wait on"))
        return CMD_ERR;
    if (PQntuples(r) > 0) {
        printf("\nwhat DAGs wait on (dagq.dag_waits_on; TASK - : the DAG's runs, by a DAG "
               "trigger):\n");
        etl_print(r, headers, "ttttt");
    }
    PQclear(r);
    return CMD_OK;
}
