"""Where the collector keeps reports, as the rest of the collector sees it:
open a store, hand it rows, read it with SQL.

The parts live beside this module, one concern each: the two databases'
differences (``sql_dialect``), the tables (``store_schema``), how a report
is written and normalized (``report_upsert``), the group-commit writer thread
(``group_commit``) and the update of stores from earlier releases
(``store_migration``).
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from dropsonde.collector import quarantine
from dropsonde.collector.allowlist import Allowlist
from dropsonde.collector.group_commit import GroupCommitWriter, Row, StoreUnavailable
from dropsonde.collector.report_upsert import write_reports
from dropsonde.collector.sql_dialect import Dialect, SQLiteDialect, dialect_for, redact_url
from dropsonde.collector.store_migration import (check_kept_reports, fill_new_tables, migrate, migrate_quarantine,
                                                 missing_tables, owe_fills, refuse_unchecked)
from dropsonde.collector.store_schema import create_tables
from dropsonde.errors import BadInput, DropsondeError, ExitStatus
from dropsonde.wire import SKELETON
from dropsonde.wire_columns import REPORT_COLUMNS

__all__ = ["Store", "StoreError", "StoreUnavailable", "open_store", "connect_store"]


class StoreError(DropsondeError):
    """A store that cannot be opened: ``store`` names it (without a password),
    ``reason`` says why; the CLI phrases it with its own option name, as a
    Failure, or a BadInput when ``status`` says the name was wrong."""

    def __init__(self, store: str, reason: str, status: ExitStatus = ExitStatus.FAILURE) -> None:
        super().__init__(f"store {store}: {reason}")
        self.store = store
        self.reason = reason
        self.status = status


Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Store:
    """A report store: ``insert`` returns once the row is committed.
    ``allowlist``: what an earlier release's reports are migrated through
    (none: such a store is refused); ``clock``: when quarantined reports are
    old enough to prune."""

    def __init__(self, dialect: Dialect, metric_columns: Sequence[str], allowlist: Optional[Allowlist] = None,
                 clock: Clock = _utc_now) -> None:
        if not isinstance(dialect, Dialect):
            raise TypeError(f"a Store needs a Dialect, not {type(dialect).__name__}")
        self.dialect = dialect
        self.read_only = dialect.read_only
        self.metric_columns = list(metric_columns)
        self.columns = list(SKELETON) + self.metric_columns
        self.allowlist = allowlist
        self.clock = clock
        self._writer: Optional[GroupCommitWriter] = None
        self._next_prune: Optional[datetime] = None

    def open(self) -> "Store":
        """A writer's store: its file private, its tables created or completed,
        an earlier release's store migrated. A read-only one must already be a
        collector's store: a mistyped or unmounted path is an error, not an empty
        store whose empty publication would replace the real one."""
        if self.read_only:
            if not self._has_table("site_weeks"):
                raise BadInput("not a collector store (it has no site_weeks table)")
            return self
        self.dialect.prepare()
        connection = self.connect()
        try:
            refuse_unchecked(self.dialect, connection, self.allowlist)
            owe_fills(self.dialect, connection, missing_tables(self.dialect, connection))
            create_tables(self.dialect, connection, self.metric_columns)
            migrate_quarantine(self.dialect, connection, self.query)
        finally:
            connection.close()
        migrate(self.dialect, self.query, self.metric_columns, self.allowlist)
        check_kept_reports(self.dialect, self.query, self.metric_columns, self.allowlist)
        fill_new_tables(self.dialect, self.query, self.metric_columns)
        self.prune()
        return self

    def connect(self) -> Any:
        return self.dialect.connect()

    def _has_table(self, name: str) -> bool:
        connection = self.connect()
        try:
            return self.dialect.has_table(connection, name)
        finally:
            connection.close()

    def _write(self, connection: Any, rows: Iterable[Row]) -> None:
        """Write ``rows`` in the caller's transaction, and prune the quarantine when due."""
        write_reports(self.dialect, connection, self.columns, rows)
        now = self.clock()
        if self._next_prune is None or now >= self._next_prune:
            quarantine.prune(self.dialect, connection.cursor(), now)
            self._next_prune = now + quarantine.PRUNE_INTERVAL

    def prune(self) -> None:
        """Delete the quarantined reports of weeks no longer kept (``quarantine.py``)."""
        connection = self.connect()
        try:
            quarantine.prune(self.dialect, connection.cursor(), self.clock())
            connection.commit()
        finally:
            connection.close()

    def start_writer(self) -> None:
        """Start the group-commit writer (the server calls this; loading does not need it)."""
        self._writer = GroupCommitWriter(self.dialect, self._write)
        self._writer.start()

    def insert(self, row: Row, timeout: float = 30.0) -> None:
        """Hand ``row`` to the writer and wait until it is committed; raises what
        the commit raised (:class:`StoreUnavailable` when the database is down)."""
        if self._writer is None:
            raise RuntimeError("start_writer() first")
        self._writer.submit(row, timeout)

    def insert_many(self, rows: Iterable[Row]) -> None:
        """Commit ``rows`` in one transaction from the calling thread (bulk
        loading); nothing of them when reading them raises."""
        connection = self.connect()
        try:
            self._write(connection, rows)
            connection.commit()
        finally:
            connection.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def query(self, statement: str, parameters: Dict[str, Any],
              interrupted: Optional[Callable[[], bool]] = None) -> Iterator[Dict[str, Any]]:
        """Rows of a SELECT with ``:name`` parameters, streamed: memory does not grow
        with the result. ``interrupted`` is asked now and then while the database
        works (SQLite); True stops the query with the driver's error."""
        connection = self.connect()
        try:
            if interrupted is not None:
                self.dialect.interrupt_when(connection, interrupted)
            cursor = self.dialect.streaming_cursor(connection)
            cursor.execute(self.dialect.sql(statement), parameters)
            names = [column[0] for column in cursor.description]
            for record in cursor:
                yield dict(zip(names, record))
        finally:
            connection.close()

    def count(self) -> int:
        """How many reports the store holds (one per site and week: a newer report
        replaces its site's; ``message_id`` is the key, so none is held twice)."""
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT COUNT(*) FROM reports")
            (total,) = cursor.fetchone()
            return int(total)
        finally:
            connection.close()


def connect_store(db: str, metric_columns: Optional[Sequence[str]] = None) -> Store:
    """A store already opened by :func:`open_store` (a server worker's): no
    connection is made until the first report, so a worker starts even while
    the database is down, and answers 503 until it is back."""
    return Store(dialect_for(db), list(REPORT_COLUMNS) if metric_columns is None else metric_columns)


def open_store(db: str, metric_columns: Optional[Sequence[str]] = None, read_only: bool = False,
               allowlist: Optional[Allowlist] = None, clock: Clock = _utc_now) -> Store:
    """The store ``db`` names: a PostgreSQL URL, or a SQLite file path, holding
    ``metric_columns`` (default: the report's, :data:`dropsonde.wire_columns.REPORT_COLUMNS`);
    ``read_only`` for one that must exist already and is only read;
    ``allowlist`` the one serve starts with (an earlier release's reports are
    migrated through it, and without one not at all); ``clock`` the time
    quarantined reports are pruned by. A store
    that cannot be opened is a :class:`StoreError`, one line naming it without
    the password its URL may hold, not a driver's traceback."""
    dialect = dialect_for(db, read_only)
    store = Store(dialect, list(REPORT_COLUMNS) if metric_columns is None else metric_columns, allowlist, clock)
    if isinstance(dialect, SQLiteDialect):
        return _open_sqlite(store, dialect)
    import psycopg

    try:
        return store.open()
    except psycopg.Error as exc:
        raise StoreError(dialect.shown, scrubbed(str(exc).strip().splitlines()[0][:200] if str(exc).strip()
                                                  else type(exc).__name__, db)) from None
    except DropsondeError as exc:
        raise StoreError(dialect.shown, scrubbed(str(exc), db), _status(exc)) from None


def _open_sqlite(store: Store, dialect: SQLiteDialect) -> Store:
    import os

    if dialect.read_only and not os.path.isfile(dialect.path):
        raise StoreError(dialect.shown, "no such store (aggregate never creates one)", ExitStatus.USAGE)
    try:
        return store.open()
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(dialect.shown, f"cannot open the store: {getattr(exc, 'strerror', None) or exc}") from None
    except DropsondeError as exc:
        raise StoreError(dialect.shown, str(exc), _status(exc)) from None


def _status(error: DropsondeError) -> ExitStatus:
    """What a store's own refusal was: bad input (not a collector store) or a failure."""
    if isinstance(error, StoreError):
        return error.status
    return ExitStatus.USAGE if isinstance(error, BadInput) else ExitStatus.FAILURE


def scrubbed(message: str, url: str) -> str:
    """``message`` without the password ``url`` holds, wherever a driver echoed it
    (also for the release ledger's errors)."""
    shown = redact_url(url)
    message = message.replace(url, shown)
    user = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    secrets = [user.partition(":")[2]]
    query = url.partition("?")[2]
    secrets += [value for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True) if key == "password"]
    for secret in secrets:
        for spelling in {secret, urllib.parse.quote(secret), urllib.parse.unquote(secret)} - {""}:
            message = message.replace(spelling, "***")
    return message
