/* db — a PostgreSQL connection that survives the server going away.
 *
 * db_query runs a named, parameterised statement: it is prepared on first use
 * on each connection (and again after a reconnect), or sent unnamed each time
 * (db_set_unnamed: through a transaction-pooling PgBouncer). When the connection is
 * lost, calls return DB_ECONN; db_ensure reconnects with backoff (logging
 * each attempt) and re-issues the LISTENs given to db_listen. */
#ifndef DAGQ_DB_H
#define DAGQ_DB_H

#include <libpq-fe.h>
#include <stddef.h>

#define DB_OK 0
#define DB_ECONN (-2)  /* connection lost / unreachable: retriable */
#define DB_EQUERY (-3) /* the statement failed (errbuf has the server's words) */

typedef struct db db; /* opaque */

/* conninfo: any libpq conninfo or URI; NULL or "" means libpq's defaults.
 * TCP keepalives and tcp_user_timeout default to values that notice a dead
 * server within about 30 s (a conninfo that sets them wins). */
db *db_new(const char *conninfo, const char *application_name);
void db_free(db *d);

/* SQL run on every new connection before anything else (e.g. "SET
 * lock_timeout = '2s'"); copied. NULL: none. */
void db_set_session_sql(db *d, const char *sql);

/* on: db_query sends its statements unnamed (PQexecParams: parse, bind and
 * execute in one round trip) instead of preparing them once per connection,
 * so nothing of a statement outlives its transaction on the server. For a
 * connection that may go through a transaction-pooling PgBouncer, whose
 * server connections change under the client between transactions (and which
 * in 1.18 does not carry prepared statements over). Default off. */
void db_set_unnamed(db *d, int on);

/* Connects if not connected. Returns DB_OK, or DB_ECONN with the reason. One
 * attempt; the caller decides how long to wait (see db_ensure). */
int db_connect(db *d, char *errbuf, size_t errlen);

/* Connects, retrying with backoff_reconnect_ms until it works or *stop
 * becomes non-zero (then returns DB_ECONN). Logs each failure once per attempt. */
int db_ensure(db *d, volatile int *stop);

int db_connected(const db *d);
PGconn *db_conn(db *d); /* NULL when not connected */

/* Runs statement `name` (sql is used to prepare it) with n text params
 * (NULL = SQL NULL). On DB_OK *res holds the result (caller PQclear()s it;
 * pass res NULL to discard). On DB_EQUERY the server's message is in errbuf;
 * on DB_ECONN the connection is marked lost. */
int db_query(db *d, const char *name, const char *sql, int n, const char *const *params,
             PGresult **res, char *errbuf, size_t errlen);

/* Runs a plain SQL command without parameters (BEGIN, COMMIT, LISTEN ...). */
int db_exec(db *d, const char *sql, char *errbuf, size_t errlen);

/* LISTEN to channel now and after every reconnect. */
int db_listen(db *d, const char *channel, char *errbuf, size_t errlen);

/* Socket to poll for notifications; -1 when not connected. */
int db_socket(const db *d);

/* Consumes input and returns how many notifications arrived (each given to
 * the db_on_notify callback, if any, then freed), or DB_ECONN. */
int db_drain_notifies(db *d);

/* Has fn(arg, payload) called for every notification db_drain_notifies
 * takes (payload "" when none), before it is freed. fn NULL: none. */
typedef void (*db_notify_fn)(void *arg, const char *payload);
void db_on_notify(db *d, db_notify_fn fn, void *arg);

/* Has fn(arg, 1) called before each statement db_query or db_exec sends,
 * and fn(arg, 0) once it answered (for a health check that sees a call
 * waiting). fn NULL: none. */
typedef void (*db_call_fn)(void *arg, int begin);
void db_on_call(db *d, db_call_fn fn, void *arg);

/* SQLSTATE of the last DB_EQUERY ("" when none). */
const char *db_sqlstate(const db *d);

/* Was the last DB_EQUERY one that is worth trying again as it is: a
 * deadlock, a serialization failure, a lock or statement timeout? */
int db_error_transient(const db *d);

/* Parses a text[] value as PostgreSQL prints it ({a,"b c","d\\"e"}): *out
 * gets *n new strings in a new array (free each and the array with
 * mem_free). NULL elements become "". Returns 0, or -1 when lit is not an
 * array literal (then *out is NULL). */
int db_text_array(const char *lit, char ***out, int *n);

/* SAVEPOINT / RELEASE / ROLLBACK TO of the named savepoint inside the
 * current transaction (name: an SQL identifier). */
int db_savepoint(db *d, const char *name, char *errbuf, size_t errlen);
int db_release(db *d, const char *name, char *errbuf, size_t errlen);
int db_rollback_to(db *d, const char *name, char *errbuf, size_t errlen);

#endif
