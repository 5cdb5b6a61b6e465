#include "server.h"

#include "assets.h"
#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "mem.h"
#include "routes.h"
#include "web.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#if MHD_VERSION < 0x00097002
typedef int srv_result;
#else
typedef enum MHD_Result srv_result;
#endif

struct server {
    struct MHD_Daemon *d;
    server_conf c;
    char *bind, *base_url, *prefix; /* owned copies */
    int port;
};

/* What a connection has received of its request so far. */
typedef struct conn_state {
    char *body;
    size_t len;
    int too_big, responded;
} conn_state;

static const char *const srv_security_headers[][2] = {
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
                                "form-action 'none'"},
};

/* Queues r's answer (its body moves to MHD) with the headers every answer has. */
static srv_result srv_send(web_req *r, const char *cache)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->resp_len, r->resp ? r->resp : (char *)"",
                                        r->resp ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    r->resp = NULL;
    if (r->resp_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->resp_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
    for (size_t i = 0; i < sizeof srv_security_headers / sizeof srv_security_headers[0]; i++)
        MHD_add_response_header(resp, srv_security_headers[i][0], srv_security_headers[i][1]);
    for (int i = 0; i < r->nheaders; i++) {
        char *h = r->headers[i], *colon = strchr(h, ':');
        if (!colon)
            continue;
        *colon = '\0';
        MHD_add_response_header(resp, h, colon + 2);
        *colon = ':';
    }
    srv_result ret = MHD_queue_response(r->conn, r->status ? r->status : 500, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void srv_client(struct MHD_Connection *conn, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, len, "?");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
}

/* The UI: / is index.html, /static/NAME the file ui/NAME. */
static void srv_static(web_req *r, const char *path)
{
    char name[512];
    if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD")) {
        web_header(r, "Allow", "GET, HEAD");
        web_error(r, 405, "the UI's files are read with GET");
        return;
    }
    if (!strcmp(path, "/") || !strcmp(path, "/index.html"))
        snprintf(name, sizeof name, "ui/index.html");
    else if (!strncmp(path, "/static/", 8) && !strstr(path, ".."))
        snprintf(name, sizeof name, "ui/%s", path + 8);
    else
        name[0] = '\0';
    const asset *a = name[0] ? assets_find(name) : NULL;
    if (!a) {
        web_error(r, 404, "no such page: %s (the UI is at /, the API at /api/v1/)", path);
        return;
    }
    web_body(r, 200, a->type, (const char *)a->data, a->len);
}

/* SHA-256 of the token as 64 hex digits. */
static void srv_token_hash(const char *tok, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(tok, strlen(tok), md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n && i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    hex[64] = '\0';
}

/* The token of the Authorization header, looked up: fills r's token fields.
 * Answers 401 and returns -1 without a valid one. */
static int srv_authenticate(web_req *r)
{
    const char *h = web_req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || !*h)
        return web_error(r, 401,
                         "no token: send Authorization: Bearer <token> "
                         "(dagq tokens create makes one)");
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return web_error(r, 401, "the Authorization header must be \"Bearer <token>\"");
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    if (strlen(tok) < 8 || strlen(tok) > 256)
        return web_error(r, 401, "malformed token");
    char hex[65];
    srv_token_hash(tok, hex);
    const char *p[1] = {hex};
    PGresult *res;
    if (web_query(r, "web_auth",
                  "SELECT token_id, name, role, state FROM dagq.token_authenticate($1)", 1, p,
                  &res))
        return -1;
    int rc = 0;
    if (PQntuples(res) == 0) {
        rc = web_error(r, 401, "unknown token");
    } else if (strcmp(PQgetvalue(res, 0, 3), "valid") != 0) {
        rc = web_error(r, 401, "token \"%s\" is %s", PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 3));
    } else {
        r->token_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(r->token_name, sizeof r->token_name, "%s", PQgetvalue(res, 0, 1));
        snprintf(r->role, sizeof r->role, "%s", PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    return rc;
}

/* BEGIN, and SET LOCAL ROLE to the token's role. */
static int srv_begin(server *s, web_req *r, const route *rt)
{
    char err[2048], tmo[32];
    const char *begin = (rt->flags & ROUTE_WRITE) ? "BEGIN" : "BEGIN READ ONLY";
    if (db_exec(r->db, begin, err, sizeof err) != DB_OK)
        return web_error(r, 503, "cannot start a transaction in the metastore");
    snprintf(tmo, sizeof tmo, "%d", s->c.statement_timeout_ms);
    const char *p[2] = {r->role, tmo};
    PGresult *res;
    if (web_query(r, "web_role",
                  "SELECT set_config('role', $1, true), set_config('statement_timeout', $2, true)",
                  2, p, &res)) {
        if (r->status == 403 || r->status == 500) {
            web_error(r, 403,
                      "dagq-web cannot take on role %s, the role of token \"%s\" (GRANT %s "
                      "TO dagq_web)",
                      r->role, r->token_name, r->role);
            log_warn("cannot take on a token's role", "token=%s role=%s", r->token_name, r->role);
        }
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Records a write in dagq.audit_log (inside the open transaction, or on its
 * own after a rollback). */
static void srv_audit(web_req *r)
{
    char id[32], st[16], err[2048];
    snprintf(id, sizeof id, "%lld", r->token_id);
    snprintf(st, sizeof st, "%u", r->status);
    const char *p[7] = {r->token_id ? id : NULL,      r->client, r->method,      r->path,
                        r->body_len ? r->body : NULL, st,        r->error_detail};
    if (db_query(r->db, "web_audit", "SELECT dagq.audit_write($1, $2, $3, $4, $5, $6, $7)", 7, p,
                 NULL, err, sizeof err) != DB_OK) {
        char q[512];
        log_error("cannot write the audit of a request", "path=\"%s\" error=\"%s\"",
                  log_quote(r->path, q, sizeof q), err);
    }
}

/* An authenticated route's transaction around its handler. */
static void srv_transaction(server *s, web_req *r, const route *rt)
{
    char err[2048];
    if (srv_authenticate(r) || srv_begin(s, r, rt)) {
        if (r->status == 401)
            web_header(r, "WWW-Authenticate", "Bearer realm=\"dagq\"");
        db_exec(r->db, "ROLLBACK", err, sizeof err);
        if ((rt->flags & ROUTE_WRITE) && r->token_id)
            srv_audit(r);
        return;
    }
    int rc = rt->fn(r);
    if (rc == 0 && r->status < 400) {
        if (rt->flags & ROUTE_WRITE) {
            db_exec(r->db, "RESET ROLE", err, sizeof err);
            srv_audit(r);
        }
        if (db_exec(r->db, "COMMIT", err, sizeof err) != DB_OK) {
            char *msg = web_clean_error(err);
            web_error(r, web_status_of_sqlstate(db_sqlstate(r->db)), "%s", msg);
            mem_free(msg);
            db_exec(r->db, "ROLLBACK", err, sizeof err);
            if (rt->flags & ROUTE_WRITE)
                srv_audit(r);
        }
        return;
    }
    db_exec(r->db, "ROLLBACK", err, sizeof err);
    if (rt->flags & ROUTE_WRITE)
        srv_audit(r);
}

static void srv_api(server *s, web_req *r, conn_state *cs)
{
    char allow[128], err[1024];
    const route *rt = routes_match(r, r->method, r->path, allow, sizeof allow);
    if (!rt) {
        if (allow[0]) {
            web_header(r, "Allow", allow);
            web_error(r, 405, "%s is not allowed on %s (allowed: %s)", r->method, r->path, allow);
        } else {
            web_error(r, 404, "no such API path: %s (see /api/v1/openapi.json)", r->path);
        }
        return;
    }
    if (cs->too_big) {
        web_error(r, 413, "the request body is larger than %zu bytes", s->c.max_body);
        return;
    }
    const char *ct = web_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (r->body_len && (!ct || strncasecmp(ct, "application/json", 16) != 0)) {
        web_error(r, 415, "a request body must be JSON, sent as Content-Type: application/json");
        return;
    }
    if (rt->flags & ROUTE_NODB) {
        rt->fn(r);
        return;
    }
    if (pool_take(s->c.pool, 10000, &r->db, err, sizeof err) != DB_OK) {
        web_error(r, 503, "the metastore is unavailable: %s", err);
        return;
    }
    if (rt->flags & ROUTE_PUBLIC)
        rt->fn(r);
    else
        srv_transaction(s, r, rt);
    pool_give(s->c.pool, r->db);
    r->db = NULL;
}

static void srv_log(const web_req *r, double ms)
{
    char q[512];
    if (r->status >= 500)
        log_warn("request failed", "method=%s path=\"%s\" status=%u ms=%.1f token=%s detail=\"%s\"",
                 r->method, log_quote(r->path, q, sizeof q), r->status, ms,
                 r->token_name[0] ? r->token_name : "-", r->error_detail ? r->error_detail : "");
    else if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))
        log_info("request", "method=%s path=\"%s\" status=%u ms=%.1f token=%s client=%s", r->method,
                 log_quote(r->path, q, sizeof q), r->status, ms,
                 r->token_name[0] ? r->token_name : "-", r->client);
    else
        log_debug("request", "method=%s path=\"%s\" status=%u ms=%.1f token=%s", r->method,
                  log_quote(r->path, q, sizeof q), r->status, ms,
                  r->token_name[0] ? r->token_name : "-");
}

static srv_result srv_respond(server *s, struct MHD_Connection *conn, const char *url,
                              const char *method, conn_state *cs)
{
    char client[INET6_ADDRSTRLEN + 1];
    srv_client(conn, client, sizeof client);
    double t0 = clock_now_s();
    web_req r = {.conn = conn, .method = method, .client = client};
    r.body = cs->body ? cs->body : "";
    r.body_len = cs->len;
    size_t pl = strlen(s->prefix);
    if (pl && !strncmp(url, s->prefix, pl) && (url[pl] == '/' || url[pl] == '\0'))
        url += pl;
    r.path = *url ? url : "/";
    int api =
        !strncmp(r.path, "/api/", 5) || !strcmp(r.path, "/api") || !strcmp(r.path, "/healthz");
    if (api)
        srv_api(s, &r, cs);
    else
        srv_static(&r, r.path);
    srv_log(&r, (clock_now_s() - t0) * 1000);
    srv_result ret = srv_send(&r, api ? "no-store" : "no-cache");
    web_req_clear(&r);
    return ret;
}

static srv_result srv_access(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    (void)version;
    server *s = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        cs = mem_calloc(1, sizeof *cs);
        *con_cls = cs;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->c.max_body)
            cs->too_big = 1; /* answered at once, before the body is read */
        else
            return MHD_YES;
    }
    if (cs->responded) {
        *upload_size = 0; /* what follows a body found too large is dropped */
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cs->too_big && cs->len + *upload_size > s->c.max_body) {
            cs->too_big = 1;
        } else if (!cs->too_big) {
            cs->body = mem_realloc(cs->body, cs->len + *upload_size + 1);
            memcpy(cs->body + cs->len, upload, *upload_size);
            cs->len += *upload_size;
            cs->body[cs->len] = '\0';
        }
        *upload_size = 0;
        if (!cs->too_big)
            return MHD_YES;
    }
    cs->responded = 1;
    return srv_respond(s, conn, url, method, cs);
}

static void srv_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    conn_state *cs = *con_cls;
    if (cs) {
        mem_free(cs->body);
        mem_free(cs);
    }
    *con_cls = NULL;
}

static void srv_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512], q[600];
    vsnprintf(buf, sizeof buf, fmt, ap);
    log_debug("libmicrohttpd", "detail=\"%s\"", log_quote(buf, q, sizeof q));
}

/* The socket address of c->bind (numeric IPv4 or IPv6) and port. */
static int srv_addr(const server_conf *c, struct sockaddr_storage *ss, char *errbuf, size_t errlen)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, c->bind, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)c->port);
        return 0;
    }
    if (inet_pton(AF_INET6, c->bind, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)c->port);
        return 1;
    }
    errbuf_printf(errbuf, errlen, "--http-bind must be a numeric IPv4 or IPv6 address, got \"%s\"",
                  c->bind);
    return -1;
}

/* The path of base_url ("https://h/dagq/" -> "/dagq"), or "". */
static char *srv_prefix(const char *base_url)
{
    const char *p = base_url ? strstr(base_url, "://") : NULL;
    p = p ? strchr(p + 3, '/') : NULL;
    char *out = mem_strdup(p ? p : "");
    size_t n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = '\0';
    return out;
}

int server_start(const server_conf *c, server **out, char *errbuf, size_t errlen)
{
    server *s = mem_calloc(1, sizeof *s);
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    int fam = 0;
    *out = NULL;
    s->c = *c;
    s->bind = mem_strdup(c->bind);
    s->base_url = mem_strdup(c->base_url);
    s->prefix = srv_prefix(c->base_url);
    s->c.bind = s->bind;
    s->c.base_url = s->base_url;
    if (c->bind && *c->bind && (fam = srv_addr(c, &ss, errbuf, errlen)) < 0)
        goto fail;
    if (fam == 1)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, c->threads, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, c->timeout_s, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, c->max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, c->per_ip_limit, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)srv_completed, NULL},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)srv_mhd_log, NULL},
        {c->bind && *c->bind ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_END, 0, &ss},
        {MHD_OPTION_END, 0, NULL},
    };
    s->d = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, srv_access, s, MHD_OPTION_ARRAY,
                            opts, MHD_OPTION_END);
    if (!s->d) {
        errbuf_printf(errbuf, errlen, "cannot serve HTTP on %s port %d (in use, or not permitted)",
                      c->bind && *c->bind ? c->bind : "all addresses", c->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : c->port;
    *out = s;
    return 0;
fail:
    server_stop(s);
    return -1;
}

int server_port(const server *s)
{
    return s->port;
}

void server_stop(server *s)
{
    if (!s)
        return;
    if (s->d)
        MHD_stop_daemon(s->d);
    mem_free(s->bind);
    mem_free(s->base_url);
    mem_free(s->prefix);
    mem_free(s);
}
