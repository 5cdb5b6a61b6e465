"""The measurements of bench/web_bench.sh (see there)."""
import os
import statistics
import time

from browser import Browser
from client import URL, call

TOKEN, RUN, N = os.environ["TOKEN_VIEWER"], os.environ["RUN_ID"], int(os.environ["WEB_REQS"])
RUNS = os.environ["WEB_RUNS"]


def timed(path, n):
    lat, size = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        r = call("GET", path, TOKEN)
        lat.append(time.perf_counter() - t0)
        assert r.status == 200, (path, r.status, r.body[:200])
        size = len(r.body)
    lat.sort()
    return lat[len(lat) // 2] * 1000, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, size


def render_ms(b, tries=5):
    out = []
    for _ in range(tries):
        b.d.get("about:blank")
        b.d.get(URL + "#/dags/big")
        b.wait("the grid", lambda: b.d.execute_script("return window.dqGridRendered"), 60)
        out.append(b.d.execute_script("return window.dqGridRendered"))
    return statistics.median(out)


grid = timed("/api/v1/dags/big/grid?runs=%s" % RUNS, 20)
runs = timed("/api/v1/dags/big/runs", N)
tasks = timed("/api/v1/runs/%s/tasks" % RUN, N)
b = Browser()
try:
    b.login(URL, TOKEN)
    rendered = render_ms(b)
    rows = len(b.css(".grow"))
finally:
    b.close()
print()
print("dagq-web, a DAG of %s tasks, %s runs in the grid, %s finished task instances of history:" %
      (os.environ["TASKS"], RUNS, os.environ["HIST"]))
print()
print("| measure | p50 | p99 | size |")
print("|---|---:|---:|---:|")
print("| GET /dags/big/grid?runs=%s | %.0f ms | %.0f ms | %d KB |" % (RUNS, grid[0], grid[1], grid[2] // 1024))
print("| GET /dags/big/runs (25 of %s) | %.1f ms | %.1f ms | %d KB |" % (
    int(os.environ["HIST"]) // int(os.environ["TASKS"]), runs[0], runs[1], runs[2] // 1024))
print("| GET /runs/N/tasks (%s task instances with tries) | %.1f ms | %.1f ms | %d KB |" % (
    os.environ["TASKS"], tasks[0], tasks[1], tasks[2] // 1024))
print("| grid rendered in headless Chromium (page load to first render, median of 5) | %.0f ms | | %d rows in the DOM |" % (rendered, rows))
