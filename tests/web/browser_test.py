"""dagq-web's UI in a real headless Chromium: log in with a token, trigger
with conf, see the run appear in the grid, open a log, clear the failed task
and watch it rerun and the run turn green, the graph of the diamond DAG, the
Gantt, workers; a viewer token sees no action buttons. Screenshots go to
$SHOTS (the case's folder). Exits 1 when a check failed."""
import json
import os
import sys
import time

from browser import Browser
from client import FAILS, URL, check, eq, sql

O, V = os.environ["TOKEN_OPERATOR"], os.environ["TOKEN_VIEWER"]
SHOTS = os.environ.get("SHOTS", ".")


def cell(b, run, task):
    els = b.css(".cell[data-run='%d'][data-task='%s']" % (run, task))
    return els[0].get_attribute("data-state") if els else None


def operator_flow(b):
    b.login(URL, O)
    check(bool(b.css("#dags tr[data-dag='diamond']")), "the DAG list shows the diamond")
    check(bool(b.css(".pause-toggle[data-dag='diamond']")), "an operator gets the pause toggle")
    b.shot(os.path.join(SHOTS, "dags.png"))
    b.d.get(URL + "#/dags/diamond")
    b.one("#grid[data-rendered='1']")
    b.one("#btn-trigger").click()
    conf = b.one("#trigger-conf")
    conf.clear()
    conf.send_keys('{"who": "browser"}')
    b.one("#trigger-go").click()
    run = int(b.wait("the run the trigger made", lambda: sql(
        "SELECT run_id FROM dagq.dag_run WHERE dag_id = 'diamond' AND conf = '{\"who\": \"browser\"}'")))
    check(run > 0, "trigger with conf made run %d with that conf" % run)
    b.wait("the run in the grid", lambda: b.css(".runcol[data-run='%d']" % run))
    check(True, "the run appears in the grid")
    b.wait("c failed in the grid", lambda: cell(b, run, "c") == "failed", 60)
    b.wait("d upstream_failed in the grid", lambda: cell(b, run, "d") == "upstream_failed", 30)
    b.wait("the run failed in the grid", lambda: b.css(".runcol.st-failed[data-run='%d']" % run), 30)
    check(True, "the grid shows c failed, d upstream_failed, the run failed")
    b.css(".cell[data-run='%d'][data-task='a']" % run)[0].click()
    b.wait("a's log", lambda: "a" in b.one("#log-text").text)
    eq("success", b.one("#ti-state").text, "the task instance panel shows a's state")
    b.shot(os.path.join(SHOTS, "log.png"))
    b.css(".cell[data-run='%d'][data-task='c']" % run)[0].click()
    b.wait("c's log", lambda: "c fails" in b.one("#log-text").text)
    check(True, "the log viewer shows c's failed try")
    b.one("#btn-clear").click()
    b.one("#clear-downstream").click()
    b.one("#clear-only-failed").click()
    b.one("#clear-dry").click()
    listed = b.wait("the dry run's list", lambda: [e.get_attribute("data-task") for e in b.css("#clear-list li")])
    eq(["c", "d"], listed, "the dry run lists what would be cleared")
    eq("failed", sql("SELECT state FROM dagq.task_instance WHERE run_id = %d AND task_id = 'c'" % run), "the dry run changed nothing")
    b.one("#clear-go").click()
    b.wait("c to rerun and succeed", lambda: cell(b, run, "c") == "success", 60)
    b.wait("d to succeed", lambda: cell(b, run, "d") == "success", 60)
    b.wait("the run to turn green", lambda: b.css(".runcol.st-success[data-run='%d']" % run), 60)
    check(True, "the cleared task reran and the run turned green")
    b.wait("the try switcher to offer try 2", lambda: len(b.css("#log-try option")) == 2, 20)
    b.wait("try 2's log", lambda: "c again" in b.one("#log-text").text, 20)
    check(True, "the log viewer follows the new try")
    sel = b.one("#log-try")
    sel.find_element("css selector", "option[value='1']").click()
    b.wait("try 1's log again", lambda: "c fails" in b.one("#log-text").text)
    check(True, "tries are switchable")
    # more runs, for a grid worth a picture (c fails the first try of each)
    more = [int(sql("SELECT dagq.trigger_dag('diamond')")) for _ in range(3)]
    b.wait("the new runs in the grid", lambda: all(b.css(".runcol.st-failed[data-run='%d']" % r) for r in more), 90)
    b.d.execute_script("document.querySelector('#ti-panel').hidden = true")
    b.shot(os.path.join(SHOTS, "grid.png"))
    return run


def graph_and_more(b, run):
    b.d.get(URL + "#/dags/diamond/graph?run=%d" % run)
    b.wait("four nodes", lambda: len(b.css("#graph .node")) == 4)
    eq(["a", "b", "c", "d"], sorted(n.get_attribute("data-task") for n in b.css("#graph .node")), "the graph's nodes")
    eq({("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")},
       {(e.get_attribute("data-from"), e.get_attribute("data-to")) for e in b.css("#graph path.edge")}, "the graph's edges")
    b.wait("the nodes coloured by the run", lambda: all(n.get_attribute("data-state") == "success" for n in b.css("#graph .node")))
    check(True, "the graph's nodes are coloured by the run's states")
    xs = {n.get_attribute("data-task"): n.rect["x"] for n in b.css("#graph .node")}
    check(xs["a"] < xs["b"] < xs["d"] and xs["a"] < xs["c"] < xs["d"], "laid out in layers, upstream first")
    b.shot(os.path.join(SHOTS, "graph.png"))
    b.d.get(URL + "#/runs/%d/gantt" % run)
    b.wait("the Gantt's bars", lambda: len(b.css("#gantt .b")) == 4)
    check(True, "the Gantt has a bar per task")
    b.shot(os.path.join(SHOTS, "gantt.png"))
    b.d.get(URL + "#/dags/diamond/history")
    b.wait("the duration chart", lambda: b.css("#history-chart rect"))
    b.d.get(URL + "#/workers")
    b.wait("w1 on the workers page", lambda: "w1" in b.one("#workers").text)
    check(True, "the workers page lists w1")
    b.d.get(URL + "#/audit")
    b.wait("the audit", lambda: "/clear" in b.one("#entries").text)
    check(True, "the audit page shows the clear")


def viewer_flow(b, run):
    b.login(URL, V)
    check(not b.css(".pause-toggle"), "a viewer gets no pause toggle")
    b.d.get(URL + "#/dags/diamond")
    b.one("#grid[data-rendered='1']")
    b.wait("the grid", lambda: b.css(".cell[data-run='%d'][data-task='c']" % run))
    check(not b.css("#btn-trigger") and not b.css("#btn-pause"), "a viewer gets no trigger or pause button")
    b.css(".cell[data-run='%d'][data-task='c']" % run)[0].click()
    b.one("#ti-state")
    check(not b.css("#btn-clear") and not b.css("#btn-mark-success"), "nor clear or mark buttons")
    b.css(".runcol[data-run='%d']" % run)[0].click()
    b.one("#run-state")
    check(not b.css("#btn-stop"), "nor a stop button")
    b.shot(os.path.join(SHOTS, "viewer.png"))


def main():
    b = Browser()
    try:
        run = operator_flow(b)
        graph_and_more(b, run)
        viewer_flow(b, run)
    except Exception as e:
        check(False, "browser flow: %s" % e)
        b.shot(os.path.join(SHOTS, "failure.png"))
    finally:
        logs = b.d.get_log("browser")
        errs = [l for l in logs if l["level"] == "SEVERE" and "favicon" not in l["message"] and " 40" not in l["message"]]
        check(not errs, "no script errors in the console: %s" % json.dumps(errs)[:500])
        b.close()
    print("%d failed" % len(FAILS))
    sys.exit(1 if FAILS else 0)


main()
