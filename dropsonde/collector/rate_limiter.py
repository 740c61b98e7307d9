"""What one source may send: reports a minute (a token bucket) and sites a
week, each one budget per source whichever worker process answers.

Sites over a source's weekly cap are quarantined (kept apart, never
published) up to as many again; beyond that, a source's reports for new
sites are not stored at all, so what one source can put in the store each
week is bounded however long it posts.

A source is an IPv4 address or an IPv6 /48 (``client_address.rate_key``).
The budgets are kept in one SQLite file that every worker opens, under a
keyed hash of the source, never the address itself: the key is made when the
collector starts and lives only in its processes' memory, so the file tells
nobody who sent reports. Entries are dropped once they no longer limit
anything (a bucket full again, a past week), checked on a deadline, and the
file is removed when the collector stops.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from typing import Callable, Iterator, Optional

from dropsonde.collector.client_address import rate_key

#: seconds between two sweeps of entries that no longer limit anything
PRUNE_INTERVAL = 60.0

#: body bytes one token pays for: a report costs ``max(1, bytes / BYTES_PER_TOKEN)``
#: tokens, so a source's budget bounds the bytes it makes the collector parse,
#: validate and store (the work a report costs grows with its bytes), not just
#: its number of reports. Real reports (the example site's are under 3 KB) cost 1.
BYTES_PER_TOKEN = 16 * 1024


class SiteVerdict(enum.Enum):
    """What becomes of a source's report for a site, by the sites it already reported for this week."""

    COUNTED = "counted"  # among the first ``sites_per_week``: stored and published
    QUARANTINED = "quarantined"  # among the next ``sites_per_week``: kept apart, never published
    DISCARDED = "discarded"  # beyond both: not stored at all (answered alike all the same)


class RateLimiter:
    """A token bucket per source, ``rate`` tokens a minute with bursts up to
    ``rate`` (a report costs one token per :data:`BYTES_PER_TOKEN` of body, at least one), and at most ``sites_per_week`` distinct site ids per source and
    ISO week counted (as many again quarantined). SQLite because its locking is cross-process and survives a
    worker killed mid-request, which a shared-memory table with a hand-made
    lock would not; the file is scratch (synchronous=OFF)."""

    def __init__(self, path: str, rate_per_minute: int, sites_per_week: int = 10**9,
                 clock: Callable[[], float] = time.monotonic, key: Optional[bytes] = None) -> None:
        self.path = path
        self.rate = rate_per_minute / 60.0
        self.capacity = float(rate_per_minute)
        self.sites_per_week = sites_per_week
        self.clock = clock  # CLOCK_MONOTONIC is one clock for all processes of the host
        self.key = key if key is not None else secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._connection: Optional[sqlite3.Connection] = None
        self._pid = 0
        self._next_prune = clock() + PRUNE_INTERVAL

    def create(self) -> "RateLimiter":
        """Create the file (0600) and its tables once, before the workers exist, so
        they never race to switch it to WAL; the connection is closed before any fork."""
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("CREATE TABLE IF NOT EXISTS buckets "
                               "(source TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL)")
            connection.execute("CREATE TABLE IF NOT EXISTS source_sites "
                               "(week TEXT NOT NULL, source TEXT NOT NULL, site TEXT NOT NULL, "
                               "quarantined INTEGER NOT NULL, PRIMARY KEY (week, source, site))")
            connection.execute("CREATE INDEX IF NOT EXISTS source_sites_by_site ON source_sites (week, site)")
        finally:
            connection.close()
        return self

    def source(self, address: str) -> str:
        """The keyed hash a source is kept under (HMAC-SHA-256 of its rate key)."""
        return hmac.new(self.key, rate_key(address).encode(), hashlib.sha256).hexdigest()

    def _connect(self) -> sqlite3.Connection:
        """One connection per process, opened after the fork (an SQLite
        connection must not cross a fork)."""
        if self._connection is None or self._pid != os.getpid():
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA synchronous=OFF")
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def cost(self, length: int) -> float:
        """Tokens a body of ``length`` bytes costs: one per :data:`BYTES_PER_TOKEN`,
        at least one, and never more than a full bucket (else it could never pass)."""
        return max(1.0, min(self.capacity, length / BYTES_PER_TOKEN))

    def allow(self, address: str, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens for ``address``'s source; False (taking none) when
        its bucket holds fewer."""
        now = self.clock()
        source = self.source(address)
        with self._transaction() as connection:
            row = connection.execute("SELECT tokens, updated FROM buckets WHERE source = ?", (source,)).fetchone()
            tokens, last = row if row else (self.capacity, now)
            tokens = min(self.capacity, tokens + max(0.0, now - last) * self.rate)
            allowed = tokens >= cost
            connection.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)",
                               (source, tokens - cost if allowed else tokens, now))
            self._prune_when_due(connection, None)
        return allowed

    def admit_site(self, address: str, site_id: str, week: str) -> SiteVerdict:
        """Count ``site_id`` against ``address``'s source for ``week``: counted
        while the source speaks for at most ``sites_per_week`` sites, then
        quarantined for as many more, then discarded. A site keeps its first
        verdict for the week (its report replaces its older one), and a site
        counted by any source is counted from every other without taking a
        slot there: so one site, wherever it reports from, keeps at most one
        other site out of the counted ones (its slot) — the publication's
        guarantee for a site behind a full source is that of a group of two
        sites (README, "Differential privacy"); a site taking a slot in each
        source it reported from kept out one site per source (outside review F4)."""
        source = self.source(address)
        site = hmac.new(self.key, site_id.encode(), hashlib.sha256).hexdigest()
        with self._transaction() as connection:
            elsewhere = connection.execute("SELECT 1 FROM source_sites WHERE week = ? AND site = ? AND quarantined = 0 "
                                           "LIMIT 1", (week, site)).fetchone()
            known = connection.execute("SELECT quarantined FROM source_sites WHERE week = ? AND source = ? AND site = ?",
                                       (week, source, site)).fetchone()
            if elsewhere is not None:
                verdict = SiteVerdict.COUNTED  # counted already: it takes no second slot (see the docstring)
            elif known is not None:
                verdict = SiteVerdict.QUARANTINED if known[0] else SiteVerdict.COUNTED
            else:
                (count,) = connection.execute("SELECT COUNT(*) FROM source_sites WHERE week = ? AND source = ?",
                                              (week, source)).fetchone()
                if count >= 2 * self.sites_per_week:
                    return SiteVerdict.DISCARDED  # nothing written: the commit changes nothing
                verdict = SiteVerdict.COUNTED if count < self.sites_per_week else SiteVerdict.QUARANTINED
                connection.execute("INSERT INTO source_sites VALUES (?, ?, ?, ?)",
                                   (week, source, site, int(verdict is SiteVerdict.QUARANTINED)))
            self._prune_when_due(connection, week)
        return verdict

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: ``BEGIN IMMEDIATE`` makes other processes wait for
        the file, the lock serialises this process's users of its one connection.
        Rolled back if the block raises, committed otherwise (also when it returns early)."""
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def prune(self, week: Optional[str] = None) -> None:
        """Drop buckets idle long enough to be full again, and past weeks' sites."""
        with self._lock:
            connection = self._connect()
            self._prune(connection, week)

    def _prune_when_due(self, connection: sqlite3.Connection, week: Optional[str]) -> None:
        if self.clock() >= self._next_prune:
            self._prune(connection, week)

    def _prune(self, connection: sqlite3.Connection, week: Optional[str]) -> None:
        now = self.clock()
        # a bucket refills in 60 s at most: idle that long, it limits nothing
        connection.execute("DELETE FROM buckets WHERE updated < ?", (now - 60.0,))
        if week is not None:
            connection.execute("DELETE FROM source_sites WHERE week < ?", (week,))
        self._next_prune = now + PRUNE_INTERVAL
