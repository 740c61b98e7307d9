"""Where the collector keeps reports: one row per report, in the BigQuery
table layout of ``dev schema`` (skeleton columns, then one column per metric,
list- and record-valued columns stored as JSON text).

Embedded SQLite by default: it is in Python's standard library, a single file
to back up, and with write-ahead logging and ``synchronous=FULL`` a commit is
on disk when it returns. PostgreSQL (``postgresql://...``) when several
collector processes or hosts share one store.

Durability without one fsync per report: request threads hand rows to a
single writer thread, which commits whatever has queued up in one
transaction and only then lets each request answer 200 (group commit).
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

SKELETON = ("message_id", "site_id", "product", "version", "timestamp", "ip")
BATCH_LIMIT = 500


@dataclass
class _Pending:
    row: Dict[str, Any]
    done: threading.Event
    error: Optional[BaseException] = None


class Store:
    """A report store: ``insert`` returns once the row is committed."""

    placeholder = "?"

    def __init__(self, metric_columns: Sequence[str]) -> None:
        self.metric_columns = list(metric_columns)
        self.columns = list(SKELETON) + self.metric_columns
        self._queue: "queue.Queue[Optional[_Pending]]" = queue.Queue()
        self._writer: Optional[threading.Thread] = None

    # -- backend specifics --
    def connect(self) -> Any:
        raise NotImplementedError

    def create_schema(self, connection: Any) -> None:
        raise NotImplementedError

    # -- shared --
    def open(self) -> "Store":
        connection = self.connect()
        self.create_schema(connection)
        connection.close()
        return self

    def start_writer(self) -> None:
        """Start the group-commit writer (the server calls this; loading does not need it)."""
        self._writer = threading.Thread(target=self._write_loop, name="dropsonde-collector-writer", daemon=True)
        self._writer.start()

    def insert(self, row: Dict[str, Any], timeout: float = 30.0) -> None:
        """Queue ``row`` for the writer and wait until it is committed; raises what the commit raised."""
        pending = _Pending(row, threading.Event())
        self._queue.put(pending)
        if not pending.done.wait(timeout):
            raise TimeoutError("the store did not commit in time")
        if pending.error is not None:
            raise pending.error

    def insert_many(self, rows: List[Dict[str, Any]]) -> None:
        """Commit ``rows`` in one transaction from the calling thread (bulk loading)."""
        connection = self.connect()
        try:
            self._insert(connection, rows)
            connection.commit()
        finally:
            connection.close()

    def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=30)

    def _insert(self, connection: Any, rows: List[Dict[str, Any]]) -> None:
        names = ", ".join(f'"{c}"' for c in self.columns)
        marks = ", ".join([self.placeholder] * len(self.columns))
        statement = f"INSERT INTO reports ({names}) VALUES ({marks})"
        values = [tuple(_cell(row.get(column)) for column in self.columns) for row in rows]
        cursor = connection.cursor()
        cursor.executemany(statement, values)

    def _write_loop(self) -> None:
        connection = self.connect()
        while True:
            first = self._queue.get()
            if first is None:
                break
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
            try:
                self._insert(connection, [p.row for p in batch])
                connection.commit()
            except Exception:  # noqa: BLE001 - one bad row must not fail the others: retry one by one
                connection.rollback()
                for pending in batch:
                    self._insert_alone(connection, pending)
            for pending in batch:
                pending.done.set()
        connection.close()

    def _insert_alone(self, connection: Any, pending: _Pending) -> None:
        try:
            self._insert(connection, [pending.row])
            connection.commit()
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            connection.rollback()
            pending.error = exc

    def latest_per_site(self, start: str, end: str) -> Iterator[Dict[str, Any]]:
        """Each site's latest report received in [start, end), metric columns decoded."""
        names = ", ".join(f'"{c}"' for c in ["site_id"] + self.metric_columns)
        statement = (
            f"SELECT {names} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY site_id "
            f"ORDER BY timestamp DESC, message_id DESC) AS rank FROM reports "
            f"WHERE timestamp >= {self.placeholder} AND timestamp < {self.placeholder}) AS ranked WHERE rank = 1"
        )
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(statement, (start, end))
            for record in cursor:
                row = {"site_id": record[0]}
                for column, value in zip(self.metric_columns, record[1:]):
                    row[column] = json.loads(value) if value is not None else None
                yield row
        finally:
            connection.close()

    def count(self) -> Tuple[int, int]:
        """(reports, distinct message ids): equal unless something was stored twice."""
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT COUNT(*), COUNT(DISTINCT message_id) FROM reports")
            total, distinct = cursor.fetchone()
            return int(total), int(distinct)
        finally:
            connection.close()


def _cell(value: Any) -> Any:
    """Skeleton values as they are; metric values as JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class SQLiteStore(Store):
    def __init__(self, path: str, metric_columns: Sequence[str]) -> None:
        super().__init__(metric_columns)
        self.path = path

    def open(self) -> "Store":
        _make_private(self.path)
        return super().open()

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    def create_schema(self, connection: sqlite3.Connection) -> None:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS reports (message_id TEXT PRIMARY KEY, site_id TEXT NOT NULL, "
            "product TEXT NOT NULL, version TEXT NOT NULL, timestamp TEXT NOT NULL, ip TEXT)"
        )
        existing = {row[1] for row in connection.execute("PRAGMA table_info(reports)")}
        for column in self.metric_columns:
            if column not in existing:
                connection.execute(f'ALTER TABLE reports ADD COLUMN "{column}" TEXT')
        connection.execute("CREATE INDEX IF NOT EXISTS reports_by_time ON reports (timestamp)")
        connection.commit()


def _make_private(path: str) -> None:
    """Reports are private: the database file is created 0600 before SQLite
    opens it (SQLite gives its -wal and -shm files the database file's mode),
    and a store left readable by others is tightened."""
    if path == ":memory:":
        return
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            pass


class PostgresStore(Store):
    placeholder = "%s"

    def __init__(self, url: str, metric_columns: Sequence[str]) -> None:
        super().__init__(metric_columns)
        self.url = url

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url)

    def create_schema(self, connection: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS reports (message_id TEXT PRIMARY KEY, site_id TEXT NOT NULL, "
                "product TEXT NOT NULL, version TEXT NOT NULL, timestamp TEXT NOT NULL, ip TEXT)"
            )
            for column in self.metric_columns:
                cursor.execute(f'ALTER TABLE reports ADD COLUMN IF NOT EXISTS "{column}" TEXT')
            cursor.execute("CREATE INDEX IF NOT EXISTS reports_by_time ON reports (timestamp)")
        connection.commit()


def open_store(db: str, metric_columns: Sequence[str]) -> Store:
    """The store named by ``--db``: a PostgreSQL URL, or a SQLite file path."""
    if db.startswith(("postgresql://", "postgres://")):
        return PostgresStore(db, metric_columns).open()
    return SQLiteStore(db, metric_columns).open()
