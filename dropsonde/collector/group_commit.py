"""Durability without one fsync per report: request threads hand rows to a
single writer thread, which commits whatever has queued up in one
transaction and only then lets each request answer (group commit).

The writer outlives its database: a connection that cannot be opened, or
that the server dropped (a PostgreSQL restart), fails the batch in hand at
once — each waiting request gets :class:`StoreUnavailable` and answers 503,
so its client retries — and the next batch opens a new connection. A
request is answered 200 only after its row's commit returned.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from dropsonde.collector.sql_dialect import Dialect

BATCH_LIMIT = 500
log = logging.getLogger(__name__)

Row = Dict[str, Any]


class StoreUnavailable(Exception):
    """The database could not be reached: the report was not stored, and may be sent again."""


@dataclass
class _Pending:
    row: Row
    done: threading.Event
    error: Optional[BaseException] = None


class GroupCommitWriter:
    """The writer thread of one process: ``submit`` returns once the row is committed."""

    def __init__(self, dialect: Dialect, write: Callable[[Any, List[Row]], None]) -> None:
        self.dialect = dialect
        self.write = write
        self._queue: "queue.Queue[Optional[_Pending]]" = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._down = False  # the last batch found the database unreachable (logged once per outage)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dropsonde-collector-writer", daemon=True)
        self._thread.start()

    def submit(self, row: Row, timeout: float = 30.0) -> None:
        """Queue ``row`` and wait until it is committed; raises what the commit raised."""
        pending = _Pending(row, threading.Event())
        self._queue.put(pending)
        if not pending.done.wait(timeout):
            raise TimeoutError("the store did not commit in time")
        if pending.error is not None:
            raise pending.error

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def _loop(self) -> None:
        connection: Optional[Any] = None
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            try:
                connection = self._commit(connection, batch)
            except BaseException as exc:  # noqa: BLE001 - the thread must outlive any one batch
                log.error("the store's writer failed a batch: %s", _first_line(exc))
                for pending in batch:
                    pending.error = pending.error or exc
            for pending in batch:
                pending.done.set()
        if connection is not None:
            _close_quietly(connection)

    def _next_batch(self) -> Optional[List[_Pending]]:
        """Whatever has queued up, at least one row (waits for it); None to stop."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < BATCH_LIMIT:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _commit(self, connection: Optional[Any], batch: List[_Pending]) -> Optional[Any]:
        """Commit ``batch``; the connection to use next (None: open a new one).
        A connection found dead is replaced once, at once: after a restart of
        the database the first batch should not fail for the old connection."""
        for attempt in (1, 2):
            if connection is None:
                try:
                    connection = self.dialect.connect()
                except Exception as exc:  # noqa: BLE001 - every waiting request is told
                    self._unavailable(batch, exc)
                    return None
            try:
                self.write(connection, [p.row for p in batch])
                connection.commit()
            except Exception as exc:  # noqa: BLE001 - sorted out below
                if self.dialect.is_lost(connection):
                    _close_quietly(connection)
                    connection = None
                    if attempt == 2:
                        self._unavailable(batch, exc)
                    continue
                _rollback_quietly(connection)
                return self._one_by_one(connection, batch)
            self._up()
            return connection
        return None

    def _one_by_one(self, connection: Any, batch: List[_Pending]) -> Optional[Any]:
        """One bad row (a duplicate message id) must not fail the others."""
        for number, pending in enumerate(batch):
            try:
                self.write(connection, [pending.row])
                connection.commit()
            except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                if self.dialect.is_lost(connection):
                    _close_quietly(connection)
                    self._unavailable(batch[number:], exc)
                    return None
                _rollback_quietly(connection)
                pending.error = exc
        return connection

    def _unavailable(self, batch: List[_Pending], exc: BaseException) -> None:
        if not self._down:
            log.error("store %s unreachable: %s", self.dialect.shown, _first_line(exc))
        self._down = True
        for pending in batch:
            pending.error = StoreUnavailable(f"the store is unreachable ({_first_line(exc)})")

    def _up(self) -> None:
        if self._down:
            log.warning("store %s reachable again", self.dialect.shown)
        self._down = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _rollback_quietly(connection: Any) -> None:
    try:
        connection.rollback()
    except Exception:  # noqa: BLE001 - a connection that cannot roll back is replaced by the next batch
        pass


def _close_quietly(connection: Any) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - it is being dropped anyway
        pass
