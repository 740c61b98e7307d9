"""A loopback telemetry receiver for submit tests: records every POST and
answers like the Dujour service (or with a fault), over HTTP or HTTPS."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from tests.support.loopback import DEEP_JSON, LoopbackServer, QuietHandler


@dataclass
class Received:
    path: str
    headers: Dict[str, str]
    body: bytes


@dataclass
class ReceiverState:
    mode: str = "ok"  # ok, newer, hang, drip, deep, redirect, notjson, or an HTTP status ("500", "413"...)
    received: List[Received] = field(default_factory=list)
    location: Optional[str] = None  # where "redirect" sends (default: the same path, forever)
    redirect_status: int = 307
    retry_after: Optional[str] = None  # a Retry-After header sent with a status answer


class ReceiverHandler(QuietHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        state: ReceiverState = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        state.received.append(Received(self.path, dict(self.headers.items()), body))
        if state.mode == "hang":
            return self.hang()
        if state.mode == "drip":
            return self.drip()
        if state.mode == "deep":
            return self.send(200, DEEP_JSON, "application/json")
        if state.mode == "500":
            return self.send(500, b"internal error", "text/plain")
        if state.mode.isdigit():  # any other status: "400", "404", "413"...
            retry_after = {"Retry-After": state.retry_after} if state.retry_after is not None else None
            return self.send(int(state.mode), f"status {state.mode}".encode(), "text/plain", retry_after)
        if state.mode == "redirect" and self.path != state.location:
            return self.send(state.redirect_status, b"", "text/plain", {"Location": state.location or self.path})
        if state.mode == "notjson":
            return self.send(200, b"<html>thanks</html>", "text/html")
        answer = {"message": "Report received, thank you", "newer": False, "link": "https://example.test/dropsonde"}
        if state.mode in ("newer", "forged-newer"):
            answer["newer"] = True
        if state.mode == "accepted":  # a well-formed answer, with 202 Accepted
            return self.send(202, json.dumps(answer).encode(), "application/json")
        if state.mode.startswith("forged"):  # a server that tries to print lines of ours
            answer["message"] = "Thanks\ndropsonde: error: FORGED by server\x1b[2J"
            answer["link"] = "https://example.test/\ndropsonde: error: FORGED by link"
        self.send(200, json.dumps(answer).encode(), "application/json")


class Receiver(LoopbackServer):
    """The receiver on 127.0.0.1; ``endpoint`` and ``port`` are what submit takes."""

    def __init__(self, mode: str = "ok", tls: Optional[ssl.SSLContext] = None) -> None:
        super().__init__(ReceiverHandler, ReceiverState(mode=mode), tls)

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1"
