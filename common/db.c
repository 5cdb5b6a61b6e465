#include "db.h"

#include "backoff.h"
#include "log.h"
#include "mem.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct db {
    char *conninfo;
    char *appname;
    char *session_sql; /* run on every new connection, or NULL */
    int unnamed;       /* statements go unnamed (PQexecParams): nothing kept on the session */
    PGconn *conn;
    int ever_connected;
    long reconnects;
    int nstmts, capstmts;
    char **stmts; /* names prepared on this connection */
    int nlisten, caplisten;
    char **listen; /* channels, each once */
    char sqlstate[6];
    db_notify_fn on_notify; /* told of every notification, or NULL */
    void *on_notify_arg;
    db_call_fn on_call; /* told when a statement goes and comes back, or NULL */
    void *on_call_arg;
};

/* Appends a copy of s to a growing array of strings. */
static void db_push(char ***arr, int *n, int *cap, const char *s)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *arr = mem_realloc(*arr, sizeof **arr * (size_t)*cap);
    }
    (*arr)[(*n)++] = mem_strdup(s);
}

db *db_new(const char *conninfo, const char *application_name)
{
    db *d = mem_calloc(1, sizeof *d);
    d->conninfo = mem_strdup(conninfo ? conninfo : "");
    d->appname = mem_strdup(application_name ? application_name : "dagq");
    return d;
}

void db_set_session_sql(db *d, const char *sql)
{
    mem_free(d->session_sql);
    d->session_sql = mem_strdup(sql);
}

void db_set_unnamed(db *d, int on)
{
    d->unnamed = on != 0;
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
    mem_free(d->listen);
    mem_free(d->stmts);
    mem_free(d->conninfo);
    mem_free(d->appname);
    mem_free(d->session_sql);
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
     * settings beside either form. libpq processes the keywords in order and
     * keeps the last value of a repeated one: the defaults before dbname
     * are the user's to override (keepalives and tcp_user_timeout notice a
     * server that vanished without closing the connection), those after it
     * are ours. */
    const char *keys[] = {"connect_timeout",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          "application_name",
                          NULL};
    const char *vals[] = {"5", "1", "10", "5", "3", "30000", d->conninfo, d->appname, NULL};
    d->conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(d->conn) != CONNECTION_OK) {
        snprintf(errbuf, errlen, "%s", PQerrorMessage(d->conn));
        db_one_line(errbuf);
        db_drop(d);
        return DB_ECONN;
    }
    PQsetNoticeProcessor(d->conn, db_notice, NULL);
    if (d->session_sql) {
        PGresult *r = PQexec(d->conn, d->session_sql);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok) {
            snprintf(errbuf, errlen, "session setup: %s", PQresultErrorMessage(r));
            db_one_line(errbuf);
        }
        PQclear(r);
        if (!ok) {
            db_drop(d);
            return DB_ECONN;
        }
    }
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
        char q[512];
        log_warn("database unreachable, retrying", "attempt=%d retry_in_ms=%d error=\"%s\"",
                 attempt + 1, ms, log_quote(err, q, sizeof q));
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
        char q[512];
        log_warn("database connection lost", "during=%s error=\"%s\"", what,
                 log_quote(errbuf, q, sizeof q));
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

/* A statement's result r: handed to *res (or cleared) when it succeeded,
 * else classified. */
static int db_result(db *d, PGresult *r, const char *name, PGresult **res, char *errbuf,
                     size_t errlen)
{
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

static void db_call(db *d, int begin)
{
    if (d->on_call)
        d->on_call(d->on_call_arg, begin);
}

void db_on_call(db *d, db_call_fn fn, void *arg)
{
    d->on_call = fn;
    d->on_call_arg = arg;
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
    if (d->unnamed) {
        /* Parse, Bind, Execute and Sync of the unnamed statement in one
         * round trip: nothing outlives it on the server connection, so a
         * transaction-pooling PgBouncer may hand the next one to any other */
        db_call(d, 1);
        PGresult *r = PQexecParams(d->conn, sql, n, NULL, params, NULL, NULL, 0);
        db_call(d, 0);
        return db_result(d, r, name, res, errbuf, errlen);
    }
    if (!db_is_prepared(d, name)) {
        db_call(d, 1);
        PGresult *p = PQprepare(d->conn, name, sql, n, NULL);
        db_call(d, 0);
        if (PQresultStatus(p) != PGRES_COMMAND_OK) {
            int rc = db_classify(d, p, name, errbuf, errlen);
            PQclear(p);
            return rc;
        }
        PQclear(p);
        db_push(&d->stmts, &d->nstmts, &d->capstmts, name);
    }
    db_call(d, 1);
    PGresult *r = PQexecPrepared(d->conn, name, n, params, NULL, NULL, 0);
    db_call(d, 0);
    return db_result(d, r, name, res, errbuf, errlen);
}

int db_exec(db *d, const char *sql, char *errbuf, size_t errlen)
{
    d->sqlstate[0] = '\0';
    if (!db_connected(d)) {
        snprintf(errbuf, errlen, "%s: not connected to the database", sql);
        return DB_ECONN;
    }
    db_call(d, 1);
    PGresult *r = PQexec(d->conn, sql);
    db_call(d, 0);
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
    int known = 0;
    for (int i = 0; i < d->nlisten && !known; i++)
        known = !strcmp(d->listen[i], channel);
    if (!known)
        db_push(&d->listen, &d->nlisten, &d->caplisten, channel);
    if (!db_connected(d))
        return DB_OK; /* issued on connect */
    char *q = mem_printf("LISTEN \"%s\"", channel);
    int rc = db_exec(d, q, errbuf, errlen);
    mem_free(q);
    return rc;
}

/* One element at *pp (after '{' or ','): quoted or not. Returns the new
 * string, or NULL on a malformed literal; *pp is left after the element. */
static char *db_array_elem(const char **pp)
{
    const char *p = *pp;
    size_t cap = 16, n = 0;
    char *buf = mem_alloc(cap);
    int quoted = *p == '"';
    if (quoted)
        p++;
    for (;; p++) {
        char c = *p;
        if (c == '\0' || (!quoted && (c == ',' || c == '}')) || (quoted && c == '"'))
            break;
        if (c == '\\' && quoted) {
            if (!*++p)
                break;
            c = *p;
        }
        if (n + 2 > cap)
            buf = mem_realloc(buf, cap *= 2);
        buf[n++] = c;
    }
    buf[n] = '\0';
    if (quoted) {
        if (*p != '"') {
            mem_free(buf);
            return NULL;
        }
        p++;
    } else if (!strcmp(buf, "NULL")) {
        buf[0] = '\0';
    }
    *pp = p;
    return buf;
}

int db_text_array(const char *lit, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!lit || *lit != '{')
        return -1;
    const char *p = lit + 1;
    char **arr = NULL;
    int k = 0, cap = 0;
    if (*p == '}' && p[1] == '\0') {
        *out = mem_calloc(1, sizeof **out);
        return 0;
    }
    for (;;) {
        char *e = db_array_elem(&p);
        if (!e)
            goto bad;
        if (k == cap) {
            cap = cap ? cap * 2 : 8;
            arr = mem_realloc(arr, sizeof *arr * (size_t)cap);
        }
        arr[k++] = e;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '}' && p[1] == '\0')
            break;
        goto bad;
    }
    *out = arr;
    *n = k;
    return 0;
bad:
    for (int i = 0; i < k; i++)
        mem_free(arr[i]);
    mem_free(arr);
    return -1;
}

int db_error_transient(const db *d)
{
    static const char *const codes[] = {"40001", "40P01", "55P03", "57014"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (!strcmp(d->sqlstate, codes[i]))
            return 1;
    return 0;
}

static int db_savepoint_cmd(db *d, const char *verb, const char *name, char *errbuf, size_t errlen)
{
    char *q = mem_printf("%s %s", verb, name);
    int rc = db_exec(d, q, errbuf, errlen);
    mem_free(q);
    return rc;
}

int db_savepoint(db *d, const char *name, char *errbuf, size_t errlen)
{
    return db_savepoint_cmd(d, "SAVEPOINT", name, errbuf, errlen);
}

int db_release(db *d, const char *name, char *errbuf, size_t errlen)
{
    return db_savepoint_cmd(d, "RELEASE SAVEPOINT", name, errbuf, errlen);
}

int db_rollback_to(db *d, const char *name, char *errbuf, size_t errlen)
{
    return db_savepoint_cmd(d, "ROLLBACK TO SAVEPOINT", name, errbuf, errlen);
}

int db_drain_notifies(db *d)
{
    if (!db_connected(d))
        return DB_ECONN;
    if (!PQconsumeInput(d->conn)) {
        char q[512];
        log_warn("database connection lost", "during=notify error=\"%s\"",
                 log_quote(PQerrorMessage(d->conn), q, sizeof q));
        db_drop(d);
        return DB_ECONN;
    }
    int n = 0;
    PGnotify *nt;
    while ((nt = PQnotifies(d->conn)) != NULL) {
        n++;
        if (d->on_notify)
            d->on_notify(d->on_notify_arg, nt->extra ? nt->extra : "");
        PQfreemem(nt);
    }
    return n;
}

void db_on_notify(db *d, db_notify_fn fn, void *arg)
{
    d->on_notify = fn;
    d->on_notify_arg = arg;
}
