"""dagq-web's REST API, endpoint by endpoint: status codes, shapes,
pagination, 401/403 per role, bad JSON and unknown fields, ids that do not
exist, the body size limit, the audit, the OpenAPI document against the
router. Run by tests/integration/web.sh (case web_api) against a running
stack; exits 1 when a check failed."""
import json
import os
import subprocess
import sys
import time

from client import FAILS, call, check, eq, sql, sql_err

V, O, A = os.environ["TOKEN_VIEWER"], os.environ["TOKEN_OPERATOR"], os.environ["TOKEN_AUTHOR"]
TEAM = os.environ["TOKEN_TEAM"]


def wait_run(run, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = sql("SELECT state FROM dagq.dag_run WHERE run_id = %d" % run)
        if st in ("success", "failed"):
            return st
        time.sleep(0.2)
    return "timeout"


def err_shape(r, status, what):
    ok = eq(status, r.status, what + ": status")
    try:
        j = r.json()
        check(isinstance(j.get("error"), str) and isinstance(j.get("detail"), str), what + ": {error, detail}")
    except Exception:
        check(False, what + ": a JSON error body")
    return ok


def test_health_and_auth():
    r = call("GET", "/api/v1/health")
    eq(200, r.status, "health is public")
    eq("ok", r.json()["status"], "health says ok")
    for tok, why in ((None, "no token"), ("nonsense-token-123", "an unknown token"),
                     (os.environ["TOKEN_EXPIRED"], "an expired token"), (os.environ["TOKEN_REVOKED"], "a revoked token")):
        r = call("GET", "/api/v1/dags", tok)
        err_shape(r, 401, "401 for " + why)
        check(r.header("WWW-Authenticate") is not None, "401 for %s says WWW-Authenticate" % why)
    r = call("GET", "/api/v1/dags", headers={"Authorization": "Basic abc"})
    err_shape(r, 401, "401 for a non-Bearer Authorization")
    check("expired" in call("GET", "/api/v1/dags", os.environ["TOKEN_EXPIRED"]).json()["detail"], "the detail says expired")
    me = call("GET", "/api/v1/whoami", O).json()
    eq(("dagq_operator", True), (me["role"], me["operator"]), "whoami of an operator token")
    eq(False, call("GET", "/api/v1/whoami", V).json()["operator"], "whoami of a viewer token")


def test_dags():
    r = call("GET", "/api/v1/dags", V)
    eq(200, r.status, "GET dags")
    j = r.json()
    names = [d["dag_id"] for d in j["dags"]]
    eq(sorted(names), names, "dags are sorted by name")
    check({"dag_id", "owner", "schedule", "is_paused", "next_run", "last_runs", "tasks"} <= set(j["dags"][0]), "a DAG's fields")
    eq(j["total"], len(names), "total counts every DAG")
    p = call("GET", "/api/v1/dags?limit=1&offset=1", V).json()
    eq((1, names[1:2]), (p["limit"], [d["dag_id"] for d in p["dags"]]), "limit and offset page the list")
    eq(["paused_dag"], [d["dag_id"] for d in call("GET", "/api/v1/dags?paused=true", V).json()["dags"]], "?paused=true")
    eq(["diamond"], [d["dag_id"] for d in call("GET", "/api/v1/dags?q=DIAM", V).json()["dags"]], "?q filters by name")
    for q in ("limit=0", "limit=abc", "offset=-1", "paused=maybe", "limit=100000"):
        err_shape(call("GET", "/api/v1/dags?" + q, V), 400, "400 for ?" + q)
    d = call("GET", "/api/v1/dags/diamond", V)
    eq(200, d.status, "GET a DAG")
    d = d.json()
    eq(["a", "b", "c", "d"], [t["task_id"] for t in d["tasks"]], "its tasks")
    eq([["a", "b"], ["a", "c"], ["b", "d"], ["c", "d"]], d["edges"], "its edges")
    check("schedule" in d and "next_run" in d, "its schedule and next run")
    err_shape(call("GET", "/api/v1/dags/nope", V), 404, "404 for an unknown DAG")


def test_pause():
    path = "/api/v1/dags/linear"
    err_shape(call("PATCH", path, V, {"is_paused": True}), 403, "a viewer may not pause")
    r = call("PATCH", path, O, {"is_paused": True})
    eq((200, True), (r.status, r.json()["is_paused"]), "an operator pauses")
    eq("t", sql("SELECT is_paused FROM dagq.dag WHERE dag_id = 'linear'"), "the DAG is paused")
    eq(200, call("PATCH", path, O, {"is_paused": False}).status, "and unpauses")
    eq("f", sql("SELECT is_paused FROM dagq.dag WHERE dag_id = 'linear'"), "the DAG is unpaused")
    err_shape(call("PATCH", path, O, raw=b"{not json"), 400, "400 for bad JSON")
    err_shape(call("PATCH", path, O, {"is_paused": True, "colour": "red"}), 400, "400 for an unknown field")
    check("colour" in call("PATCH", path, O, {"colour": 1}).json()["detail"], "the detail names the unknown field")
    err_shape(call("PATCH", path, O, {"is_paused": "yes"}), 400, "400 for a field of the wrong type")
    err_shape(call("PATCH", path, O, [1, 2]), 400, "400 for a body that is not an object")
    err_shape(call("PATCH", path, O, {}), 400, "400 without is_paused")
    err_shape(call("PATCH", path, O, raw=b'{"is_paused": true}', ctype="text/plain"), 415, "415 for a body that is not JSON")
    err_shape(call("PATCH", "/api/v1/dags/nope", O, {"is_paused": True}), 404, "404 pausing an unknown DAG")
    err_shape(call("PATCH", "/api/v1/dags/team_b_dag", O, {"is_paused": True}), 403,
              "an operator outside the owning team may not pause its DAG")
    eq(200, call("PATCH", "/api/v1/dags/team_b_dag", TEAM, {"is_paused": False}).status, "the owning team's operator may")


def test_runs():
    path = "/api/v1/dags/linear/runs"
    err_shape(call("POST", path, V, {"conf": {}}), 403, "a viewer may not trigger")
    r = call("POST", path, O, {"conf": {"k": "v"}, "logical_date": "2024-06-01T00:00:00Z"})
    eq(201, r.status, "an operator triggers: 201")
    run = r.json()["run_id"]
    eq('{"k": "v"}|2024-06-01 00:00:00+00', sql("SELECT conf, logical_date FROM dagq.dag_run WHERE run_id = %d" % run),
       "the run has the conf and logical date")
    err_shape(call("POST", path, O, {"conf": [1]}), 400, "400 for a conf that is not an object")
    err_shape(call("POST", path, O, {"logical_date": "yesterday-ish"}), 400, "400 for a bad logical_date")
    err_shape(call("POST", path, O, {"confs": {}}), 400, "400 for an unknown field")
    err_shape(call("POST", "/api/v1/dags/nope/runs", O, {}), 404, "404 triggering an unknown DAG")
    r2 = call("POST", path, O).json()["run_id"]
    eq("success", wait_run(run), "the run succeeds")
    wait_run(r2)
    j = call("GET", path, V).json()
    ids = [x["run_id"] for x in j["runs"]]
    eq(sorted(ids, reverse=True), ids, "runs newest first")
    check({"run_id", "state", "logical_date", "started_at", "ended_at", "duration_s", "conf"} <= set(j["runs"][0]), "a run's fields")
    eq([ids[1]], [x["run_id"] for x in call("GET", path + "?limit=1&offset=1", V).json()["runs"]], "runs page")
    eq(j["total"], len(ids), "runs total")
    check(all(x["state"] == "success" for x in call("GET", path + "?state=success", V).json()["runs"]), "?state filters")
    err_shape(call("GET", path + "?state=weird", V), 400, "400 for an unknown state")
    err_shape(call("GET", "/api/v1/dags/nope/runs", V), 404, "404 for the runs of an unknown DAG")
    g = call("GET", "/api/v1/dags/linear/grid?runs=2", V).json()
    eq(2, len(g["runs"]), "grid ?runs")
    eq([len(g["tasks"])] * 2, [len(c) for c in g["cells"]], "one letter per task per run")
    eq("ss", g["cells"][-1], "the grid's cells of a successful run")
    eq([[0, 1]], g["edges"], "the grid's edges, as indexes")
    err_shape(call("GET", "/api/v1/dags/linear/grid?runs=500", V), 400, "400 for ?runs beyond 100")
    err_shape(call("GET", "/api/v1/dags/nope/grid", V), 404, "404 for the grid of an unknown DAG")
    return run


def test_run_and_tasks(run):
    r = call("GET", "/api/v1/runs/%d" % run, V)
    eq((200, "success"), (r.status, r.json()["state"]), "GET a run")
    eq({"success": 2}, r.json()["task_states"], "its task states")
    err_shape(call("GET", "/api/v1/runs/999999", V), 404, "404 for an unknown run")
    err_shape(call("GET", "/api/v1/runs/abc", V), 400, "400 for a run id that is not a number")
    t = call("GET", "/api/v1/runs/%d/tasks" % run, V).json()["tasks"]
    eq(["a", "b"], [x["task_id"] for x in t], "the run's task instances")
    eq(1, len(t[0]["tries"]), "with every try")
    check({"state", "try_number", "worker_id", "queued_at", "started_at", "ended_at", "exit_code", "note"} <= set(t[0]), "a task instance's fields")
    err_shape(call("GET", "/api/v1/runs/999999/tasks", V), 404, "404 for the tasks of an unknown run")
    one = call("GET", "/api/v1/runs/%d/tasks/a" % run, V).json()
    eq(("a", True), (one["task_id"], one["tries"][0]["log"]), "GET a task instance, its try has a log")
    err_shape(call("GET", "/api/v1/runs/%d/tasks/zz" % run, V), 404, "404 for an unknown task")


def test_logs(run):
    base = "/api/v1/runs/%d/tasks/a/logs" % run
    r = call("GET", base, V)
    eq((200, b"line-a1\nline-a2\n"), (r.status, r.body), "a log, whole")
    check(r.header("Content-Type").startswith("text/plain"), "as text/plain")
    eq(("1", "16", "success"), (r.header("X-Dagq-Log-Try"), r.header("X-Dagq-Log-Size"), r.header("X-Dagq-State")), "its headers")
    eq(b"line-a2\n", call("GET", base + "?offset=8", V).body, "?offset")
    r = call("GET", base, V, headers={"Range": "bytes=5-9"})
    eq((206, b"a1\nli", "bytes 5-9/16"), (r.status, r.body, r.header("Content-Range")), "Range bytes=5-9")
    eq(b"a2\n", call("GET", base, V, headers={"Range": "bytes=-3"}).body, "a suffix Range")
    eq(416, call("GET", base, V, headers={"Range": "bytes=99-"}).status, "416 past the end")
    eq(200, call("GET", base + "?try=1", V).status, "?try=1")
    err_shape(call("GET", base + "?try=7", V), 404, "404 for a try without a log")
    err_shape(call("GET", "/api/v1/runs/%d/tasks/zz/logs" % run, V), 404, "404 for the log of an unknown task")


def test_live_log():
    run = call("POST", "/api/v1/dags/slowlog/runs", O, {}).json()["run_id"]
    base = "/api/v1/runs/%d/tasks/s/logs" % run
    seen = None
    deadline = time.time() + 30
    while time.time() < deadline:
        r = call("GET", base, V)
        if r.status == 200 and b"tick 1" in r.body:
            seen = r
            break
        time.sleep(0.2)
    check(seen is not None and seen.header("X-Dagq-State") == "running" and b"tick 2" not in seen.body,
          "a running try's output can be read while it runs")
    if seen is not None:
        off = int(seen.header("X-Dagq-Log-Size"))
        eq("success", wait_run(run), "the slow run ends")
        eq(b"tick 2\n", call("GET", base + "?offset=%d" % off, V).body, "the tail from the offset read before")


def test_clear():
    r = call("POST", "/api/v1/dags/diamond/runs", O, {"conf": {}})
    run = r.json()["run_id"]
    eq("failed", wait_run(run), "the diamond fails (c fails on its first try)")
    path = "/api/v1/runs/%d/clear" % run
    err_shape(call("POST", path, V, {"dry_run": True}), 403, "a viewer may not clear, not even a dry run")
    dry = call("POST", path, O, {"only_failed": True, "dry_run": True})
    eq((200, True, ["c", "d"]), (dry.status, dry.json()["dry_run"], [t["task_id"] for t in dry.json()["task_instances"]]),
       "a dry run of only_failed lists the failed and upstream_failed")
    eq("failed|upstream_failed", sql("SELECT string_agg(state, '|' ORDER BY task_id) FROM dagq.task_instance WHERE run_id = %d AND task_id IN ('c', 'd')" % run),
       "and changes nothing")
    eq(["b", "d"], [t["task_id"] for t in call("POST", path, O, {"task_ids": ["b"], "downstream": True, "dry_run": True}).json()["task_instances"]],
       "a dry run with downstream")
    err_shape(call("POST", path, O, {"task_ids": ["zz"]}), 404, "404 clearing an unknown task")
    err_shape(call("POST", path, O, {"task_ids": "c"}), 400, "400 for task_ids that is not an array")
    err_shape(call("POST", "/api/v1/runs/999999/clear", O, {}), 404, "404 clearing an unknown run")
    r = call("POST", path, O, {"task_ids": ["c"], "downstream": True, "only_failed": True})
    eq((200, 2), (r.status, r.json()["count"]), "clear c and downstream, only failed")
    eq("success", wait_run(run), "the cleared tasks run again and the run succeeds")
    eq("2", sql("SELECT try_number FROM dagq.task_instance WHERE run_id = %d AND task_id = 'c'" % run), "c ran a second try")
    return run


def test_actions(run):
    """mark, stop and backfill: the functions of migration 011, with effects checked in the metastore."""
    r = call("PATCH", "/api/v1/runs/%d/tasks/b" % run, O, {"state": "failed"})
    eq((200, 1), (r.status, r.json()["marked"]), "mark b failed")
    eq("failed", sql("SELECT state FROM dagq.task_instance WHERE run_id = %d AND task_id = 'b'" % run), "b is failed")
    err_shape(call("PATCH", "/api/v1/runs/%d/tasks/b" % run, O, {"state": "running"}), 400, "400 marking a state that is not success or failed")
    err_shape(call("PATCH", "/api/v1/runs/%d/tasks/b" % run, V, {"state": "success"}), 403, "403 marking as a viewer")
    slow = call("POST", "/api/v1/dags/slowlog/runs", O, {}).json()["run_id"]
    for _ in range(100):
        if sql("SELECT state FROM dagq.task_instance WHERE run_id = %d" % slow) == "running":
            break
        time.sleep(0.1)
    r = call("POST", "/api/v1/runs/%d/stop" % slow, O, {})
    eq((200, 1), (r.status, r.json()["stopped"]), "stop the slow run")
    eq("failed", wait_run(slow), "the stopped run ends failed")
    check("stopped by" in sql("SELECT note FROM dagq.task_instance WHERE run_id = %d" % slow), "its note says who stopped it")
    sql("UPDATE dagq.dag SET schedule = '@daily' WHERE dag_id = 'linear'")
    path = "/api/v1/dags/linear/backfills"
    r = call("POST", path + "/dry_run", V, {"from": "2024-01-01", "to": "2024-01-03"})
    eq((200, 3), (r.status, len(r.json()["intervals"])), "a dry run (a viewer may ask) lists three daily intervals")
    eq("0", sql("SELECT count(*) FROM dagq.backfill"), "and makes no backfill")
    err_shape(call("POST", path + "/dry_run", V, {"from": "2024-01-03", "to": "2024-01-01"}), 400, "400 for a dry run from after to")
    r = call("POST", path, O, {"from": "2024-01-01", "to": "2024-01-03", "max_active_runs": 1})
    eq(201, r.status, "a backfill is created")
    bid = r.json()["backfill_id"]
    eq("3", sql("SELECT count(*) FROM dagq.backfill_run WHERE backfill_id = %s" % bid), "with its three runs")
    err_shape(call("POST", path, O, {"from": "2024-01-01"}), 400, "400 for a backfill without to")
    err_shape(call("POST", path, O, {"from": "2024-01-01", "to": "x"}), 400, "400 for a date that is not one")
    err_shape(call("POST", path, V, {"from": "2024-01-01", "to": "2024-01-02"}), 403, "403 backfilling as a viewer")
    err_shape(call("POST", path, O, {"from": "2024-01-01", "to": "2024-01-03", "dry_run": True}), 400, "400 for an unknown field")
    r = call("POST", path, O, {"from": "2024-01-01", "to": "2024-01-03"})
    eq("3", sql("SELECT count(*) FROM dagq.dag_run WHERE dag_id = 'linear' AND logical_date < '2024-01-04'"), "a second backfill of the range adds no run")


def test_ops():
    w = call("GET", "/api/v1/workers", V).json()["workers"]
    check(any(x["worker_id"] == "w1" and x["state"] == "up" for x in w), "workers lists w1, up")
    q = call("GET", "/api/v1/queues", V).json()["queues"]
    check(any(x["worker_group"] == "default" and x["live_workers"] >= 1 for x in q), "queues has the default group")
    p = call("GET", "/api/v1/pools", V).json()["pools"]
    eq([("warehouse", 3)], [(x["pool"], x["slots"]) for x in p], "pools")


def test_audit():
    a = call("GET", "/api/v1/audit?limit=1000", V).json()["entries"]
    check(any(e["token_name"] == "viewer" and e["status"] == 403 and e["method"] == "PATCH" for e in a), "a refused write is audited")
    t = [e for e in a if e["token_name"] == "operator" and e["method"] == "POST" and e["status"] == 201]
    check(t and t[-1]["source"] == "127.0.0.1" and t[-1]["role"] == "dagq_operator" and t[-1]["body"] is not None,
          "a trigger is audited: who, from where, what")
    check(not any(e["method"] == "GET" for e in a), "reads are not audited")
    check(any(e["path"] == "dagq.token_create" for e in a), "token creation is audited")
    err_shape(call("GET", "/api/v1/audit?limit=0", V), 400, "400 for ?limit=0 of the audit")


def test_limits_and_errors():
    big = b'{"conf": {"x": "' + b"y" * 70000 + b'"}}'
    err_shape(call("POST", "/api/v1/dags/linear/runs", O, raw=big), 413, "413 for a body over the limit")
    err_shape(call("GET", "/api/v1/nothing", V), 404, "404 for an unknown API path")
    r = call("DELETE", "/api/v1/dags/linear", O)
    err_shape(r, 405, "405 for a method a path does not have")
    eq("GET, PATCH", r.header("Allow"), "with Allow")
    eq(200, call("GET", "/").status, "the UI's page")
    eq(404, call("GET", "/static/../server.c").status, "no path outside the UI's files")


def test_secrets():
    login = os.environ["WEB_LOGIN_URL"]
    check("permission denied" in sql_err("SELECT token_hash FROM dagq.api_token", login), "the login role cannot read token hashes")
    check("permission denied" in sql_err("SELECT name FROM dagq.api_token", login), "nor any token column")
    check("permission denied" in sql_err("SELECT count(*) FROM dagq.dag", login), "nor the DAGs (it reads only through a token's role)")
    for role in ("dagq_viewer", "dagq_operator", "dagq_author"):
        check("permission denied" in sql_err("SET ROLE %s; SELECT token_hash FROM dagq.api_token" % role, login),
              "as %s neither" % role)
    eq(0, int(sql("SELECT count(*) FROM dagq.api_token WHERE token_hash::text LIKE '%%' || encode(convert_to('dagq_', 'UTF8'), 'hex') || '%%'")),
       "no token is stored as it is")
    check(call("GET", "/api/v1/dags", A).status == 200, "an author token reads")


def test_openapi():
    doc = call("GET", "/api/v1/openapi.json").json()
    eq("3.0.3", doc.get("openapi"), "the OpenAPI document is served, public")
    routes = subprocess.run([os.environ["WEB_BIN"], "--print-routes"], capture_output=True, text=True).stdout.split("\n")
    routes = [x.split(" ") for x in routes if x]
    for method, path in routes:
        check(method.lower() in doc["paths"].get(path, {}), "route %s %s is in the document" % (method, path))
    subst = {"{dag}": "linear", "{run}": os.environ["RUN_ID"], "{task}": "a"}
    for path, ops in doc["paths"].items():
        for method in ops:
            if method not in ("get", "post", "patch", "delete", "put"):
                continue
            check([method.upper(), path] in routes, "documented %s %s is a route" % (method.upper(), path))
            url = path
            for k, v in subst.items():
                url = url.replace(k, v)
            r = call(method.upper(), url, V, {} if method != "get" else None)
            check(r.status != 404 and r.status != 405, "documented %s %s answers (%d)" % (method.upper(), path, r.status))


def main():
    test_health_and_auth()
    test_dags()
    test_pause()
    run = test_runs()
    os.environ["RUN_ID"] = str(run)
    test_run_and_tasks(run)
    test_logs(run)
    test_live_log()
    drun = test_clear()
    test_actions(drun)
    test_ops()
    test_audit()
    test_limits_and_errors()
    test_secrets()
    test_openapi()
    print("%d failed" % len(FAILS))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
