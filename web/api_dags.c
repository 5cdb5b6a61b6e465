#include "api.h"

#include "mem.h"

#include <limits.h>
#include <string.h>

/* ?paused=true|false, or NULL; answers 400 for anything else. */
static int api_bool_arg(web_req *r, const char *name, const char **out)
{
    const char *v = web_arg(r, name);
    *out = NULL;
    if (!v)
        return 0;
    if (strcmp(v, "true") && strcmp(v, "false"))
        return web_error(r, 400, "query parameter %s must be true or false, got \"%s\"", name, v);
    *out = v;
    return 0;
}

int api_dags_list(web_req *r)
{
    char lim[32], off[32];
    const char *paused;
    if (web_arg_int(r, "limit", 100, 1, 1000, lim, sizeof lim) ||
        web_arg_int(r, "offset", 0, 0, INT_MAX, off, sizeof off) ||
        api_bool_arg(r, "paused", &paused))
        return -1;
    const char *p[4] = {lim, off, paused, web_arg(r, "q")};
    return web_query_json(r, "api_dags",
                          "SELECT dagq.web_dags($1::int, $2::int, $3::boolean, $4::text)", 4, p,
                          200, NULL);
}

/* web_query_json with "unknown DAG" as the 404's detail */
static int api_dag_json(web_req *r, const char *name, const char *sql, int n, const char *const *p,
                        unsigned ok)
{
    char *nf = mem_printf("unknown DAG \"%s\"", r->params[0]);
    int rc = web_query_json(r, name, sql, n, p, ok, nf);
    mem_free(nf);
    return rc;
}

int api_dag_get(web_req *r)
{
    const char *p[1] = {r->params[0]};
    return api_dag_json(r, "api_dag", "SELECT dagq.web_dag($1)", 1, p, 200);
}

int api_dag_patch(web_req *r)
{
    const char *p[2] = {r->params[0], r->body};
    return api_dag_json(r, "api_dag_patch", "SELECT dagq.api_pause($1, $2)", 2, p, 200);
}

int api_runs_list(web_req *r)
{
    char lim[32], off[32];
    if (web_arg_int(r, "limit", 25, 1, 1000, lim, sizeof lim) ||
        web_arg_int(r, "offset", 0, 0, INT_MAX, off, sizeof off))
        return -1;
    const char *p[4] = {r->params[0], lim, off, web_arg(r, "state")};
    return api_dag_json(r, "api_runs", "SELECT dagq.web_runs($1, $2::int, $3::int, $4)", 4, p, 200);
}

int api_runs_post(web_req *r)
{
    const char *p[2] = {r->params[0], r->body};
    return api_dag_json(r, "api_trigger", "SELECT dagq.api_trigger($1, $2)", 2, p, 201);
}

int api_grid(web_req *r)
{
    char runs[32];
    if (web_arg_int(r, "runs", 25, 1, 100, runs, sizeof runs))
        return -1;
    const char *p[2] = {r->params[0], runs};
    return api_dag_json(r, "api_grid", "SELECT dagq.web_grid($1, $2::int)", 2, p, 200);
}

int api_backfill(web_req *r)
{
    const char *p[2] = {r->params[0], r->body};
    return api_dag_json(r, "api_backfill", "SELECT dagq.api_backfill($1, $2)", 2, p, 201);
}

int api_backfill_plan(web_req *r)
{
    const char *p[2] = {r->params[0], r->body};
    return api_dag_json(r, "api_backfill_plan", "SELECT dagq.api_backfill_plan($1, $2)", 2, p, 200);
}
