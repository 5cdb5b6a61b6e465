#!/usr/bin/env python3
"""tests/compose/receiver.py DIR — the webhook receiver of the compose tests'
alert case. Listens on every address of the stack's network namespace, on
a free port it writes to DIR/port once it listens, so the containers reach
it through their network's gateway. Each POST is answered 200 and recorded,
on arrival, as one JSON line in DIR/requests.jsonl: {"path", "headers",
"body"}. Stops on SIGTERM. Only the standard library.
"""
import http.server
import json
import os
import socketserver
import sys
import threading

DIR = sys.argv[1]
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        rec = {"path": self.path, "headers": dict(self.headers.items()), "body": body}
        with LOCK, open(os.path.join(DIR, "requests.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("0.0.0.0", 0), Handler)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
srv.serve_forever()
