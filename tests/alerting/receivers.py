"""Real loopback servers standing in for Slack and an SMTP relay.

Both record every delivery as it *arrives* (before answering), the way a real receiver has acted on
a request whose answer may still be lost, and both can dedupe by the idempotency key eventlake sends
(``Idempotency-Key`` header, ``Message-ID``), as a relay in front of Slack or an MTA would. Slack's
own incoming webhooks do not dedupe: ``calls``/``bodies`` are what Slack would post.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Webhook:
    """An HTTP server recording JSON POST bodies; answers ``statuses`` in turn, then 200.

    ``delays_s`` in turn (then ``delay_s``): how long to wait between accepting a request and
    answering it (longer than the client's timeout = the answer is lost after acceptance).
    ``error_body``: the body of non-200 answers."""

    def __init__(
        self,
        statuses: list[int] | None = None,
        *,
        delay_s: float = 0.0,
        delays_s: list[float] | None = None,
        error_body: bytes = b"server error",
    ) -> None:
        self.bodies: list[dict[str, Any]] = []
        #: the Idempotency-Key header of every accepted (200) request, in arrival order
        self.keys: list[str | None] = []
        self.statuses = list(statuses or [])
        self.delays_s = list(delays_s or [])
        self.calls = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer._lock:
                    outer.calls += 1
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    delay = outer.delays_s.pop(0) if outer.delays_s else delay_s
                    if status == 200:
                        outer.bodies.append(json.loads(body))
                        outer.keys.append(self.headers.get("Idempotency-Key"))
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b"ok" if status == 200 else error_body)
                except OSError:
                    pass  # the client gave up (timeout) or was killed: it was accepted all the same

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/XXXX"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def by_key(self) -> Counter[str | None]:
        """Accepted deliveries per idempotency key (what a deduping receiver would post once each)."""
        with self._lock:
            return Counter(self.keys)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """Collects messages an aiosmtpd server receives; ``delay_s`` after taking a message, before
    answering 250 (longer than the client's timeout = accepted, answer lost)."""

    def __init__(self, delay_s: float = 0.0, delays_s: list[float] | None = None) -> None:
        self.messages: list[tuple[Envelope, Message]] = []
        self.delay_s = delay_s
        self.delays_s = list(delays_s or [])

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.messages.append((envelope, message_from_bytes(content, policy=policy.default)))
        delay = self.delays_s.pop(0) if self.delays_s else self.delay_s
        if delay:
            await asyncio.sleep(delay)
        return "250 Message accepted for delivery"

    def by_message_id(self) -> Counter[str | None]:
        """Messages per Message-ID (what an MTA or archive deduping by it keeps once each)."""
        return Counter(m["Message-ID"] for _, m in list(self.messages))


@contextmanager
def smtp_server(port: int, mailbox: Mailbox) -> Iterator[Controller]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
