#include "api.h"

#include "assets.h"
#include "mem.h"

#include <limits.h>
#include <string.h>

int api_workers(web_req *r)
{
    return web_query_json(r, "api_workers", "SELECT dagq.web_workers()", 0, NULL, 200, NULL);
}

int api_queues(web_req *r)
{
    return web_query_json(r, "api_queues", "SELECT dagq.web_queues()", 0, NULL, 200, NULL);
}

int api_pools(web_req *r)
{
    return web_query_json(r, "api_pools", "SELECT dagq.web_pools()", 0, NULL, 200, NULL);
}

int api_audit(web_req *r)
{
    char lim[32], off[32];
    if (web_arg_int(r, "limit", 100, 1, 1000, lim, sizeof lim) ||
        web_arg_int(r, "offset", 0, 0, INT_MAX, off, sizeof off))
        return -1;
    const char *p[2] = {lim, off};
    return web_query_json(r, "api_audit", "SELECT dagq.web_audit($1::int, $2::int)", 2, p, 200,
                          NULL);
}

int api_whoami(web_req *r)
{
    const char *p[1] = {r->token_name};
    return web_query_json(r, "api_whoami", "SELECT dagq.web_whoami($1)", 1, p, 200, NULL);
}

/* Public: is the metastore reachable and migrated? Runs as the login role. */
int api_health(web_req *r)
{
    PGresult *res;
    char err[1024];
    int rc = db_query(r->db, "api_health",
                      "SELECT jsonb_build_object('status', 'ok', 'database', 'ok', 'migration',"
                      " (SELECT max(name) FROM dagq.schema_migrations))",
                      0, NULL, &res, err, sizeof err);
    if (rc != DB_OK) {
        char *msg = web_clean_error(err);
        web_error(r, 503, "the metastore does not answer: %s", msg);
        mem_free(msg);
        return -1;
    }
    web_json(r, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* The same for the image's health check (docker/healthcheck.sh asks every
 * program for /healthz): "ok", or 503 with the reason. */
int api_healthz(web_req *r)
{
    char err[1024];
    if (db_query(r->db, "api_healthz", "SELECT 1 FROM dagq.schema_migrations LIMIT 1", 0, NULL,
                 NULL, err, sizeof err) != DB_OK) {
        char *msg = web_clean_error(err);
        char *body = mem_printf("unhealthy: the metastore does not answer: %s\n", msg);
        web_body(r, 503, "text/plain; charset=utf-8", body, strlen(body));
        mem_free(body);
        mem_free(msg);
        return -1;
    }
    return web_body(r, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

int api_openapi(web_req *r)
{
    const asset *a = assets_find("openapi.json");
    if (!a)
        return web_error(r, 500, "the OpenAPI document is not embedded");
    return web_body(r, 200, a->type, (const char *)a->data, a->len);
}
