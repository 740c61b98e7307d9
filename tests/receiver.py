"""A loopback telemetry receiver for submit tests: records every POST and
answers like the Dujour service (or with a fault), over HTTP or HTTPS."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class Received:
    path: str
    headers: Dict[str, str]
    body: bytes


@dataclass
class ReceiverState:
    mode: str = "ok"  # ok, newer, 500, hang, redirect, notjson
    received: List[Received] = field(default_factory=list)


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        state: ReceiverState = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        state.received.append(Received(self.path, dict(self.headers.items()), body))
        if state.mode == "hang":
            time.sleep(5)
            return
        if state.mode == "500":
            return self._send(500, b"internal error", "text/plain")
        if state.mode == "redirect":
            self.send_response(307)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if state.mode == "notjson":
            return self._send(200, b"<html>thanks</html>", "text/html")
        answer = {"message": "Report received, thank you", "newer": False, "link": "https://example.test/dropsonde"}
        if state.mode == "newer":
            answer["newer"] = True
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Clients that give up (timeouts, refused certificates) are what the fault tests do."""


class Receiver:
    """A context manager serving on 127.0.0.1 in a thread."""

    def __init__(self, mode: str = "ok", tls: Optional[ssl.SSLContext] = None) -> None:
        self.state = ReceiverState(mode=mode)
        self.httpd = _QuietServer(("127.0.0.1", 0), ReceiverHandler)
        self.httpd.state = self.state
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1"

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
