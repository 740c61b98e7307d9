"""Loopback HTTP(S) servers for tests: a handler base and a threaded server
that runs on 127.0.0.1 for the length of a ``with`` block."""

from __future__ import annotations

import http.server
import ssl
import threading
from typing import Any, Optional, Type

# The longest a hanging handler holds its thread if the test never ends the server.
HANG_DEADLINE = 60.0
# JSON nested deeper than Python's parser can recurse (the answer of a hostile server).
DEEP_JSON = b"[" * 200_000


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that answers with one call and logs nothing."""

    def send(self, status: int, body: bytes, content_type: str, headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass

    def drip(self, interval: float = 0.05) -> None:
        """Promise a large body, then send one byte every ``interval`` until the client
        hangs up (or the test ends): each read succeeds, the answer never ends."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            while not self.server.released.wait(interval):
                self.wfile.write(b" ")
                self.wfile.flush()
        except OSError:  # the client hung up: what the test waits for
            pass

    def drip_headers(self, interval: float = 0.05) -> None:
        """The status line and headers a byte at a time, never ending them."""
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            while not self.server.released.wait(interval):
                self.wfile.write(b"X")
                self.wfile.flush()
        except OSError:
            pass

    def hang(self) -> None:
        """Answer nothing until the test is over (the server is stopped), so the
        client's own timeout is what ends the request, however long it is."""
        self.server.released.wait(HANG_DEADLINE)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Resets, hangs and refused certificates are what fault tests inject: no tracebacks."""


class LoopbackServer:
    """Serves ``handler`` on 127.0.0.1 in a thread; ``state`` is reachable as ``self.server.state``."""

    def __init__(self, handler: Type[QuietHandler], state: Any = None, tls: Optional[ssl.SSLContext] = None) -> None:
        self.state = state
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.state = state
        self.httpd.released = threading.Event()
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        # shutdown() waits for the loop's next poll: 0.5 s by default, on every test that stops a server
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
