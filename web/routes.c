#include "routes.h"

#include "api.h"
#include "mem.h"

#include <string.h>

static const route routes[] = {
    {"GET", "/healthz", api_healthz, ROUTE_PUBLIC},
    {"GET", "/api/v1/health", api_health, ROUTE_PUBLIC},
    {"GET", "/api/v1/openapi.json", api_openapi, ROUTE_PUBLIC | ROUTE_NODB},
    {"GET", "/api/v1/whoami", api_whoami, 0},
    {"GET", "/api/v1/dags", api_dags_list, 0},
    {"GET", "/api/v1/dags/{dag}", api_dag_get, 0},
    {"PATCH", "/api/v1/dags/{dag}", api_dag_patch, ROUTE_WRITE},
    {"GET", "/api/v1/dags/{dag}/runs", api_runs_list, 0},
    {"POST", "/api/v1/dags/{dag}/runs", api_runs_post, ROUTE_WRITE},
    {"GET", "/api/v1/dags/{dag}/grid", api_grid, 0},
    {"POST", "/api/v1/dags/{dag}/backfills", api_backfill, ROUTE_WRITE},
    {"POST", "/api/v1/dags/{dag}/backfills/dry_run", api_backfill_plan, 0},
    {"GET", "/api/v1/runs/{run}", api_run_get, 0},
    {"GET", "/api/v1/runs/{run}/tasks", api_run_tasks, 0},
    {"GET", "/api/v1/runs/{run}/tasks/{task}", api_task_get, 0},
    {"PATCH", "/api/v1/runs/{run}/tasks/{task}", api_task_patch, ROUTE_WRITE},
    {"GET", "/api/v1/runs/{run}/tasks/{task}/logs", api_task_logs, 0},
    {"POST", "/api/v1/runs/{run}/clear", api_run_clear, ROUTE_WRITE},
    {"POST", "/api/v1/runs/{run}/stop", api_run_stop, ROUTE_WRITE},
    {"GET", "/api/v1/workers", api_workers, 0},
    {"GET", "/api/v1/queues", api_queues, 0},
    {"GET", "/api/v1/pools", api_pools, 0},
    {"GET", "/api/v1/audit", api_audit, 0},
    {NULL, NULL, NULL, 0},
};

/* Does path match pattern? Fills params (borrowed pointers into path's
 * copy) on success. */
static int routes_try(const char *pattern, const char *path, char **params, int *n)
{
    *n = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            const char *se = strchr(s, '/');
            size_t sl = se ? (size_t)(se - s) : strlen(s);
            if (sl == 0 || *n >= WEB_MAX_PARAMS)
                goto fail;
            params[(*n)++] = mem_strndup(s, sl);
            p = pe + 1;
            s += sl;
            continue;
        }
        if (*p != *s)
            goto fail;
        p++;
        s++;
    }
    if (*p == '\0' && *s == '\0')
        return 1;
fail:
    for (int i = 0; i < *n; i++)
        mem_free(params[i]);
    *n = 0;
    return 0;
}

const route *routes_match(web_req *r, const char *method, const char *path, char *allow,
                          size_t allow_len)
{
    size_t used = 0;
    allow[0] = '\0';
    for (const route *rt = routes; rt->method; rt++) {
        char *params[WEB_MAX_PARAMS];
        int n;
        if (!routes_try(rt->pattern, path, params, &n))
            continue;
        int same =
            !strcmp(rt->method, method) || (!strcmp(method, "HEAD") && !strcmp(rt->method, "GET"));
        if (same) {
            for (int i = 0; i < n; i++)
                r->params[i] = params[i];
            r->nparams = n;
            return rt;
        }
        for (int i = 0; i < n; i++)
            mem_free(params[i]);
        if (used < allow_len)
            used += (size_t)snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "",
                                     rt->method);
    }
    return NULL;
}

void routes_print(FILE *out)
{
    for (const route *rt = routes; rt->method; rt++)
        fprintf(out, "%s %s\n", rt->method, rt->pattern);
}
