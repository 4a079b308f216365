"""A real HTTP receiver for webhook tests: a threaded http.server on a free local port that answers what
`answer(n)` says for the n-th request (from 1), and counts the 2xx answers it gave per Idempotency-Key."""

import dataclasses
import http.server
import json
import threading
import time
from collections.abc import Callable


@dataclasses.dataclass
class Received:
    key: str
    signature: str
    event: str
    body: bytes
    status: int
    at: float

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class Receiver:
    def __init__(self, answer: Callable[[int], int] = lambda n: 200, reply: bytes = b'{"ok": true}'):
        self.answer, self.reply = answer, reply
        self.requests: list[Received] = []
        self.accepted: dict[str, int] = {}  # key → 2xx answers given
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key", "")
                with receiver.lock:
                    status = receiver.answer(len(receiver.requests) + 1)
                    if 200 <= status < 300:
                        receiver.accepted[key] = receiver.accepted.get(key, 0) + 1
                    receiver.requests.append(Received(key, self.headers.get("X-Lifecycle-Signature", ""),
                                                      self.headers.get("X-Lifecycle-Event", ""), body, status,
                                                      time.monotonic()))
                out = receiver.reply if 200 <= status < 300 else b"down for maintenance"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/lifecycle"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def statuses(self) -> list[int]:
        with self.lock:
            return [r.status for r in self.requests]
