"""A webhook receiver: a real HTTP server on 127.0.0.1 in a thread, recording every request.

Tests script its answers (`answer(500, 500, 200)`: the first two requests get 500, then 200 for
good), point a trader's webhook at `url`, and read back `requests` with their headers and bodies.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, *, tls: tuple[str, str] | None = None) -> None:
        """`tls`: (certificate file, key file) to serve HTTPS instead of HTTP."""
        self.tls = tls
        self.requests: list[ReceivedRequest] = []
        self._answers: list[int] = []
        self._final = 200
        self._redirect_to: str | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, location = receiver._record(ReceivedRequest(self.path, dict(self.headers.items()), body))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format, *args):  # keep the test output quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tradeoptions"

    def answer(self, *statuses: int, then: int | None = None) -> None:
        """Answer the next requests with `statuses`, in order, then with `then` (or the last one)."""
        with self._lock:
            self._answers = list(statuses)
            self._final = then if then is not None else statuses[-1]

    def redirect_to(self, location: str) -> None:
        """Answer every request with a 302 to `location` (which a sender must not follow)."""
        with self._lock:
            self._redirect_to = location
            self._answers, self._final = [], 302

    def _record(self, request: ReceivedRequest) -> tuple[int, str | None]:
        with self._lock:
            self.requests.append(request)
            status = self._answers.pop(0) if self._answers else self._final
            return status, self._redirect_to
