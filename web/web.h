/* web — what dagq-web's request handlers share: the request (its method,
 * path parameters, query arguments, body, the token it came with and the
 * metastore connection its transaction runs on) and the ways to answer it.
 *
 * A handler runs inside the request's transaction, after SET LOCAL ROLE to
 * the token's role (none for the public routes), so every statement it runs
 * has exactly that role's rights. It answers with web_json / web_text /
 * web_error; a failed statement is answered by web_query itself, its
 * SQLSTATE mapped to a status (42501 403, P0002 404, 22xxx 400, 0A000 501,
 * 23505 409, a lost database 503). */
#ifndef DAGQ_WEB_H
#define DAGQ_WEB_H

#include "db.h"

#include <microhttpd.h>
#include <stddef.h>

#define WEB_MAX_PARAMS 4

typedef struct web_req {
    struct MHD_Connection *conn;
    const char *method, *path;
    char *params[WEB_MAX_PARAMS]; /* path parameters, in order ({dag}, {run}, ...) */
    int nparams;
    const char *body; /* NUL-terminated; "" when none */
    size_t body_len;
    const char *client; /* the peer's address */
    db *db;             /* in a transaction; NULL for routes that need none */
    /* the token (token_id 0: none) */
    long long token_id;
    char token_name[128], role[128];
    /* the answer */
    unsigned status;
    char *resp; /* owned (mem_alloc) */
    size_t resp_len;
    const char *resp_type;
    char *headers[8]; /* "Name: value", owned */
    int nheaders;
    char *error_detail; /* owned; what the audit records for a failure */
} web_req;

typedef int (*web_handler)(web_req *r);

/* Answers with body json (copied), application/json. Returns 0. */
int web_json(web_req *r, unsigned status, const char *json);
/* Answers with len bytes of body (copied) and content type type. Returns 0. */
int web_body(web_req *r, unsigned status, const char *type, const char *body, size_t len);
/* {"error": <the status's reason>, "detail": detail}. Returns -1. */
int web_error(web_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds a response header (both copied). */
void web_header(web_req *r, const char *name, const char *value);

/* db_query on the request's connection. On failure answers the request (the
 * server's message as the detail) and returns -1; else 0 and *res. */
int web_query(web_req *r, const char *name, const char *sql, int n, const char *const *params,
              PGresult **res);
/* web_query of a statement returning one jsonb (NULL: 404 with not_found as
 * the detail), answered as 200 (or ok_status). Returns 0 or -1. */
int web_query_json(web_req *r, const char *name, const char *sql, int n, const char *const *params,
                   unsigned ok_status, const char *not_found);
/* The status for a failed statement with this SQLSTATE. */
unsigned web_status_of_sqlstate(const char *sqlstate);

/* A query argument, or NULL. */
const char *web_arg(web_req *r, const char *name);
/* A request header, or NULL. */
const char *web_req_header(web_req *r, const char *name);
/* Query argument name as a whole number in [min, max] written into buf (def
 * when absent). Answers 400 and returns -1 when it is not one. */
int web_arg_int(web_req *r, const char *name, long long def, long long min, long long max,
                char *buf, size_t len);
/* A path parameter that must be a run id: written normalised into buf.
 * Answers 400 and returns -1 when it is not a positive whole number. */
int web_param_id(web_req *r, int i, char *buf, size_t len);

/* s as a JSON string literal with its quotes, appended to a new string.
 * Caller frees with mem_free. */
char *web_json_string(const char *s);

/* The server's words of a db error ("stmt: ERROR:  msg DETAIL:  d ...")
 * without decoration and context. Caller frees. */
char *web_clean_error(const char *err);

/* Frees what a request owns (params, answer, headers). */
void web_req_clear(web_req *r);

#endif
