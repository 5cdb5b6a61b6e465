#include "cmd.h"

#include "mem.h"
#include "migrate.h"
#include "queue.h"
#include "table.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A timestamptz column as "2024-01-31 00:00:00" in UTC (NULL stays NULL). */
#define CMD_TS(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
/* Seconds from started to ended, or to now while still going; NULL if never started. */
#define CMD_DURATION(started, ended)                                                               \
    "CASE WHEN " started " IS NOT NULL THEN extract(epoch FROM COALESCE(" ended                    \
    ", clock_timestamp()) - " started ")::float8 END"

void cmd_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *buf = mem_alloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fflush(stdout);
    fprintf(stderr, "dagq: %s\n", buf);
    mem_free(buf);
}

/* Appends s[0..n) to a growing string. */
static void cmd_append(char **out, size_t *len, const char *s, size_t n)
{
    *out = mem_realloc(*out, *len + n + 1);
    memcpy(*out + *len, s, n);
    *len += n;
    (*out)[*len] = '\0';
}

/* Is p at "LINE <n>: ", the start of libpq's statement-position lines? */
static int cmd_at_position(const char *p)
{
    if (strncmp(p, " LINE ", 6) != 0)
        return 0;
    p += 6;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return *p == ':';
}

char *cmd_clean_error(const char *err, const char *stmt)
{
    static const struct {
        const char *from, *to;
    } subst[] = {
        {"ERROR:  ", ""},
        {"FATAL:  ", ""},
        {" DETAIL:  ", "; "},
        {" HINT:  ", "; hint: "},
        {" CONTEXT:  ", "; context: "},
    };
    const size_t nsubst = sizeof subst / sizeof subst[0];
    size_t sl = stmt ? strlen(stmt) : 0;
    if (sl && !strncmp(err, stmt, sl) && !strncmp(err + sl, ": ", 2))
        err += sl + 2;
    char *out = mem_strdup("");
    size_t len = 0;
    int skipping = 0; /* inside "LINE 1: <statement> ^" */
    while (*err) {
        size_t i;
        if (cmd_at_position(err)) {
            skipping = 1;
            err++;
            continue;
        }
        for (i = 0; i < nsubst; i++) {
            size_t fl = strlen(subst[i].from);
            if (!strncmp(err, subst[i].from, fl)) {
                cmd_append(&out, &len, subst[i].to, strlen(subst[i].to));
                err += fl;
                skipping = 0;
                break;
            }
        }
        if (i < nsubst || skipping) {
            if (i == nsubst)
                err++;
            continue;
        }
        /* whitespace (libpq's newlines and tabs) becomes one space */
        if (*err == ' ' || *err == '\t' || *err == '\n' || *err == '\r') {
            if (len && out[len - 1] != ' ')
                cmd_append(&out, &len, " ", 1);
            err++;
            continue;
        }
        cmd_append(&out, &len, err++, 1);
    }
    while (len && out[len - 1] == ' ')
        out[--len] = '\0';
    return out;
}

/* Reports a failed db_query. */
static void cmd_report(cmd_ctx *c, int rc, const char *stmt, const char *err, const char *what)
{
    char *msg = cmd_clean_error(err, stmt);
    const char *st = db_sqlstate(c->db);
    /* undefined table, schema or function: the schema is not (fully) there */
    int unmigrated = !strcmp(st, "42P01") || !strcmp(st, "3F000") || !strcmp(st, "42883");
    /* insufficient_privilege: the role, not the command, is what is wrong */
    const char *why = !strcmp(st, "42501") ? " (your database role lacks the privilege: see the "
                                             "README's Security section)"
                                           : "";
    if (rc == DB_ECONN)
        cmd_error("lost the connection to the database%s%s: %s", what ? " while " : "",
                  what ? what : "", msg);
    else if (*why)
        cmd_error("%s%s%s%s", what ? what : "", what ? ": " : "", msg, why);
    else if (what)
        cmd_error("%s: %s%s", what, msg,
                  unmigrated ? " (is the schema migrated? run: dagq db migrate)" : "");
    else
        cmd_error("%s%s", msg, unmigrated ? " (is the schema migrated? run: dagq db migrate)" : "");
    mem_free(msg);
}

/* db_query that reports its own failure; returns DB_OK, DB_EQUERY or DB_ECONN. */
static int cmd_query(cmd_ctx *c, const char *name, const char *sql, int n,
                     const char *const *params, PGresult **res, const char *what)
{
    char err[2048];
    int rc = db_query(c->db, name, sql, n, params, res, err, sizeof err);
    if (rc != DB_OK)
        cmd_report(c, rc, name, err, what);
    return rc;
}

/* A run id argument: a positive whole number, written back normalised into
 * buf for use as a parameter. */
static int cmd_parse_run_id(const char *s, char *buf, size_t len)
{
    const char *p = s;
    while (*p >= '0' && *p <= '9')
        p++;
    if (!*s || *p) {
        cmd_error("run id \"%s\" is not a number", s);
        return -1;
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno || v <= 0) {
        cmd_error("run id \"%s\" is out of range (run ids are 1 to 9223372036854775807)", s);
        return -1;
    }
    snprintf(buf, len, "%lld", v);
    return 0;
}

/* How a result column is shown: 't' text, 'n' number, 'b' yes/no,
 * 'd' duration in seconds, 'a' age in seconds ("3.2s ago"). */
static void cmd_table_add(table *t, PGresult *r, int row, const char *kinds)
{
    for (int col = 0; kinds[col]; col++) {
        if (col >= PQnfields(r) || PQgetisnull(r, row, col)) {
            table_cell(t, NULL);
            continue;
        }
        const char *v = PQgetvalue(r, row, col);
        char buf[64];
        switch (kinds[col]) {
        case 'b':
            table_cell(t, v[0] == 't' ? "yes" : "no");
            break;
        case 'd':
        case 'a':
            table_duration(strtod(v, NULL), buf, sizeof buf);
            if (kinds[col] == 'a')
                table_cellf(t, "%s ago", buf);
            else
                table_cell(t, buf);
            break;
        default:
            table_cell(t, v);
        }
    }
}

/* Prints a result as a table; kinds as cmd_table_add, one per column. */
static void cmd_print_result(PGresult *r, const char *const *headers, const char *kinds)
{
    int ncols = (int)strlen(kinds);
    char *align = mem_strdup(kinds);
    for (char *p = align; *p; p++)
        *p = (*p == 'n' || *p == 'd' || *p == 'a') ? 'r' : 'l';
    table *t = table_new(ncols, headers, align);
    for (int i = 0; i < PQntuples(r); i++)
        cmd_table_add(t, r, i, kinds);
    table_print(t, stdout);
    table_free(t);
    mem_free(align);
}

/* The state of a run, or NULL (after an error message) when it does not exist
 * or the query failed. Caller frees. */
static char *cmd_run_state(cmd_ctx *c, const char *run_id, int *failed)
{
    static const char *sql = "SELECT r.state FROM dagq.dag_run r WHERE r.run_id = $1::bigint";
    const char *params[1] = {run_id};
    PGresult *r;
    *failed = 0;
    if (cmd_query(c, "cli_run_state", sql, 1, params, &r, NULL)) {
        *failed = 1;
        return NULL;
    }
    char *st = PQntuples(r) ? mem_strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return st;
}

int cmd_db_migrate(cmd_ctx *c)
{
    PGconn *conn = db_conn(c->db);
    char err[2048], cur[256];
    int applied = 0;
    if (!conn) {
        cmd_error("not connected to the database");
        return CMD_ERR;
    }
    if (migrate_run(conn, &applied, err, sizeof err)) {
        char *msg = cmd_clean_error(err, NULL);
        cmd_error("migrate failed, %d applied before the failure: %s", applied, msg);
        mem_free(msg);
        return CMD_ERR;
    }
    if (migrate_current(conn, cur, sizeof cur, err, sizeof err)) {
        char *msg = cmd_clean_error(err, NULL);
        cmd_error("%s", msg);
        mem_free(msg);
        return CMD_ERR;
    }
    printf("applied %d migration%s; current: %s\n", applied, applied == 1 ? "" : "s",
           *cur ? cur : "none");
    return CMD_OK;
}

int cmd_dags(cmd_ctx *c)
{
    /* clang-format off */
    static const char *sql =
        "SELECT d.dag_id, d.schedule, d.timezone, d.is_paused,"
        "       (SELECT count(*) FROM dagq.task t WHERE t.dag_id = d.dag_id),"
        "       (SELECT count(*) FROM dagq.dag_run r"
        "         WHERE r.dag_id = d.dag_id AND r.state IN ('queued', 'running')),"
        "       (SELECT r.state FROM dagq.dag_run r WHERE r.dag_id = d.dag_id"
        "         ORDER BY r.run_id DESC LIMIT 1),"
        "       " CMD_TS("d.next_dagrun_end") ","
        "       d.parked_reason IS NOT NULL, d.parked_reason"
        "  FROM dagq.dag d ORDER BY d.dag_id";
    /* clang-format on */
    static const char *headers[] = {"DAG",         "SCHEDULE", "TIMEZONE", "PAUSED", "TASKS",
                                    "ACTIVE RUNS", "LAST RUN", "NEXT RUN", "PARKED"};
    PGresult *r;
    if (cmd_query(c, "cli_dags", sql, 0, NULL, &r, "listing DAGs"))
        return CMD_ERR;
    if (PQntuples(r) == 0)
        printf("no DAGs (define one with INSERT INTO dagq.dag ...)\n");
    else
        cmd_print_result(r, headers, "tttbnnttb");
    /* why a DAG is parked does not fit a column */
    for (int i = 0; i < PQntuples(r); i++)
        if (!PQgetisnull(r, i, 9))
            printf("DAG %s is parked (no new runs until its definition is edited): %s\n",
                   PQgetvalue(r, i, 0), PQgetvalue(r, i, 9));
    PQclear(r);
    return CMD_OK;
}

int cmd_trigger(cmd_ctx *c)
{
    const char *dag = c->args[0];
    PGresult *r;
    if (c->conf) {
        /* checked apart so the error can name the option */
        const char *p[1] = {c->conf};
        int rc =
            cmd_query(c, "cli_check_conf", "SELECT jsonb_typeof($1::jsonb)", 1, p, &r, "--conf");
        if (rc != DB_OK)
            return rc == DB_EQUERY ? CMD_USAGE : CMD_ERR;
        int obj = !strcmp(PQgetvalue(r, 0, 0), "object");
        char *type = mem_strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (!obj) {
            cmd_error("--conf must be a JSON object, got a JSON %s", type);
            mem_free(type);
            return CMD_USAGE;
        }
        mem_free(type);
    }
    if (c->logical_date) {
        const char *p[1] = {c->logical_date};
        int rc = cmd_query(c, "cli_check_date", "SELECT isfinite($1::timestamptz)", 1, p, &r,
                           "--logical-date");
        if (rc != DB_OK)
            return rc == DB_EQUERY ? CMD_USAGE : CMD_ERR;
        int finite = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (!finite) {
            cmd_error("--logical-date must be a date and time, got \"%s\"", c->logical_date);
            return CMD_USAGE;
        }
    }
    static const char *sql = "SELECT dagq.trigger_dag($1::text, COALESCE($2::jsonb, '{}'::jsonb),"
                             " COALESCE($3::timestamptz, now()))";
    const char *params[3] = {dag, c->conf, c->logical_date};
    if (cmd_query(c, "cli_trigger", sql, 3, params, &r, NULL))
        return CMD_ERR;
    printf("%s\n", PQgetvalue(r, 0, 0));
    PQclear(r);
    return CMD_OK;
}

int cmd_runs(cmd_ctx *c)
{
    /* clang-format off */
    static const char *sql =
        "SELECT r.run_id, r.dag_id, r.run_type, " CMD_TS("r.logical_date") ", r.state,"
        "       " CMD_TS("r.started_at") ", " CMD_TS("r.ended_at") ","
        "       " CMD_DURATION("r.started_at", "r.ended_at")
        "  FROM dagq.dag_run r"
        " WHERE $1::text IS NULL OR r.dag_id = $1::text"
        " ORDER BY r.run_id DESC LIMIT $2::bigint";
    /* clang-format on */
    static const char *headers[] = {"RUN",   "DAG",     "TYPE",  "LOGICAL DATE",
                                    "STATE", "STARTED", "ENDED", "DURATION"};
    const char *dag = c->nargs > 0 ? c->args[0] : NULL;
    char limit[32];
    snprintf(limit, sizeof limit, "%lld", c->limit);
    const char *params[2] = {dag, limit};
    PGresult *r;
    if (cmd_query(c, "cli_runs", sql, 2, params, &r, "listing runs"))
        return CMD_ERR;
    int rc = CMD_OK;
    if (PQntuples(r) > 0) {
        cmd_print_result(r, headers, "nttttttd");
    } else if (!dag) {
        printf("no runs\n");
    } else {
        PGresult *e;
        const char *p[1] = {dag};
        if (cmd_query(c, "cli_dag_exists", "SELECT 1 FROM dagq.dag WHERE dag_id = $1::text", 1, p,
                      &e, "listing runs")) {
            rc = CMD_ERR;
        } else {
            if (PQntuples(e) == 0) {
                cmd_error("unknown DAG \"%s\"", dag);
                rc = CMD_ERR;
            } else {
                printf("no runs of DAG %s\n", dag);
            }
            PQclear(e);
        }
    }
    PQclear(r);
    return rc;
}

int cmd_tasks(cmd_ctx *c)
{
    /* clang-format off */
    static const char *sql =
        "SELECT ti.task_id, ti.state, ti.try_number, ti.worker_group, ti.worker_id,"
        "       " CMD_TS("ti.started_at") ", " CMD_TS("ti.ended_at") ","
        "       " CMD_DURATION("ti.started_at", "ti.ended_at") ", ti.exit_code, ti.note"
        "  FROM dagq.task_instance ti WHERE ti.run_id = $1::bigint"
        " ORDER BY ti.started_at NULLS LAST, ti.task_id";
    /* clang-format on */
    static const char *headers[] = {"TASK",    "STATE", "TRY",      "GROUP", "WORKER",
                                    "STARTED", "ENDED", "DURATION", "EXIT",  "NOTE"};
    char id[32];
    if (cmd_parse_run_id(c->args[0], id, sizeof id))
        return CMD_USAGE;
    const char *params[1] = {id};
    PGresult *r;
    if (cmd_query(c, "cli_tasks", sql, 1, params, &r, "listing task instances"))
        return CMD_ERR;
    int rc = CMD_OK;
    if (PQntuples(r) > 0) {
        cmd_print_result(r, headers, "ttnttttdnt");
    } else {
        int failed;
        char *st = cmd_run_state(c, id, &failed);
        if (failed) {
            rc = CMD_ERR;
        } else if (!st) {
            cmd_error("unknown run %s", id);
            rc = CMD_ERR;
        } else {
            printf("run %s has no task instances yet (run state: %s)\n", id, st);
        }
        mem_free(st);
    }
    PQclear(r);
    return rc;
}

int cmd_logs(cmd_ctx *c)
{
    static const char *sql =
        "SELECT ti.state, ti.try_number, l.try_number, l.output, l.truncated_bytes"
        "  FROM dagq.task_instance ti"
        "  LEFT JOIN LATERAL (SELECT g.try_number, g.output, g.truncated_bytes"
        "                       FROM dagq.task_log g"
        "                      WHERE g.ti_id = ti.ti_id"
        "                        AND ($3::int IS NULL OR g.try_number = $3::int)"
        "                      ORDER BY g.try_number DESC LIMIT 1) l ON true"
        " WHERE ti.run_id = $1::bigint AND ti.task_id = $2::text";
    char id[32], try_s[32];
    if (cmd_parse_run_id(c->args[0], id, sizeof id))
        return CMD_USAGE;
    const char *task = c->args[1];
    snprintf(try_s, sizeof try_s, "%lld", c->try_number);
    const char *params[3] = {id, task, c->try_number > 0 ? try_s : NULL};
    PGresult *r;
    if (cmd_query(c, "cli_logs", sql, 3, params, &r, "reading the log"))
        return CMD_ERR;
    int rc = CMD_ERR;
    if (PQntuples(r) == 0) {
        int failed;
        char *st = cmd_run_state(c, id, &failed);
        if (!failed && !st)
            cmd_error("unknown run %s", id);
        else if (!failed)
            cmd_error("run %s has no task \"%s\"", id, task);
        mem_free(st);
        goto out;
    }
    const char *state = PQgetvalue(r, 0, 0);
    const char *cur_try = PQgetvalue(r, 0, 1);
    if (PQgetisnull(r, 0, 2)) {
        if (c->try_number > 0)
            cmd_error("no log for try %lld of task \"%s\" in run %s (state %s, try %s)",
                      c->try_number, task, id, state, cur_try);
        else
            cmd_error("no log for task \"%s\" in run %s yet (state %s, try %s): the output of a "
                      "try is stored when the try ends",
                      task, id, state, cur_try);
        goto out;
    }
    const char *log_try = PQgetvalue(r, 0, 2);
    const char *out = PQgetvalue(r, 0, 3);
    size_t len = (size_t)PQgetlength(r, 0, 3);
    long long truncated = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    if (truncated > 0)
        cmd_error("note: the output of try %s was truncated: its first %lld bytes were not kept, "
                  "the last %zu follow",
                  log_try, truncated, len);
    else if (len == 0)
        cmd_error("note: try %s of task \"%s\" printed nothing", log_try, task);
    fwrite(out, 1, len, stdout);
    if (len > 0 && out[len - 1] != '\n' && isatty(STDOUT_FILENO))
        fputc('\n', stdout);
    rc = CMD_OK;
out:
    PQclear(r);
    return rc;
}

int cmd_clear(cmd_ctx *c)
{
    static const char *sql = "SELECT dagq.clear($1::bigint, $2::text, $3::boolean)";
    char id[32];
    if (cmd_parse_run_id(c->args[0], id, sizeof id))
        return CMD_USAGE;
    const char *params[3] = {id, c->nargs > 1 ? c->args[1] : NULL,
                             c->downstream ? "true" : "false"};
    PGresult *r;
    if (cmd_query(c, "cli_clear", sql, 3, params, &r, NULL))
        return CMD_ERR;
    long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    printf("cleared %lld task instance%s\n", n, n == 1 ? "" : "s");
    PQclear(r);
    return CMD_OK;
}

static int cmd_set_paused(cmd_ctx *c, int paused)
{
    const char *params[1] = {c->args[0]};
    int rc;
    if (paused)
        rc = cmd_query(c, "cli_pause", "SELECT dagq.pause($1::text)", 1, params, NULL, NULL);
    else
        rc = cmd_query(c, "cli_unpause", "SELECT dagq.unpause($1::text)", 1, params, NULL, NULL);
    if (rc)
        return CMD_ERR;
    printf("%s %s\n", paused ? "paused" : "unpaused", c->args[0]);
    return CMD_OK;
}

int cmd_pause(cmd_ctx *c)
{
    return cmd_set_paused(c, 1);
}

int cmd_unpause(cmd_ctx *c)
{
    return cmd_set_paused(c, 0);
}

int cmd_workers(cmd_ctx *c)
{
    /* a worker that has not heartbeated for 60 s is shown as lost, unless it
     * said goodbye ('gone') */
    static const char *sql =
        "SELECT w.worker_id, left(w.incarnation::text, 8), w.hostname, w.pid,"
        "       array_to_string(w.groups, ','), w.slots, w.running,"
        "       CASE WHEN w.state <> 'gone'"
        "             AND w.heartbeat_at < clock_timestamp() - interval '60 seconds'"
        "            THEN 'lost' ELSE w.state END,"
        "       extract(epoch FROM clock_timestamp() - w.heartbeat_at)::float8"
        "  FROM dagq.worker w ORDER BY w.worker_id, w.started_at";
    static const char *headers[] = {"WORKER", "INCARNATION", "HOST",  "PID",           "GROUPS",
                                    "SLOTS",  "RUNNING",     "STATE", "LAST HEARTBEAT"};
    PGresult *r;
    if (cmd_query(c, "cli_workers", sql, 0, NULL, &r, "listing workers"))
        return CMD_ERR;
    if (PQntuples(r) == 0)
        printf("no workers\n");
    else
        cmd_print_result(r, headers, "tttntnnta");
    PQclear(r);
    return CMD_OK;
}

/* Pools: their size and the slots that queued and running task instances
 * hold (a pool held back with 0 slots shows free 0). */
int cmd_pools(cmd_ctx *c)
{
    static const char *sql = "SELECT p.pool, p.slots, COALESCE(sum(i.pool_slots), 0),"
                             "       count(i.ti_id) FILTER (WHERE i.state = 'queued'),"
                             "       count(i.ti_id) FILTER (WHERE i.state = 'running'),"
                             "       greatest(p.slots - COALESCE(sum(i.pool_slots), 0), 0),"
                             "       COALESCE(p.description, '-')"
                             "  FROM dagq.pool p"
                             "  LEFT JOIN dagq.task_instance i"
                             "    ON i.pool = p.pool AND i.state IN ('queued', 'running')"
                             " GROUP BY p.pool ORDER BY p.pool";
    static const char *headers[] = {"POOL",    "SLOTS", "USED",       "QUEUED",
                                    "RUNNING", "FREE",  "DESCRIPTION"};
    PGresult *r;
    if (cmd_query(c, "cli_pools", sql, 0, NULL, &r, "listing pools"))
        return CMD_ERR;
    if (PQntuples(r) == 0)
        printf("no pools\n");
    else
        cmd_print_result(r, headers, "tnnnnnt");
    PQclear(r);
    return CMD_OK;
}

/* Per worker group: the metastore's side from dagq.worker_group_backlog, the
 * broker's side (messages no consumer has taken yet) from queue_backlog when
 * --broker-url is set. The columns an autoscaler would scale a group by. */
int cmd_queues(cmd_ctx *c)
{
    static const char *sql =
        "SELECT worker_group, queued, ready, running, live_workers, free_slots,"
        "       oldest_queued_age_s"
        "  FROM dagq.worker_group_backlog ORDER BY worker_group";
    static const char *headers[] = {"GROUP",   "QUEUED",  "READY",      "BACKLOG",
                                    "RUNNING", "WORKERS", "FREE SLOTS", "OLDEST QUEUED"};
    char err[1024];
    if (c->broker_url && queue_url_check(c->broker_url, err, sizeof err) != QUEUE_OK) {
        cmd_error("--broker-url: %s", err);
        return CMD_USAGE;
    }
    PGresult *r;
    if (cmd_query(c, "cli_queues", sql, 0, NULL, &r, "reading dagq.worker_group_backlog"))
        return CMD_ERR;
    if (PQntuples(r) == 0) {
        printf("no worker groups with work or workers\n");
        PQclear(r);
        return CMD_OK;
    }
    queue *q = NULL;
    int status = CMD_OK;
    if (c->broker_url) {
        queue_conf qc = {
            .broker_url = c->broker_url,
            .client_name = "dagq-cli",
            .redis_prefix = c->redis_prefix,
            .kafka_topic_prefix = c->kafka_topic_prefix,
        };
        if (queue_open(&qc, &q, err, sizeof err) != QUEUE_OK) {
            char shown[512];
            queue_url_redact(c->broker_url, shown, sizeof shown);
            cmd_error("cannot reach the broker %s: %s (backlog shown as -)", shown, err);
            status = CMD_ERR;
        }
    }
    table *t = table_new(8, headers, "lrrrrrrr");
    for (int i = 0; i < PQntuples(r); i++) {
        const char *group = PQgetvalue(r, i, 0);
        table_cell(t, group);
        for (int col = 1; col <= 2; col++)
            table_cell(t, PQgetvalue(r, i, col));
        int64_t backlog;
        if (!q) {
            table_cell(t, NULL);
        } else if (queue_backlog(q, group, &backlog, err, sizeof err) == QUEUE_OK) {
            table_cellf(t, "%lld", (long long)backlog);
        } else {
            cmd_error("reading the broker backlog of group %s: %s", group, err);
            table_cell(t, NULL);
            status = CMD_ERR;
        }
        for (int col = 3; col <= 5; col++)
            table_cell(t, PQgetvalue(r, i, col));
        double age = strtod(PQgetvalue(r, i, 6), NULL);
        if (!strcmp(PQgetvalue(r, i, 1), "0")) {
            table_cell(t, NULL);
        } else {
            char buf[64];
            table_duration(age, buf, sizeof buf);
            table_cell(t, buf);
        }
    }
    table_print(t, stdout);
    table_free(t);
    queue_free(q);
    PQclear(r);
    return status;
}
