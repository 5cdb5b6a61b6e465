#include "db.h"

#include "backoff.h"
#include "log.h"
#include "mem.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DB_MAX_STMTS 64
#define DB_MAX_LISTEN 8

struct db {
    char *conninfo;
    char *appname;
    PGconn *conn;
    int ever_connected;
    long reconnects;
    int nstmts;
    char *stmts[DB_MAX_STMTS]; /* names prepared on this connection */
    int nlisten;
    char *listen[DB_MAX_LISTEN];
    char sqlstate[6];
};

db *db_new(const char *conninfo, const char *application_name)
{
    db *d = mem_calloc(1, sizeof *d);
    d->conninfo = mem_strdup(conninfo ? conninfo : "");
    d->appname = mem_strdup(application_name ? application_name : "dagq");
    return d;
}

static void db_forget_stmts(db *d)
{
    for (int i = 0; i < d->nstmts; i++)
        mem_free(d->stmts[i]);
    d->nstmts = 0;
}

static void db_drop(db *d)
{
    if (d->conn)
        PQfinish(d->conn);
    d->conn = NULL;
    db_forget_stmts(d);
}

void db_free(db *d)
{
    if (!d)
        return;
    db_drop(d);
    for (int i = 0; i < d->nlisten; i++)
        mem_free(d->listen[i]);
    mem_free(d->conninfo);
    mem_free(d->appname);
    mem_free(d);
}

int db_connected(const db *d)
{
    return d->conn && PQstatus(d->conn) == CONNECTION_OK;
}

PGconn *db_conn(db *d)
{
    return db_connected(d) ? d->conn : NULL;
}

const char *db_sqlstate(const db *d)
{
    return d->sqlstate;
}

int db_socket(const db *d)
{
    return db_connected(d) ? PQsocket(d->conn) : -1;
}

/* Silence libpq's NOTICEs (e.g. "relation already exists, skipping"). */
static void db_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* libpq's messages end in newlines and may span lines: one log-friendly line */
static void db_one_line(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

int db_connect(db *d, char *errbuf, size_t errlen)
{
    if (db_connected(d))
        return DB_OK;
    db_drop(d);
    /* conninfo may be a URI or key=value words; expand_dbname lets us add
     * application_name and a connect timeout beside either form. */
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {d->conninfo, d->appname, "5", NULL};
    d->conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(d->conn) != CONNECTION_OK) {
        snprintf(errbuf, errlen, "%s", PQerrorMessage(d->conn));
        db_one_line(errbuf);
        db_drop(d);
        return DB_ECONN;
    }
    PQsetNoticeProcessor(d->conn, db_notice, NULL);
    for (int i = 0; i < d->nlisten; i++) {
        char *q = mem_printf("LISTEN \"%s\"", d->listen[i]);
        PGresult *r = PQexec(d->conn, q);
        mem_free(q);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            snprintf(errbuf, errlen, "LISTEN %s: %s", d->listen[i], PQerrorMessage(d->conn));
            db_drop(d);
            return DB_ECONN;
        }
    }
    if (d->ever_connected) {
        d->reconnects++;
        log_info("database reconnected", "reconnects=%ld", d->reconnects);
    }
    d->ever_connected = 1;
    return DB_OK;
}

int db_ensure(db *d, volatile int *stop)
{
    char err[512];
    for (int attempt = 0;; attempt++) {
        if (db_connect(d, err, sizeof err) == DB_OK)
            return DB_OK;
        int ms = backoff_reconnect_ms(attempt);
        log_warn("database unreachable, retrying", "attempt=%d retry_in_ms=%d error=\"%s\"",
                 attempt + 1, ms, err);
        /* sleep in slices so a stop request is seen promptly */
        for (int slept = 0; slept < ms; slept += 50) {
            if (stop && *stop)
                return DB_ECONN;
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (stop && *stop)
            return DB_ECONN;
    }
}

/* After a failed call: did we lose the connection? */
static int db_classify(db *d, PGresult *r, const char *what, char *errbuf, size_t errlen)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(d->sqlstate, sizeof d->sqlstate, "%s", st ? st : "");
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !*msg)
        msg = PQerrorMessage(d->conn);
    snprintf(errbuf, errlen, "%s: %s", what, msg);
    db_one_line(errbuf);
    /* class 08 is connection exception; 57P01..57P03 are shutdowns */
    int lost = PQstatus(d->conn) != CONNECTION_OK ||
               (st && (!strncmp(st, "08", 2) || !strncmp(st, "57P", 3)));
    if (lost) {
        log_warn("database connection lost", "during=%s error=\"%s\"", what, errbuf);
        db_drop(d);
        return DB_ECONN;
    }
    return DB_EQUERY;
}

static int db_is_prepared(db *d, const char *name)
{
    for (int i = 0; i < d->nstmts; i++)
        if (!strcmp(d->stmts[i], name))
            return 1;
    return 0;
}

int db_query(db *d, const char *name, const char *sql, int n, const char *const *params,
             PGresult **res, char *errbuf, size_t errlen)
{
    if (res)
        *res = NULL;
    d->sqlstate[0] = '\0';
    if (!db_connected(d)) {
        snprintf(errbuf, errlen, "%s: not connected to the database", name);
        return DB_ECONN;
    }
    if (!db_is_prepared(d, name)) {
        PGresult *p = PQprepare(d->conn, name, sql, n, NULL);
        if (PQresultStatus(p) != PGRES_COMMAND_OK) {
            int rc = db_classify(d, p, name, errbuf, errlen);
            PQclear(p);
            return rc;
        }
        PQclear(p);
        if (d->nstmts < DB_MAX_STMTS)
            d->stmts[d->nstmts++] = mem_strdup(name);
    }
    PGresult *r = PQexecPrepared(d->conn, name, n, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = db_classify(d, r, name, errbuf, errlen);
        PQclear(r);
        return rc;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return DB_OK;
}

int db_exec(db *d, const char *sql, char *errbuf, size_t errlen)
{
    d->sqlstate[0] = '\0';
    if (!db_connected(d)) {
        snprintf(errbuf, errlen, "%s: not connected to the database", sql);
        return DB_ECONN;
    }
    PGresult *r = PQexec(d->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = db_classify(d, r, sql, errbuf, errlen);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    return DB_OK;
}

int db_listen(db *d, const char *channel, char *errbuf, size_t errlen)
{
    if (d->nlisten < DB_MAX_LISTEN)
        d->listen[d->nlisten++] = mem_strdup(channel);
    if (!db_connected(d))
        return DB_OK; /* issued on connect */
    char *q = mem_printf("LISTEN \"%s\"", channel);
    int rc = db_exec(d, q, errbuf, errlen);
    mem_free(q);
    return rc;
}

int db_drain_notifies(db *d)
{
    if (!db_connected(d))
        return DB_ECONN;
    if (!PQconsumeInput(d->conn)) {
        log_warn("database connection lost", "during=notify error=\"%s\"", PQerrorMessage(d->conn));
        db_drop(d);
        return DB_ECONN;
    }
    int n = 0;
    PGnotify *nt;
    while ((nt = PQnotifies(d->conn)) != NULL) {
        n++;
        PQfreemem(nt);
    }
    return n;
}
