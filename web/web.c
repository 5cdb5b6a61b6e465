#include "web.h"

#include "mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int web_body(web_req *r, unsigned status, const char *type, const char *body, size_t len)
{
    mem_free(r->resp);
    r->resp = mem_alloc(len + 1);
    memcpy(r->resp, body, len);
    r->resp[len] = '\0';
    r->resp_len = len;
    r->resp_type = type;
    r->status = status;
    return 0;
}

int web_json(web_req *r, unsigned status, const char *json)
{
    return web_body(r, status, "application/json", json, strlen(json));
}

static const char *web_reason(unsigned status)
{
    switch (status) {
    case 400:
        return "bad request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not found";
    case 405:
        return "method not allowed";
    case 409:
        return "conflict";
    case 413:
        return "request body too large";
    case 415:
        return "unsupported media type";
    case 416:
        return "range not satisfiable";
    case 501:
        return "not implemented";
    case 503:
        return "service unavailable";
    default:
        return status >= 500 ? "internal error" : "error";
    }
}

int web_error(web_req *r, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *detail = mem_alloc((size_t)(n < 0 ? 0 : n) + 1);
    va_start(ap, fmt);
    vsnprintf(detail, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap);
    va_end(ap);
    char *jd = web_json_string(detail);
    char *body = mem_printf("{\"error\": \"%s\", \"detail\": %s}\n", web_reason(status), jd);
    web_json(r, status, body);
    mem_free(body);
    mem_free(jd);
    mem_free(r->error_detail);
    r->error_detail = detail;
    return -1;
}

void web_header(web_req *r, const char *name, const char *value)
{
    if (r->nheaders < (int)(sizeof r->headers / sizeof r->headers[0]))
        r->headers[r->nheaders++] = mem_printf("%s: %s", name, value);
}

unsigned web_status_of_sqlstate(const char *st)
{
    if (!st || !*st)
        return 500;
    if (!strcmp(st, "42501"))
        return 403;
    if (!strcmp(st, "P0002") || !strcmp(st, "02000"))
        return 404;
    if (!strcmp(st, "0A000"))
        return 501;
    if (!strcmp(st, "23505") || !strcmp(st, "55006") || !strcmp(st, "23P01"))
        return 409;
    if (!strncmp(st, "22", 2) || !strcmp(st, "23514") || !strcmp(st, "42P02"))
        return 400;
    if (!strcmp(st, "57014") || !strcmp(st, "55P03") || !strcmp(st, "40001") ||
        !strcmp(st, "40P01"))
        return 503;
    return 500;
}

/* Cuts s at the first occurrence of marker; returns what follows it, or NULL. */
static char *web_cut(char *s, const char *marker)
{
    char *p = strstr(s, marker);
    if (!p)
        return NULL;
    *p = '\0';
    return p + strlen(marker);
}

char *web_clean_error(const char *err)
{
    char *s = mem_strdup(err ? err : "");
    char *msg = strstr(s, "ERROR:  ");
    msg = msg ? msg + 8 : s;
    web_cut(msg, " CONTEXT:  ");
    char *hint = web_cut(msg, " HINT:  ");
    char *detail = web_cut(msg, " DETAIL:  ");
    char *out = mem_printf("%s%s%s%s%s", msg, detail ? "; " : "", detail ? detail : "",
                           hint ? "; hint: " : "", hint ? hint : "");
    mem_free(s);
    return out;
}

int web_query(web_req *r, const char *name, const char *sql, int n, const char *const *params,
              PGresult **res)
{
    char err[4096];
    int rc = db_query(r->db, name, sql, n, params, res, err, sizeof err);
    if (rc == DB_OK)
        return 0;
    char *msg = web_clean_error(err);
    if (rc == DB_ECONN) {
        web_error(r, 503, "lost the connection to the metastore: %s", msg);
    } else {
        unsigned st = web_status_of_sqlstate(db_sqlstate(r->db));
        web_error(r, st, "%s", msg);
    }
    mem_free(msg);
    return -1;
}

int web_query_json(web_req *r, const char *name, const char *sql, int n, const char *const *params,
                   unsigned ok_status, const char *not_found)
{
    PGresult *res;
    if (web_query(r, name, sql, n, params, &res))
        return -1;
    int rc = 0;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
        rc = web_error(r, 404, "%s", not_found ? not_found : "not found");
    else
        web_body(r, ok_status, "application/json", PQgetvalue(res, 0, 0),
                 (size_t)PQgetlength(res, 0, 0));
    PQclear(res);
    return rc;
}

const char *web_arg(web_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *web_req_header(web_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* s as a whole number in [min, max]; 0, or -1 */
static int web_parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int web_arg_int(web_req *r, const char *name, long long def, long long min, long long max,
                char *buf, size_t len)
{
    const char *s = web_arg(r, name);
    long long v = def;
    if (s && web_parse_int(s, min, max, &v))
        return web_error(r, 400,
                         "query parameter %s must be a whole number from %lld to %lld, "
                         "got \"%s\"",
                         name, min, max, s);
    snprintf(buf, len, "%lld", v);
    return 0;
}

int web_param_id(web_req *r, int i, char *buf, size_t len)
{
    long long v;
    if (web_parse_int(r->params[i], 1, 9223372036854775807LL, &v))
        return web_error(r, 400, "a run id is a whole number from 1, got \"%s\"", r->params[i]);
    snprintf(buf, len, "%lld", v);
    return 0;
}

char *web_json_string(const char *s)
{
    size_t n = strlen(s), k = 0;
    char *out = mem_alloc(n * 6 + 3);
    out[k++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            out[k++] = '\\';
            out[k++] = (char)*p;
        } else if (*p < 0x20) {
            k += (size_t)sprintf(out + k, "\\u%04x", *p);
        } else {
            out[k++] = (char)*p;
        }
    }
    out[k++] = '"';
    out[k] = '\0';
    return out;
}

void web_req_clear(web_req *r)
{
    for (int i = 0; i < r->nparams; i++)
        mem_free(r->params[i]);
    for (int i = 0; i < r->nheaders; i++)
        mem_free(r->headers[i]);
    mem_free(r->resp);
    mem_free(r->error_detail);
    r->nparams = r->nheaders = 0;
    r->resp = r->error_detail = NULL;
}
