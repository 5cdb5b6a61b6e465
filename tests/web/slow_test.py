"""Slow and malformed clients never starve the others: LIMIT+10 connections
from one address, half trickling a request's headers a byte a second
(slow-loris), half sending part of a request and then nothing, plus garbage
and a half-sent body, while a normal client from another address gets every
answer at once. A slow connection holds a connection slot, never a thread;
the per-address limit turns the extra ones away, and the server closes the
silent ones after its --http-timeout (TIMEOUT seconds)."""
import os
import socket
import sys
import threading
import time

from client import HOST, PORT, call

TIMEOUT, LIMIT = int(sys.argv[1]), int(sys.argv[2])
TOKEN = os.environ["TOKEN_VIEWER"]
fails = []


def slow(i, closed):
    s = socket.socket()
    s.settimeout(TIMEOUT + 10)
    try:
        s.bind(("127.0.0.1", 0))
        s.connect((HOST, PORT))
        t0 = time.monotonic()
        if i % 2:  # silent after a part: the server must close it
            s.send(b"GET /api/v1/dags HTTP/1.1\r\nHost: x\r\n")
            if s.recv(100) == b"" and time.monotonic() - t0 < TIMEOUT + 3:
                silent_closed.append(i)
            return
        for ch in b"GET /api/v1/dags HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            s.send(bytes([ch]))
            time.sleep(1)
            if time.monotonic() - t0 > TIMEOUT + 8:
                break
    except OSError:
        pass  # closed by the server (timeout) or refused (per-address limit): both right
    finally:
        closed.append(i)
        s.close()


def garbage():
    for payload in (b"\x00\x01\x02 garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                    b"POST /api/v1/dags/linear/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"conf\""):
        s = socket.create_connection((HOST, PORT), timeout=TIMEOUT + 10, source_address=("127.0.0.5", 0))
        s.send(payload)
        try:
            s.recv(100)
        except OSError:
            pass
        s.close()


closed, silent_closed = [], []
threads = [threading.Thread(target=slow, args=(i, closed)) for i in range(LIMIT + 10)]
for t in threads:
    t.start()
g = threading.Thread(target=garbage)
g.start()
time.sleep(1.5)
worst = 0
t_end = time.monotonic() + TIMEOUT + 2
n = 0
while time.monotonic() < t_end:
    t0 = time.monotonic()
    r = call("GET", "/api/v1/dags", TOKEN, source="127.0.0.3")
    worst = max(worst, time.monotonic() - t0)
    n += 1
    if r.status != 200:
        fails.append("status %d" % r.status)
    time.sleep(0.1)
if worst > 1.0:
    fails.append("a request beside the slow clients waited %.1fs" % worst)
s = socket.create_connection((HOST, PORT), timeout=5, source_address=("127.0.0.9", 0))
s.send(("GET /api/v1/dags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n" % TOKEN).encode())
t0 = time.monotonic()
data = s.recv(100)
other = time.monotonic() - t0
s.close()
if not data.startswith(b"HTTP/1.1 200"):
    fails.append("a client from another address got %r" % data[:40])
if other > 1.0:
    fails.append("a client from another address waited %.1fs" % other)
for t in threads:
    t.join(TIMEOUT + 15)
g.join(TIMEOUT + 15)
if len(closed) != LIMIT + 10:
    fails.append("%d slow clients did not end" % (LIMIT + 10 - len(closed)))
if len(silent_closed) < LIMIT // 2 - 5:
    fails.append("only %d of the silent connections were closed by the server within %ds" % (len(silent_closed), TIMEOUT + 3))
print("%d requests beside %d slow clients, the slowest %.2fs; another address %.3fs; %d failures"
      % (n, LIMIT + 10, worst, other, len(fails)))
for f in fails:
    print("  FAIL", f)
sys.exit(1 if fails else 0)
