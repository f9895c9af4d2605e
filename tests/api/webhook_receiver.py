"""A webhook receiver for tests/api/webhooks.rs, as an integrator would write one: it verifies
each delivery with the `standardwebhooks` package from PyPI and answers by a plan.

Usage: webhook_receiver.py SECRET_FILE [--fail-first N] [--status CODE] [--delay SECONDS]
                                       [--hold-first SECONDS]

Listens on 127.0.0.1 (a free port, printed first as `port <n>`), then prints one JSON line per
request: {"id", "verified", "status", "received", "answered", "body"} (times in Unix seconds).
The secret is read from SECRET_FILE at each request (the test writes it once it has created
the endpoint). The first N requests are answered CODE (default 503); the first request is held
SECONDS before it is answered with --hold-first; every answer waits --delay SECONDS.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

parser = argparse.ArgumentParser()
parser.add_argument("secret_file")
parser.add_argument("--fail-first", type=int, default=0)
parser.add_argument("--status", type=int, default=503)
parser.add_argument("--delay", type=float, default=0.0)
parser.add_argument("--hold-first", type=float, default=0.0)
args = parser.parse_args()

lock = threading.Lock()
seen = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        global seen
        received = time.time()
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with lock:
            seen += 1
            nth = seen
        with open(args.secret_file) as file:
            secret = file.read().strip()
        try:
            Webhook(secret).verify(body, dict(self.headers))
            verified = True
        except WebhookVerificationError:
            verified = False
        if nth == 1 and args.hold_first:
            time.sleep(args.hold_first)
        time.sleep(args.delay)
        status = 401 if not verified else args.status if nth <= args.fail_first else 204
        try:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()
        except OSError:
            status = None  # the sender went away (killed, or timed out)
        record = {
            "id": self.headers.get("webhook-id"),
            "verified": verified,
            "status": status,
            "received": received,
            "answered": time.time(),
            "body": json.loads(body),
        }
        with lock:
            print(json.dumps(record), flush=True)

    def log_message(self, format: str, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()
