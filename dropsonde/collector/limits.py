"""What one source may do: which address a request counts against (the
client's, also behind a reverse proxy), how many reports a minute that
address may send (one budget, whichever worker process answers), and how
long a client may take to send its report.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sqlite3
import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
FORGET_AFTER_CALLS = 1000  # every this many reports, buckets full again are dropped
READ_CHUNK = 64 * 1024
IPV6_PREFIX = 64
log = logging.getLogger(__name__)


def parse_networks(values: Sequence[str]) -> Tuple[Network, ...]:
    """``--trusted-proxy`` values (CIDR or a single address) as networks; ValueError naming the bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxy: not an address or CIDR: {value!r:.60}") from None
    return tuple(networks)


def _ip(text: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    """An address as a peer or an X-Forwarded-For hop writes it: bare,
    ``[v6]``, ``a.b.c.d:port`` or ``[v6]:port`` (some load balancers add the
    port); an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) as the IPv4
    address it is, so that one client does not get two budgets. None otherwise."""
    text = text.strip()
    if text.startswith("["):
        inside, closed, port = text[1:].partition("]")
        if not closed or (port and not (port[:1] == ":" and port[1:].isdigit())):
            return None
        text = inside
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def rate_key(address: str) -> str:
    """The budget an address draws on: an IPv4 address alone, an IPv6 address
    by its /64 — every IPv6 client holds at least a /64, so a budget per
    address would give it 2^64 budgets."""
    parsed = _ip(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)


def _trusted(address: Any, proxies: Tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(environ: Dict[str, Any], proxies: Tuple[Network, ...]) -> str:
    """The address a request counts against. ``X-Forwarded-For`` is honoured only
    when the peer is a trusted proxy, and then read from the right: each proxy
    appends the address it saw, so the rightmost address that is not a trusted
    proxy is the first one no trusted party vouches for — the client (anything
    left of it was written by the client and may be forged)."""
    raw = str(environ.get("REMOTE_ADDR", ""))
    parsed = _ip(raw)
    peer = str(parsed) if parsed is not None else raw
    if not _trusted(parsed, proxies):
        return peer
    for hop in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _ip(hop)
        if address is None:
            # A malformed chain vouches for nothing: count it against the proxy, and say so,
            # as every client behind that proxy now shares one budget.
            log.warning("X-Forwarded-For from trusted proxy %s: hop %r is not an address; the request counts "
                        "against the proxy", peer, hop.strip()[:60])
            return peer
        if not _trusted(address, proxies):
            return str(address)
    return peer


class RateLimiter:
    """A token bucket per address, ``rate`` reports a minute with bursts up to
    ``rate``, kept in one SQLite file that every worker process opens: one
    budget per address however many workers serve it (per-process buckets gave
    each address workers × rate). SQLite because its locking is cross-process
    and survives a worker killed mid-request, which a shared-memory table with
    a hand-made lock would not; the file is scratch (synchronous=OFF)."""

    def __init__(self, path: str, rate_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.rate = rate_per_minute / 60.0
        self.capacity = float(rate_per_minute)
        self.clock = clock  # CLOCK_MONOTONIC is one clock for all processes of the host
        self._lock = threading.Lock()
        self._connection: Optional[sqlite3.Connection] = None
        self._pid = 0
        self._calls = 0

    def create(self) -> "RateLimiter":
        """Create the file and its table once, before the workers exist, so they
        never race to switch it to WAL; the connection is closed before any fork."""
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("CREATE TABLE IF NOT EXISTS buckets "
                               "(address TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL)")
        finally:
            connection.close()
        return self

    def _connect(self) -> sqlite3.Connection:
        """One connection per process, opened after the fork (an SQLite
        connection must not cross a fork)."""
        if self._connection is None or self._pid != os.getpid():
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA synchronous=OFF")
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def allow(self, address: str) -> bool:
        """Take a token for ``address``; False when its bucket is empty."""
        now = self.clock()
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute("SELECT tokens, updated FROM buckets WHERE address = ?", (address,)).fetchone()
                tokens, last = row if row else (self.capacity, now)
                tokens = min(self.capacity, tokens + max(0.0, now - last) * self.rate)
                allowed = tokens >= 1
                connection.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)",
                                   (address, tokens - 1 if allowed else tokens, now))
                self._calls += 1
                if self._calls % FORGET_AFTER_CALLS == 0:  # a bucket idle for a minute is full: forget it
                    connection.execute("DELETE FROM buckets WHERE updated < ?", (now - 60.0,))
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return allowed


def read_body(environ: Dict[str, Any], length: int, timeout: float,
              clock: Callable[[], float] = time.monotonic) -> bytes:
    """The request body, all of it within ``timeout`` seconds; TimeoutError
    otherwise. A deadline for the whole body, not per read: a client sending a
    byte now and then must not hold a connection for long. The server's
    socket (``gunicorn.socket``) gets the time left before each read."""
    stream, sock = environ["wsgi.input"], environ.get("gunicorn.socket")
    deadline = clock() + timeout
    chunks, remaining = [], length
    try:
        while remaining > 0:
            left = deadline - clock()
            if left <= 0:
                raise TimeoutError("the report was not sent in time")
            if sock is not None:
                sock.settimeout(left)
            chunk = stream.read(min(remaining, READ_CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except socket.timeout:
        raise TimeoutError("the report was not sent in time") from None
    finally:
        if sock is not None:
            sock.settimeout(None)  # back to the server's own (bounded) handling of the connection
    return b"".join(chunks)
