"""A webhook receiver for the tests: verifies every request with the
Standard Webhooks reference library (PyPI `standardwebhooks`) and logs it.

Usage: receiver.py SECRET_FILE LOG PLAN
  SECRET_FILE holds the endpoint's `whsec_` secret, read on each request
  (the endpoint, and so its secret, is made once the receiver listens).
  PLAN is JSON: {"answers": [{"status": 500} | {"sleep": 2.5} | {"redirect": URL}, ...],
                 "delay": seconds before every later answer}
  The n-th request gets answers[n] (then "status", 200 by default, after
  "delay" seconds). Each request's arrival is also logged to LOG.started.
Prints the port it listens on (127.0.0.1), then serves until killed.
Each request appends one JSON line to LOG.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

secret_file, log_path, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
answers = plan.get("answers", [])
delay = plan.get("delay", 0)
lock = threading.Lock()
count = [0]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        start = time.time()
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            n = count[0]
            count[0] += 1
        with lock, open(log_path + ".started", "a") as f:
            f.write(json.dumps({"n": n, "id": headers.get("webhook-id")}) + "\n")
        later = {"sleep": delay, "status": plan.get("status", 200)}
        answer = answers[n] if n < len(answers) else later
        entry = {"n": n, "id": headers.get("webhook-id"), "start": start}
        try:
            with open(secret_file) as f:
                hook = Webhook(f.read().strip())
            payload = hook.verify(body, headers)
            entry.update(verified=True, type=payload["type"], data=payload["data"])
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            entry.update(verified=False, error=repr(e))
        if "sleep" in answer:
            time.sleep(answer["sleep"])
        status = answer.get("status", 302 if "redirect" in answer else 200)
        try:
            self.send_response(status)
            if "redirect" in answer:
                self.send_header("location", answer["redirect"])
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:
            status = None
        entry.update(status=status, end=time.time())
        with lock, open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of deliveries beyond
    # that has its SYNs dropped and retried by the kernel a second later,
    # which a test's short delivery timeout then takes for a failed attempt.
    request_queue_size = 128


server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
