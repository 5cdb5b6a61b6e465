#!/usr/bin/env python3
"""tests/alerts/smtpd.py DIR PORT CERT KEY USER PASSWORD — the SMTP server of
the alert tests (aiosmtpd, from the private venv of tests/alerts/venv.sh).

STARTTLS is required before anything else, and so is a login (AUTH PLAIN or
LOGIN) as USER with PASSWORD. Each message is written to DIR/mail/N.eml, with
the envelope in DIR/mail/N.json ({"from", "to", "tls", "authenticated"}).
"""
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

DIR, PORT, CERT, KEY, USER, PASSWORD = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
os.makedirs(os.path.join(DIR, "mail"), exist_ok=True)
COUNT = [0]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        COUNT[0] += 1
        n = COUNT[0]
        with open(os.path.join(DIR, "mail", "%d.eml" % n), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(os.path.join(DIR, "mail", "%d.json" % n), "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "tls": session.ssl is not None,
                       "authenticated": bool(session.authenticated)}, f)
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
    return AuthResult(success=ok, handled=False)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(CERT, KEY)
controller = Controller(Handler(), hostname="127.0.0.1", port=PORT, tls_context=ctx,
                        require_starttls=True, auth_required=True, auth_require_tls=True,
                        authenticator=authenticator)
controller.start()
with open(os.path.join(DIR, "smtpd.ready"), "w") as f:
    f.write(str(os.getpid()))
try:
    asyncio.get_event_loop().run_forever()
except KeyboardInterrupt:
    pass
finally:
    controller.stop()
