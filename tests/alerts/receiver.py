#!/usr/bin/env python3
"""tests/alerts/receiver.py DIR PORT — the HTTP receiver of the alert tests.

Listens on 127.0.0.1:PORT and records every request, on arrival, as one JSON
line in DIR/requests.jsonl: {"t", "path", "headers", "body"}. What it answers
is read from DIR/mode at each request:
  ok (the default)  200 "ok"
  status:N          N "no"
  sleep:S           waits S seconds, then 200
  hang              waits 600 seconds (the sender's timeout ends it)
  slowfail:S        the first request waits S seconds and gets 500, the others 200
Stops on SIGTERM. Only the standard library: no package a fresh machine lacks.
"""
import http.server
import json
import os
import socketserver
import sys
import threading
import time

DIR, PORT = sys.argv[1], int(sys.argv[2])
LOCK = threading.Lock()
SEEN = [0]


def mode():
    try:
        with open(os.path.join(DIR, "mode")) as f:
            return f.read().strip() or "ok"
    except OSError:
        return "ok"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        rec = {"t": time.time(), "path": self.path, "headers": dict(self.headers.items()), "body": body}
        with LOCK, open(os.path.join(DIR, "requests.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            SEEN[0] += 1
            first = SEEN[0] == 1
        m = mode()
        code = 200
        if m.startswith("slowfail:"):
            if first:
                time.sleep(float(m.split(":", 1)[1]))
                code = 500
        elif m.startswith("status:"):
            code = int(m.split(":", 1)[1])
        elif m.startswith("sleep:"):
            time.sleep(float(m.split(":", 1)[1]))
        elif m == "hang":
            time.sleep(600)
        out = b"ok" if code < 300 else b"no"
        try:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        except OSError:
            pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", PORT), Handler)
with open(os.path.join(DIR, "receiver.ready"), "w") as f:
    f.write(str(os.getpid()))
srv.serve_forever()
