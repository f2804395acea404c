"""A local merchant: receives the signed events, failing as told (500s, then timeouts), then accepting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from shared import signing

MERCHANT_SECRET = "merchant-secret-0123456789"


@dataclass
class Receiver:
    """``errors`` requests answer 500, the next ``hangs`` hang for ``hang_seconds`` (the sender times out),
    the rest answer 200. Every request is kept; ``accepted`` holds the 200s' events, deduplicated by id as a
    merchant would, in arrival order."""

    errors: int = 0
    hangs: int = 0
    hang_seconds: float = 1.0
    secret: str = MERCHANT_SECRET
    requests: int = 0
    bad_signatures: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    duplicates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    hanging: threading.Event = field(default_factory=threading.Event)
    """Set once a request hangs."""
    release: threading.Event = field(default_factory=threading.Event)
    """Ends every hang at once (set when the merchant stops)."""
    url: str = ""

    def handle(self, headers: Any, body: bytes) -> int:
        with self.lock:
            self.requests += 1
            n = self.requests
        if not signing.verify(
            self.secret, headers.get(signing.TIMESTAMP_HEADER), headers.get(signing.SIGNATURE_HEADER), body
        ):
            with self.lock:
                self.bad_signatures += 1
            return 400
        if n <= self.errors:
            return 500
        if n <= self.errors + self.hangs:
            self.hanging.set()
            self.release.wait(self.hang_seconds)
            return 200  # too late: the sender gave up, and sends it again
        event = orjson.loads(body)
        with self.lock:
            if event["id"] in self.seen:
                self.duplicates += 1
            else:
                self.seen.add(event["id"])
                self.accepted.append(event)
        return 200


@contextmanager
def merchant(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.handle(self.headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender hung up (its timeout)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/flashsale/events"
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
