#!/usr/bin/env python3
"""tests/http_abuse.py PORT [options] -- misbehaving HTTP clients against a
dagq daemon's /healthz and /metrics (tests/integration/http.sh), while a
probe asks /healthz as a kubelet would.

For --duration seconds, at once:

  slow-loris  --slow connections from --slow-src that send a request head one
              byte every --trickle seconds and never finish it, and --spread
              more, one from each of as many addresses (127.0.1.N); each one
              the server closes is opened again at once;
  idle        --idle connections from --idle-src that send nothing (reopened
              likewise);
  malformed   from --bad-src, one after another: garbage bytes, a TLS hello,
              an HTTP/2 preface, a bad method, a bad version, a huge header,
              a huge URL, headers without a colon, NUL bytes, a body on GET
              that never arrives, a POST with a body, a chunked GET;
  probe       every --probe-every seconds a new connection from --probe-src:
              GET /healthz, which must answer 200 within --probe-timeout.

Prints one JSON object (what was seen) and exits 0 when:
  - every probe answered 200 within --probe-timeout;
  - no slow-loris connection stayed open longer than --max-slow-life seconds
    (the server's request-head deadline, plus slack);
  - at most --max-per-ip slow-loris connections from --slow-src were open at
    once (the per-address limit), counting those still open 1 s after they
    connected;
  - each malformed request got its expected answer (a status, or the
    connection closed without one), and a GET whose body never comes was
    answered anyway.
Otherwise it prints what failed on stderr and exits 1. Only the standard
library; every socket is closed at the end.
"""
import argparse
import json
import selectors
import socket
import sys
import threading
import time


def connect(src, host, port, timeout=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if src:
        s.bind((src, 0))
    if timeout is not None:
        s.settimeout(timeout)
        s.connect((host, port))
    else:
        s.setblocking(False)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
    return s


class Holders:
    """The slow-loris and idle connections, on one selector."""

    HEAD = b"GET /healthz HTTP/1.1\r\nHost: dagq\r\nUser-Agent: slow\r\nX-Wait: "

    def __init__(self, a):
        self.a = a
        self.sel = selectors.DefaultSelector()
        self.conns = {}  # socket -> dict
        self.opened = {"slow": 0, "spread": 0, "idle": 0}
        self.closed_by_server = {"slow": 0, "spread": 0, "idle": 0}
        self.connect_errors = 0
        self.longest = {"slow": 0.0, "spread": 0.0, "idle": 0.0}
        self.max_slow_held = 0
        self.pending = []  # (when, kind, src) to open again

    def open(self, kind, src):
        try:
            s = connect(src, self.a.host, self.a.port)
        except OSError:
            self.connect_errors += 1
            return
        now = time.monotonic()
        c = {"kind": kind, "src": src, "t0": now, "next": now, "sent": 0}
        self.conns[s] = c
        self.sel.register(s, selectors.EVENT_READ, c)
        self.opened[kind] += 1

    def close(self, s, by_server):
        c = self.conns.pop(s)
        self.sel.unregister(s)
        s.close()
        life = time.monotonic() - c["t0"]
        if by_server:
            self.closed_by_server[c["kind"]] += 1
            self.longest[c["kind"]] = max(self.longest[c["kind"]], life)
        return c

    def start(self):
        for _ in range(self.a.slow):
            self.open("slow", self.a.slow_src)
        for i in range(self.a.spread):
            self.open("spread", "127.0.1.%d" % (i + 1))
        for _ in range(self.a.idle):
            self.open("idle", self.a.idle_src)

    def trickle(self, now):
        for s, c in list(self.conns.items()):
            if c["kind"] == "idle" or now < c["next"]:
                continue
            head = self.HEAD
            b = head[c["sent"]:c["sent"] + 1] if c["sent"] < len(head) else b"x"
            try:
                s.send(b)
                c["sent"] += 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.reopen(s, True)
                continue
            c["next"] = now + self.a.trickle

    def reopen(self, s, by_server):
        """Closes s and opens its replacement at the next trickle tick (no
        busy loop of connects while the server refuses them)."""
        c = self.close(s, by_server)
        self.pending.append((time.monotonic() + self.a.trickle, c["kind"], c["src"]))

    def reopen_due(self, now):
        due = [p for p in self.pending if p[0] <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        for _, kind, src in due:
            self.open(kind, src)

    def step(self, timeout):
        for key, _ in self.sel.select(timeout):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:  # the server closed it (or reset it)
                self.reopen(s, True)
        now = time.monotonic()
        held = sum(1 for c in self.conns.values()
                   if c["kind"] == "slow" and now - c["t0"] >= 1.0)
        self.max_slow_held = max(self.max_slow_held, held)
        self.trickle(now)
        self.reopen_due(now)

    def finish(self):
        now = time.monotonic()
        for s, c in list(self.conns.items()):
            # still open at the end: its life so far counts too
            self.longest[c["kind"]] = max(self.longest[c["kind"]], now - c["t0"])
            self.close(s, False)


# (name, bytes to send, what may come back: statuses, "close" for the
# connection closed without an answer, "none" for neither within 2 s). The
# three with a body never send all of it: an answer proves the server did not
# wait for it.
BIG = b"x" * (64 * 1024)
MALFORMED = [
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n",
     {"400", "close"}),
    ("http2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {"400", "405", "505", "close"}),
    ("bad_method", b"FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n", {"405"}),
    ("delete", b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", {"405"}),
    ("bad_version", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", {"505", "400", "close"}),
    ("no_version", b"GET /healthz\r\n\r\n", {"400", "close"}),
    ("huge_header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + BIG + b"\r\n\r\n",
     {"431", "413", "close"}),
    ("huge_url", b"GET /" + BIG + b" HTTP/1.1\r\nHost: x\r\n\r\n", {"414", "431", "close"}),
    ("many_headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 8000 + b"\r\n",
     {"431", "413", "close"}),
    ("header_without_colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n",
     {"400", "200", "close"}),
    ("nul_bytes", b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n", {"400", "404", "close"}),
    ("bare_newlines", b"\n\n\n\n\n\n", {"400", "close", "none"}),
    ("get_with_body_never_sent",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n0123456789",
     {"200"}),
    ("post_with_body", b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabcdef",
     {"405"}),
    ("chunked_get", b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     {"200", "400"}),
]


def malformed_once(a, case):
    name, payload, want = case[0], case[1], case[2]
    s = connect(a.bad_src, a.host, a.port, timeout=2.0)
    try:
        try:
            s.sendall(payload)
        except OSError:
            pass  # the server may answer (and close) before it read it all
        data, waited = b"", False
        while b"\r\n" not in data:
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                waited = True
                break
            except OSError:
                chunk = b""
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    if data.startswith(b"HTTP/"):
        got = data.split(b" ", 2)[1].decode("ascii", "replace")
    elif data:
        got = "junk"
    elif waited:
        got = "none"  # neither an answer nor a close within 2 s
    else:
        got = "close"
    return name, got, got in want


def malformed_loop(a, stop, out):
    rounds = 0
    while not stop.is_set():
        for case in MALFORMED:
            if stop.is_set():
                break
            try:
                name, got, ok = malformed_once(a, case)
            except OSError as e:
                name, got, ok = case[0], "connect: %s" % e, False
            seen = out.setdefault(name, {})
            seen[got] = seen.get(got, 0) + 1
            if not ok:
                out.setdefault("_bad", []).append("%s: got %s, want %s" % (name, got, sorted(case[2])))
        rounds += 1
    out["_rounds"] = rounds


def probe_once(a):
    t0 = time.monotonic()
    s = connect(a.probe_src, a.host, a.port, timeout=a.probe_timeout)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: dagq\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            left = a.probe_timeout - (time.monotonic() - t0)
            if left <= 0:
                raise socket.timeout("no full answer within %.1fs" % a.probe_timeout)
            s.settimeout(left)
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    dt = time.monotonic() - t0
    status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "junk"
    return status, dt, data.endswith(b"ok\n")


def probe_loop(a, stop, out):
    out.update(n=0, ok=0, worst_s=0.0, failures=[])
    next_t = time.monotonic()
    while not stop.is_set():
        try:
            status, dt, body_ok = probe_once(a)
            good = status == "200" and body_ok and dt <= a.probe_timeout
            out["worst_s"] = max(out["worst_s"], dt)
            if not good:
                out["failures"].append("status %s body_ok %s in %.3fs" % (status, body_ok, dt))
        except OSError as e:
            good = False
            out["failures"].append("%s: %s" % (type(e).__name__, e))
        out["n"] += 1
        out["ok"] += 1 if good else 0
        next_t += a.probe_every
        stop.wait(max(0.0, next_t - time.monotonic()))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--slow", type=int, default=200)
    p.add_argument("--spread", type=int, default=100)
    p.add_argument("--idle", type=int, default=50)
    p.add_argument("--trickle", type=float, default=0.5)
    p.add_argument("--slow-src", default="127.0.0.3")
    p.add_argument("--idle-src", default="127.0.0.4")
    p.add_argument("--bad-src", default="127.0.0.5")
    p.add_argument("--probe-src", default="127.0.0.1")
    p.add_argument("--probe-every", type=float, default=0.1)
    p.add_argument("--probe-timeout", type=float, default=1.0)
    p.add_argument("--max-slow-life", type=float, default=7.5)
    p.add_argument("--max-per-ip", type=int, default=16)
    a = p.parse_args()

    stop = threading.Event()
    bad, probes = {}, {}
    h = Holders(a)
    h.start()
    threads = [threading.Thread(target=malformed_loop, args=(a, stop, bad)),
               threading.Thread(target=probe_loop, args=(a, stop, probes))]
    for t in threads:
        t.start()
    end = time.monotonic() + a.duration
    try:
        while time.monotonic() < end:
            h.step(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
        h.finish()

    problems = []
    if probes["n"] < a.duration / a.probe_every / 2:
        problems.append("only %d probes in %.0fs" % (probes["n"], a.duration))
    if probes["ok"] != probes["n"]:
        problems.append("%d of %d probes failed: %s" % (probes["n"] - probes["ok"], probes["n"],
                                                        "; ".join(probes["failures"][:5])))
    for kind in ("slow", "spread"):
        if h.longest[kind] > a.max_slow_life:
            problems.append("a %s slow-loris connection lived %.1fs (> %.1fs): the request-head "
                            "deadline did not cut it" % (kind, h.longest[kind], a.max_slow_life))
    if h.max_slow_held > a.max_per_ip:
        problems.append("%d slow-loris connections from %s were open at once (> %d per address)"
                        % (h.max_slow_held, a.slow_src, a.max_per_ip))
    if bad.get("_rounds", 0) < 1:
        problems.append("not one round of malformed requests was sent")
    for b in sorted(set(bad.get("_bad", [])))[:10]:
        problems.append("malformed request " + b)
    report = {
        "probes": {k: probes[k] for k in ("n", "ok", "worst_s")},
        "opened": h.opened, "closed_by_server": h.closed_by_server,
        "longest_life_s": {k: round(v, 2) for k, v in h.longest.items()},
        "max_slow_open_from_one_address": h.max_slow_held, "connect_errors": h.connect_errors,
        "malformed": {k: v for k, v in bad.items() if not k.startswith("_bad")},
    }
    print(json.dumps(report, sort_keys=True))
    for pr in problems:
        print("http_abuse: " + pr, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
