#include "cmd_tokens.h"

#include "mem.h"
#include "table.h"

#include <stdio.h>
#include <string.h>

/* A failed statement, reported as one line. */
static int tokens_fail(const char *stmt, const char *what, const char *err)
{
    char *msg = cmd_clean_error(err, stmt);
    cmd_error("%s: %s", what, msg);
    mem_free(msg);
    return CMD_ERR;
}

/* --role viewer|operator|author|admin is dagq_<that>; anything else is a
 * role name as it is (a team role). */
static const char *tokens_role(const char *r, char *buf, size_t len)
{
    static const char *const shorts[] = {"viewer", "operator", "author", "admin"};
    for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++)
        if (!strcmp(r, shorts[i])) {
            snprintf(buf, len, "dagq_%s", r);
            return buf;
        }
    return r;
}

int cmd_tokens_create(cmd_ctx *c)
{
    char err[2048], role[128];
    if (!c->token_name || !*c->token_name || !c->token_role || !*c->token_role) {
        cmd_error("tokens create: --name and --role are required (usage: dagq tokens create "
                  "--name NAME --role viewer|operator|author|ROLE [--expires 90d])");
        return CMD_USAGE;
    }
    const char *p[3] = {c->token_name, tokens_role(c->token_role, role, sizeof role), c->expires};
    PGresult *r;
    if (db_query(c->db, "cli_token_create",
                 "SELECT dagq.token_create($1, $2::name, $3::interval),"
                 "       to_char((now() + $3::interval) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')",
                 3, p, &r, err, sizeof err) != DB_OK)
        return tokens_fail("cli_token_create", "creating the token", err);
    printf("token %s for role %s, %s%s; shown only now:\n", c->token_name, p[1],
           PQgetisnull(r, 0, 1) ? "valid until revoked" : "expires ",
           PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1));
    printf("%s\n", PQgetvalue(r, 0, 0));
    PQclear(r);
    return CMD_OK;
}

int cmd_tokens_list(cmd_ctx *c)
{
    static const char *headers[] = {"NAME", "ROLE",    "STATE",    "CREATED",
                                    "BY",   "EXPIRES", "LAST USED"};
    char err[2048];
    PGresult *r;
    if (db_query(
            c->db, "cli_tokens",
            "SELECT name, role,"
            "       CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
            "            WHEN expires_at <= clock_timestamp() THEN 'expired' ELSE 'valid' END,"
            "       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), created_by,"
            "       to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
            "       to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
            "  FROM dagq.api_token ORDER BY name",
            0, NULL, &r, err, sizeof err) != DB_OK)
        return tokens_fail("cli_tokens", "listing tokens", err);
    if (PQntuples(r) == 0) {
        printf("no tokens (dagq tokens create --name NAME --role viewer makes one)\n");
    } else {
        table *t = table_new(7, headers, NULL);
        for (int i = 0; i < PQntuples(r); i++)
            for (int col = 0; col < 7; col++)
                table_cell(t, PQgetisnull(r, i, col) ? NULL : PQgetvalue(r, i, col));
        table_print(t, stdout);
        table_free(t);
    }
    PQclear(r);
    return CMD_OK;
}

int cmd_tokens_revoke(cmd_ctx *c)
{
    char err[2048];
    const char *p[1] = {c->args[0]};
    if (db_query(c->db, "cli_token_revoke", "SELECT dagq.token_revoke($1)", 1, p, NULL, err,
                 sizeof err) != DB_OK)
        return tokens_fail("cli_token_revoke", "revoking the token", err);
    printf("revoked token %s\n", c->args[0]);
    return CMD_OK;
}
