#include "cmd_alerts.h"

#include "clock.h"
#include "mem.h"
#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* db_query that reports its own failure (as cmd.c's). */
static int cmd_alerts_query(cmd_ctx *c, const char *name, const char *sql, int n,
                            const char *const *params, PGresult **res, const char *what)
{
    char err[2048];
    int rc = db_query(c->db, name, sql, n, params, res, err, sizeof err);
    if (rc == DB_OK)
        return rc;
    char *msg = cmd_clean_error(err, name);
    const char *st = db_sqlstate(c->db);
    int unmigrated = !strcmp(st, "42P01") || !strcmp(st, "3F000") || !strcmp(st, "42883");
    if (rc == DB_ECONN)
        cmd_error("lost the connection to the database while %s: %s", what, msg);
    else
        cmd_error("%s: %s%s", what, msg,
                  unmigrated ? " (is the schema migrated? run: dagq db migrate)" : "");
    mem_free(msg);
    return rc;
}

int cmd_alerts(cmd_ctx *c)
{
    /* clang-format off */
    static const char *sql =
        "SELECT e.event_id,"
        "       to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
        "       e.event, e.dag_id, e.run_id, e.task_id, e.try_number, d.channel,"
        "       CASE WHEN d.delivery_id IS NULL THEN NULL"
        "            WHEN d.state <> 'pending' THEN d.state"
        "            WHEN d.batch_id IS NOT NULL AND d.batch_id <> d.delivery_id THEN 'batched'"
        "            WHEN d.lease_until > clock_timestamp() THEN 'sending'"
        "            WHEN d.attempts > 0 THEN 'retrying'"
        "            ELSE 'pending' END,"
        "       d.attempts,"
        "       left(COALESCE(d.last_error, d.response), 120)"
        "  FROM dagq.event e"
        "  LEFT JOIN dagq.alert_delivery d ON d.event_id = e.event_id"
        " WHERE ($1::text IS NULL OR e.dag_id = $1)"
        "   AND (NOT $2::boolean OR (d.state IS NOT NULL AND d.state <> 'delivered'))"
        " ORDER BY e.event_id DESC, d.channel"
        " LIMIT $3::int";
    /* clang-format on */
    static const char *headers[] = {"EVENT ID", "TIME",     "EVENT",      "DAG",
                                    "RUN",      "TASK",     "TRY",        "CHANNEL",
                                    "STATE",    "ATTEMPTS", "LAST ANSWER"};
    static const char align[] = "lllllllllrl";
    char lim[32];
    snprintf(lim, sizeof lim, "%lld", c->limit);
    const char *p[3] = {c->dag, c->undelivered ? "true" : "false", lim};
    PGresult *r;
    if (cmd_alerts_query(c, "cli_alerts", sql, 3, p, &r, "listing alerts"))
        return CMD_ERR;
    if (PQntuples(r) == 0) {
        printf(c->undelivered ? "no undelivered alerts\n" : "no events\n");
        PQclear(r);
        return CMD_OK;
    }
    table *t = table_new(11, headers, align);
    for (int i = 0; i < PQntuples(r); i++)
        for (int col = 0; col < 11; col++)
            table_cell(t, PQgetisnull(r, i, col) ? NULL : PQgetvalue(r, i, col));
    table_print(t, stdout);
    table_free(t);
    PQclear(r);
    return CMD_OK;
}

/* Waits for the first attempt of delivery id to end; prints it. */
static int cmd_alert_wait(cmd_ctx *c, const char *channel, const char *id)
{
    static const char *sql = "SELECT state, response, last_error, delivered_by"
                             "  FROM dagq.alert_delivery WHERE delivery_id = $1::bigint";
    const char *p[1] = {id};
    int64_t deadline = clock_now_ms() + c->wait_s * 1000;
    for (;;) {
        PGresult *r;
        if (cmd_alerts_query(c, "cli_alert_wait", sql, 1, p, &r, "reading the test delivery"))
            return CMD_ERR;
        if (PQntuples(r) == 0) {
            PQclear(r);
            cmd_error("the test delivery %s is gone (was channel \"%s\" deleted?)", id, channel);
            return CMD_ERR;
        }
        const char *st = PQgetvalue(r, 0, 0);
        if (!strcmp(st, "delivered")) {
            printf("delivered to channel \"%s\" by %s: %s\n", channel, PQgetvalue(r, 0, 3),
                   PQgetisnull(r, 0, 1) ? "(no answer)" : PQgetvalue(r, 0, 1));
            PQclear(r);
            return CMD_OK;
        }
        if (strcmp(st, "pending")) {
            if (PQgetisnull(r, 0, 1))
                cmd_error("channel \"%s\": the test was not delivered: %s", channel,
                          PQgetvalue(r, 0, 2));
            else
                cmd_error("channel \"%s\": the test was not delivered: %s (the receiver: %s)",
                          channel, PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 1));
            PQclear(r);
            return CMD_ERR;
        }
        PQclear(r);
        if (clock_now_ms() >= deadline) {
            cmd_error("no dagq-scheduler sent the test to channel \"%s\" within %llds (is one "
                      "running, with --alert-threads above 0?); delivery %s stays pending",
                      channel, c->wait_s, id);
            return CMD_ERR;
        }
        clock_sleep_ms(200);
    }
}

int cmd_alert_test(cmd_ctx *c)
{
    const char *channel = c->args[0];
    const char *p[1] = {channel};
    PGresult *r;
    if (cmd_alerts_query(c, "cli_alert_test", "SELECT dagq.alert_test($1)", 1, p, &r,
                         "testing the channel"))
        return CMD_ERR;
    char *id = mem_strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    int rc = cmd_alert_wait(c, channel, id);
    mem_free(id);
    return rc;
}
