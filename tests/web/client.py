"""A small HTTP client for dagq-web's tests (standard library only)."""
import http.client
import json
import os
import subprocess
import urllib.parse

URL = os.environ.get("WEB_URL", "http://127.0.0.1:8080/")
_u = urllib.parse.urlparse(URL)
HOST, PORT = _u.hostname, _u.port or 80


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body.decode())

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def call(method, path, token=None, body=None, raw=None, headers=None, ctype="application/json", source=None):
    c = http.client.HTTPConnection(HOST, PORT, timeout=30, source_address=(source, 0) if source else None)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None and ctype:
        h["Content-Type"] = ctype
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    out = Resp(r.status, r.getheaders(), r.read())
    c.close()
    return out


def sql(q, url=None):
    """psql as the superuser: one line per row, fields separated by |"""
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url or os.environ["DAGQ_DATABASE_URL"],
                          "-c", q], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr.strip())
    return out.stdout.strip()


def sql_err(q, url):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", q],
                         capture_output=True, text=True)
    return out.stderr.strip()


FAILS = []


def check(cond, what):
    if cond:
        print("  ok   " + what)
    else:
        print("  FAIL " + what)
        FAILS.append(what)
    return cond


def eq(want, got, what):
    return check(want == got, "%s (expected %r, got %r)" % (what, want, got) if want != got else what)
