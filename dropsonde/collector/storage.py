"""Where the collector keeps reports: one row per site and week (its latest
report; superseded ones are deleted), in the BigQuery
table layout of ``dev schema`` (skeleton columns, then one column per metric,
list- and record-valued columns stored as JSON text), and, in the same
transaction, each site's latest report of each ISO week normalized into
narrow tables (``site_weeks`` and the ``site_week_*`` tables of
``normalize.py``) that the weekly SQL queries read.

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
import re
import sqlite3
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from dropsonde.collector.normalize import NARROW_TABLES, environment_count, iso_week, narrow_rows, week_range
from dropsonde.errors import DropsondeError
from dropsonde.wire import SKELETON

BATCH_LIMIT = 500


@dataclass
class _Pending:
    row: Dict[str, Any]
    done: threading.Event
    error: Optional[BaseException] = None


# Keep only a site's newest report of a week: the row is replaced when the new
# report is newer, and RETURNING yields its id only then (no row: an older
# report arrived late, and the narrow tables keep the newer one). The row lock
# this takes serializes two collectors storing the same site and week.
UPSERT_SITE_WEEK = (
    "INSERT INTO site_weeks (week, site_id, message_id, received, environment_count) VALUES (:week, :site_id, "
    ":message_id, :received, :environment_count) ON CONFLICT (week, site_id) DO UPDATE SET "
    "message_id = excluded.message_id, received = excluded.received, environment_count = excluded.environment_count "
    "WHERE excluded.received > site_weeks.received OR (excluded.received = site_weeks.received "
    "AND excluded.message_id > site_weeks.message_id) RETURNING id"
)
# Raw reports kept: each site's latest of each week, the one site_weeks points
# at. The others are deleted in the transaction that superseded them, so the
# store grows with sites x weeks, not with the reports a client sends.
DELETE_SUPERSEDED = (
    "DELETE FROM reports WHERE site_id = :site_id AND timestamp >= :start AND timestamp < :end AND message_id <> "
    "(SELECT message_id FROM site_weeks WHERE week = :week AND site_id = :site_id)"
)
NAMED_PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)\b")


class Store:
    """A report store: ``insert`` returns once the row is committed."""

    placeholder = "?"
    text_type = "TEXT"
    id_type = "INTEGER PRIMARY KEY"
    reference_type = "INTEGER"

    def __init__(self, metric_columns: Sequence[str], read_only: bool = False) -> None:
        self.read_only = read_only
        self.metric_columns = list(metric_columns)
        self.columns = list(SKELETON) + self.metric_columns
        self._queue: "queue.Queue[Optional[_Pending]]" = queue.Queue()
        self._writer: Optional[threading.Thread] = None

    # -- backend specifics --
    def connect(self) -> Any:
        raise NotImplementedError

    def create_schema(self, connection: Any) -> None:
        raise NotImplementedError

    def sql(self, statement: str) -> str:
        """``statement`` with ``:name`` parameters in this driver's style."""
        return statement

    def narrow_schema(self) -> List[str]:
        """CREATE statements of the normalized tables, in this backend's types."""
        text = self.text_type
        statements = [
            f"CREATE TABLE IF NOT EXISTS site_weeks (id {self.id_type}, week {text} NOT NULL, "
            f"site_id {text} NOT NULL, message_id {text} NOT NULL, received {text} NOT NULL, "
            "environment_count INTEGER, UNIQUE (week, site_id))"
        ]
        for table in NARROW_TABLES:
            columns = ", ".join(f"{c} INTEGER NOT NULL" if c in table.counts else f"{c} {text} NOT NULL"
                                for c in table.columns)
            keys = ", ".join(("week", "site_week") + table.keys)
            statements.append(f"CREATE TABLE IF NOT EXISTS {table.name} (week {text} NOT NULL, "
                              f"site_week {self.reference_type} NOT NULL, {columns}, PRIMARY KEY ({keys}))")
        return statements

    # -- shared --
    def open(self) -> "Store":
        if self.read_only:
            self._check_store()
            return self
        connection = self.connect()
        self.create_schema(connection)
        connection.close()
        self._normalize_earlier_reports()
        return self

    def _check_store(self) -> None:
        """A store opened read-only (by ``aggregate``) must be one the collector
        wrote: a mistyped or unmounted path is an error, not an empty store
        whose empty publication would replace the real one."""
        if not self._has_table("site_weeks"):
            raise DropsondeError("not a collector store (it has no site_weeks table)")

    def _has_table(self, name: str) -> bool:
        raise NotImplementedError

    def _has_rows(self, table: str) -> bool:
        """Without counting them: a million-row table answers as fast as an empty one."""
        return bool(list(self.query(f"SELECT 1 AS found FROM {table} LIMIT 1", {})))

    def _normalize_earlier_reports(self) -> None:
        """A store written before the narrow tables existed gets them filled
        once, from its reports, so its weeks can still be published. Two
        collectors doing it at once store nothing twice (the upsert keeps one)."""
        if self._has_rows("site_weeks") or not self._has_rows("reports"):
            return
        connection = self.connect()
        try:
            cursor = connection.cursor()
            for number, row in enumerate(self.query("SELECT * FROM reports", {}), start=1):
                for column in self.metric_columns:
                    if row.get(column) is not None:
                        row[column] = json.loads(row[column])
                self._normalize(cursor, row)
                if number % BATCH_LIMIT == 0:
                    connection.commit()
            connection.commit()
        finally:
            connection.close()

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
        cursor = connection.cursor()
        for row in rows:  # each stored before the next is normalized: a newer one may supersede it
            cursor.execute(statement, tuple(_cell(row.get(column)) for column in self.columns))
            self._normalize(cursor, row)

    def _normalize(self, cursor: Any, row: Dict[str, Any]) -> None:
        """Make ``row`` its site's report of the week in the narrow tables, if it
        is the newest, and keep only that week's newest raw report of the site."""
        week = iso_week(row["timestamp"])
        cursor.execute(self.sql(UPSERT_SITE_WEEK), {
            "week": week, "site_id": row["site_id"], "message_id": row["message_id"], "received": row["timestamp"],
            "environment_count": environment_count(row)})
        kept = cursor.fetchone()
        start, end = week_range(week)
        cursor.execute(self.sql(DELETE_SUPERSEDED), {"site_id": row["site_id"], "week": week, "start": start,
                                                     "end": end})
        if kept is None:
            return
        site_week = kept[0]
        mark = self.placeholder
        for name, values in narrow_rows(row).items():
            cursor.execute(f"DELETE FROM {name} WHERE week = {mark} AND site_week = {mark}", (week, site_week))
            if values:
                marks = ", ".join([mark] * (len(values[0]) + 2))
                columns = ", ".join(next(t for t in NARROW_TABLES if t.name == name).columns)
                cursor.executemany(f"INSERT INTO {name} (week, site_week, {columns}) VALUES ({marks})",
                                   [(week, site_week, *value) for value in values])

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

    def query(self, statement: str, parameters: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
        """Rows of a SELECT with ``:name`` parameters, streamed: memory does not grow with the result."""
        connection = self.connect()
        try:
            cursor = self._streaming_cursor(connection)
            cursor.execute(self.sql(statement), parameters)
            names = [column[0] for column in cursor.description]
            for record in cursor:
                yield dict(zip(names, record))
        finally:
            connection.close()

    def _streaming_cursor(self, connection: Any) -> Any:
        return connection.cursor()

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
    def __init__(self, path: str, metric_columns: Sequence[str], read_only: bool = False) -> None:
        super().__init__(metric_columns, read_only)
        self.path = path

    def open(self) -> "Store":
        if self.read_only:
            if not os.path.isfile(self.path):
                raise DropsondeError(f"--db {self.path}: no such store (aggregate never creates one)")
        else:
            _make_private(self.path)
        return super().open()

    def connect(self) -> sqlite3.Connection:
        if self.read_only:  # SQLite's mode=ro: this connection cannot create or change anything
            uri = f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=ro"
            return sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
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
        connection.execute("CREATE INDEX IF NOT EXISTS reports_by_site ON reports (site_id, timestamp)")
        for statement in self.narrow_schema():
            connection.execute(statement)
        connection.commit()


    def _has_table(self, name: str) -> bool:
        connection = self.connect()
        try:
            found = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
            return found.fetchone() is not None
        finally:
            connection.close()


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
    # Byte order, as SQLite compares text: the queries' ORDER BY and slug_a < slug_b
    # then give the same rows on both, whatever the database's locale.
    text_type = 'TEXT COLLATE "C"'
    id_type = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    reference_type = "BIGINT"

    def __init__(self, url: str, metric_columns: Sequence[str], read_only: bool = False) -> None:
        super().__init__(metric_columns, read_only)
        self.url = url

    def connect(self) -> Any:
        import psycopg

        if self.read_only:  # every transaction of this session is read-only
            return psycopg.connect(self.url, options="-c default_transaction_read_only=on")
        return psycopg.connect(self.url)

    def _has_table(self, name: str) -> bool:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
                return bool(cursor.fetchone()[0])
        finally:
            connection.close()

    def create_schema(self, connection: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS reports (message_id TEXT PRIMARY KEY, site_id TEXT NOT NULL, "
                "product TEXT NOT NULL, version TEXT NOT NULL, timestamp TEXT NOT NULL, ip TEXT)"
            )
            for column in self.metric_columns:
                cursor.execute(f'ALTER TABLE reports ADD COLUMN IF NOT EXISTS "{column}" TEXT')
            cursor.execute("CREATE INDEX IF NOT EXISTS reports_by_time ON reports (timestamp)")
            cursor.execute("CREATE INDEX IF NOT EXISTS reports_by_site ON reports (site_id, timestamp)")
            for statement in self.narrow_schema():
                cursor.execute(statement)
        connection.commit()

    def sql(self, statement: str) -> str:
        return NAMED_PARAMETER.sub(r"%(\1)s", statement.replace("%", "%%"))

    def _streaming_cursor(self, connection: Any) -> Any:
        """A server-side cursor: PostgreSQL sends the rows in batches as they are read."""
        cursor = connection.cursor(name="dropsonde_query")
        cursor.itersize = 2000
        return cursor


def open_store(db: str, metric_columns: Sequence[str], read_only: bool = False) -> Store:
    """The store named by ``--db``: a PostgreSQL URL, or a SQLite file path;
    ``read_only`` for one that must exist already and is only read. A store
    that cannot be opened is one clear line naming it (without a password the
    URL may hold), not a driver's traceback."""
    if db.startswith(("postgresql://", "postgres://")):
        import psycopg

        shown = db.split("://", 1)[0] + "://" + db.rsplit("@", 1)[-1]
        try:
            return PostgresStore(db, metric_columns, read_only).open()
        except psycopg.Error as exc:
            raise DropsondeError(f"--db {shown}: {str(exc).splitlines()[0][:200]}") from None
        except DropsondeError as exc:
            raise DropsondeError(f"--db {shown}: {exc}") from None
    try:
        return SQLiteStore(db, metric_columns, read_only).open()
    except (OSError, sqlite3.Error) as exc:
        raise DropsondeError(f"--db {db}: cannot open the store: {getattr(exc, 'strerror', None) or exc}") from None
    except DropsondeError as exc:
        message = str(exc)
        raise DropsondeError(message if message.startswith("--db") else f"--db {db}: {message}") from None
