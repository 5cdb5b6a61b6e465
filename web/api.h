/* api — the handlers of dagq-web's REST API (/api/v1/, web/openapi.json),
 * one per route of web/routes.c, each a call of one SQL function of
 * sql/013b_web_api.sql run under the request's token role:
 *   api_dags.c   DAGs, their runs, grid, triggers, backfills
 *   api_runs.c   a run, its task instances, logs, clear, mark, stop
 *   api_misc.c   workers, queues, pools, audit, health, whoami, the document */
#ifndef DAGQ_API_H
#define DAGQ_API_H

#include "web.h"

int api_dags_list(web_req *r);
int api_dag_get(web_req *r);
int api_dag_patch(web_req *r);
int api_runs_list(web_req *r);
int api_runs_post(web_req *r);
int api_grid(web_req *r);
int api_backfill(web_req *r);
int api_backfill_plan(web_req *r);

int api_run_get(web_req *r);
int api_run_tasks(web_req *r);
int api_task_get(web_req *r);
int api_task_patch(web_req *r);
int api_task_logs(web_req *r);
int api_run_clear(web_req *r);
int api_run_stop(web_req *r);

int api_workers(web_req *r);
int api_queues(web_req *r);
int api_pools(web_req *r);
int api_audit(web_req *r);
int api_health(web_req *r);
int api_healthz(web_req *r);
int api_whoami(web_req *r);
int api_openapi(web_req *r);

#endif
