"""N requests at once against dagq-web (default 1,000), every one with a
valid token, from several loopback addresses (127.0.0.2, ...: the per-address
connection limit stays what it is): all must answer 200. Prints p50/p99."""
import asyncio
import os
import resource
import sys
import time

from client import HOST, PORT

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
PER_ADDR = 25
TOKEN = os.environ["TOKEN_VIEWER"]
RUN = os.environ["RUN_ID"]
PATHS = ["/api/v1/dags", "/api/v1/dags/linear/grid", "/api/v1/runs/%s/tasks" % RUN, "/api/v1/dags/linear/runs",
         "/api/v1/runs/%s" % RUN, "/api/v1/workers", "/api/v1/health", "/"]


async def one(i, start):
    src = "127.0.0.%d" % (2 + i // PER_ADDR)
    reader, writer = await asyncio.open_connection(HOST, PORT, local_addr=(src, 0))
    path = PATHS[i % len(PATHS)]
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n"
           % (path, HOST, TOKEN)).encode()
    await start.wait()
    t0 = time.monotonic()
    writer.write(req)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, time.monotonic() - t0, path


async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    start = asyncio.Event()
    tasks = [asyncio.ensure_future(one(i, start)) for i in range(N)]
    await asyncio.sleep(1.0)  # every connection open
    t0 = time.monotonic()
    start.set()
    res = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 120)
    wall = time.monotonic() - t0
    bad = [r for r in res if isinstance(r, Exception) or r[0] != 200]
    lat = sorted(r[1] for r in res if not isinstance(r, Exception))
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    print("%d requests at once: %d failed, %.2fs in all, p50 %.0f ms, p99 %.0f ms"
          % (N, len(bad), wall, p(0.5) * 1000, p(0.99) * 1000))
    for b in bad[:10]:
        print("  failed:", b)
    return 1 if bad else 0


sys.exit(asyncio.run(main()))
