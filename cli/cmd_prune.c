#include "cmd_prune.h"

#include "duration.h"
#include "mem.h"
#include "table.h"

#include <stdio.h>
#include <stdlib.h>

#define PRUNE_BATCH "1000"   /* runs per batch (one transaction each) */
#define PRUNE_LOCK_RETRIES 5 /* a batch that met a lock held too long is tried again */

static int prune_fail(const char *stmt, const char *what, const char *err)
{
    char *msg = cmd_clean_error(err, stmt);
    cmd_error("%s: %s", what, msg);
    mem_free(msg);
    return CMD_ERR;
}

static int prune_preview(cmd_ctx *c, const char *secs)
{
    static const char *headers[] = {"DAG",    "RUNS",         "TASK INSTANCES",
                                    "EVENTS", "OLDEST ENDED", "NEWEST ENDED"};
    const char *p[1] = {secs};
    PGresult *r;
    char err[2048];
    if (db_query(c->db, "cli_prune_preview",
                 "SELECT dag_id, runs, task_instances, events,"
                 "       to_char(oldest_ended, 'YYYY-MM-DD HH24:MI:SS'),"
                 "       to_char(newest_ended, 'YYYY-MM-DD HH24:MI:SS')"
                 "  FROM dagq.prune_preview(make_interval(secs => $1::float8))",
                 1, p, &r, err, sizeof err) != DB_OK)
        return prune_fail("cli_prune_preview", "db prune --dry-run", err);
    long long runs = 0, tis = 0, events = 0;
    if (PQntuples(r) > 0) {
        table *t = table_new(6, headers, "lrrrll");
        for (int i = 0; i < PQntuples(r); i++) {
            for (int col = 0; col < 6; col++)
                table_cell(t, PQgetisnull(r, i, col) ? NULL : PQgetvalue(r, i, col));
            runs += atoll(PQgetvalue(r, i, 1));
            tis += atoll(PQgetvalue(r, i, 2));
            events += atoll(PQgetvalue(r, i, 3));
        }
        table_print(t, stdout);
        table_free(t);
    }
    PQclear(r);
    printf("dry run: would delete %lld runs, %lld task instances and %lld events ended or written "
           "more than %s ago; nothing was deleted\n",
           runs, tis, events, c->older_than);
    return CMD_OK;
}

/* One batch; *got[5] are its counts. A lock held too long elsewhere (the
 * function waits 2 s at most) is not an error: the batch is tried again. */
static int prune_batch(cmd_ctx *c, const char *secs, long long got[5])
{
    const char *p[2] = {secs, PRUNE_BATCH};
    char err[2048];
    for (int attempt = 0;; attempt++) {
        PGresult *r;
        if (db_query(c->db, "cli_prune",
                     "SELECT * FROM dagq.prune_history(make_interval(secs => $1::float8), $2::int)",
                     2, p, &r, err, sizeof err) == DB_OK) {
            for (int k = 0; k < 5; k++)
                got[k] = atoll(PQgetvalue(r, 0, k));
            PQclear(r);
            return CMD_OK;
        }
        if (!db_error_transient(c->db) || attempt >= PRUNE_LOCK_RETRIES)
            return prune_fail("cli_prune", "db prune", err);
    }
}

int cmd_db_prune(cmd_ctx *c)
{
    double age;
    char err[2048], secs[64];
    if (!c->older_than) {
        cmd_error("db prune: --older-than AGE is required (usage: dagq db prune --older-than 30d "
                  "[--dry-run])");
        return CMD_USAGE;
    }
    if (duration_parse(c->older_than, &age, err, sizeof err) != 0) {
        cmd_error("db prune: --older-than: %s", err);
        return CMD_USAGE;
    }
    snprintf(secs, sizeof secs, "%.3f", age);
    if (c->dry_run)
        return prune_preview(c, secs);
    long long total[5] = {0}, batches = 0;
    for (;;) {
        long long got[5];
        int rc = prune_batch(c, secs, got);
        if (rc != CMD_OK)
            return rc;
        if (got[0] == 0 && got[4] == 0)
            break;
        batches++;
        for (int k = 0; k < 5; k++)
            total[k] += got[k];
    }
    PGresult *r;
    if (db_query(c->db, "cli_prune_workers", "SELECT dagq.prune_workers()", 0, NULL, &r, err,
                 sizeof err) != DB_OK)
        return prune_fail("cli_prune_workers", "db prune (worker rows)", err);
    long long workers = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    printf("deleted %lld runs, %lld task instances, %lld tries, %lld logs and %lld events older "
           "than %s (%lld batch%s), and %lld rows of workers gone for a day\n",
           total[0], total[1], total[2], total[3], total[4], c->older_than, batches,
           batches == 1 ? "" : "es", workers);
    return CMD_OK;
}
