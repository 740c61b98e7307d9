"""Reading a request's body within a deadline for the whole body.

gunicorn's body reader returns only once it has the bytes asked for, so a
socket timeout bounds each wait, not the whole: a client sending one byte
every few seconds kept a greenlet (and a connection slot) for as long as it
liked. Here a timer shuts the socket for reading when the deadline passes:
the read in progress returns at once with what it has, and the request is
answered 408 (the socket can still send the answer). What the client sends
after that is read and dropped for a moment once the answer is out
(:class:`LingeringAnswer`): a socket closed with unread data is reset, and
the reset can destroy the answer before the client reads it.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List

READ_CHUNK = 64 * 1024
#: seconds a cut-off client's remaining bytes are read and dropped after its answer
LINGER = 2.0
#: and at most this many bytes of them: past that the client is only sending, not reading
LINGER_BYTES = 1024 * 1024


def read_body(environ: Dict[str, Any], length: int, timeout: float,
              clock: Callable[[], float] = time.monotonic) -> bytes:
    """The request body, all of it within ``timeout`` seconds; TimeoutError
    otherwise. ``gunicorn.socket`` (the server's socket) is shut for reading
    at the deadline; without it only the time between reads is checked."""
    stream, sock = environ["wsgi.input"], environ.get("gunicorn.socket")
    expired = threading.Event()
    timer = threading.Timer(timeout, _cut_off, (sock, expired)) if sock is not None else None
    deadline = clock() + timeout
    chunks: List[bytes] = []
    remaining = length
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        while remaining > 0:
            if clock() >= deadline or expired.is_set():
                raise TimeoutError("the report was not sent in time")
            chunk = stream.read(min(remaining, READ_CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except (socket.timeout, OSError) as exc:
        if expired.is_set() or isinstance(exc, socket.timeout):
            raise TimeoutError("the report was not sent in time") from None
        raise
    finally:
        if timer is not None:
            timer.cancel()
    if remaining > 0 and expired.is_set():
        raise TimeoutError("the report was not sent in time")
    return b"".join(chunks)


def _cut_off(sock: Any, expired: threading.Event) -> None:
    """At the deadline: no more reading from this client."""
    expired.set()
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:  # already closed by the client: nothing left to stop
        pass


class LingeringAnswer:
    """A WSGI response body that, once the server has sent it (WSGI calls
    ``close`` then), half-closes the connection and drops what the client still
    sends, for at most ``linger`` seconds and ``LINGER_BYTES``, so that closing
    it sends no reset to a client that stopped sending."""

    def __init__(self, payload: bytes, sock: Any, linger: float = LINGER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.payload, self.sock, self.linger, self.clock = payload, sock, linger, clock

    def __iter__(self) -> Iterator[bytes]:
        yield self.payload

    def close(self) -> None:
        deadline, dropped = self.clock() + self.linger, 0
        try:
            self.sock.shutdown(socket.SHUT_WR)
            while (left := deadline - self.clock()) > 0 and dropped < LINGER_BYTES:
                self.sock.settimeout(left)
                chunk = self.sock.recv(READ_CHUNK)
                if not chunk:
                    break
                dropped += len(chunk)
        except OSError:  # timed out, or the client is gone
            pass
        try:
            self.sock.shutdown(socket.SHUT_RD)  # else gunicorn reads the rest, looking for a next request
        except OSError:
            pass
