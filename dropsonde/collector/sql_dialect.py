"""What differs between the two databases the store runs on: how to connect
(read-only or not), column types, parameter style, streaming reads, and how
a lost connection shows.

Embedded SQLite by default: it is in Python's standard library, a single file
to back up, and with write-ahead logging and ``synchronous=FULL`` a commit is
on disk when it returns. PostgreSQL (``postgresql://...``) when several
collector processes or hosts share one store.

Everything else (the tables, the writes, the writer thread) is written once,
against :class:`Dialect`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import urllib.parse
from abc import ABC, abstractmethod
from typing import Any, Callable, List, Set

NAMED_PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)\b")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
#: seconds a PostgreSQL connection attempt may take: a store that is down is
#: reported to the waiting request promptly, not after the kernel's TCP timeout
CONNECT_TIMEOUT = 5
#: SQLite virtual-machine instructions between two checks of a query's interruption (well under 1 ms)
PROGRESS_STEPS = 10_000


class Dialect(ABC):
    """One database's specifics. Abstract: a store is always SQLite or PostgreSQL."""

    placeholder = "?"
    text_type = "TEXT"
    id_type = "INTEGER PRIMARY KEY"
    reference_type = "INTEGER"

    def __init__(self, read_only: bool = False) -> None:
        self.read_only = read_only

    @property
    @abstractmethod
    def shown(self) -> str:
        """The store's name as messages and logs show it (never a password)."""

    @abstractmethod
    def connect(self) -> Any:
        """A new DB-API connection (read-only when the store is)."""

    @abstractmethod
    def has_table(self, connection: Any, name: str) -> bool:
        """Whether the store holds table ``name``."""

    @abstractmethod
    def add_column(self, connection: Any, table: str, column: str) -> None:
        """Add TEXT column ``column`` to ``table`` unless it has it."""

    @abstractmethod
    def writer(self) -> "Dialect":
        """The same store, opened for writing (``aggregate`` reads read-only and
        appends to the release ledger through this one)."""

    @abstractmethod
    def append_only(self, table: str) -> List[str]:
        """Statements making the database itself refuse UPDATE and DELETE (and
        TRUNCATE) of ``table``'s rows: idempotent, run with the table's CREATE."""

    def insert_only(self, connection: Any, table: str) -> None:
        """Confine ``connection`` to reading and INSERT into ``table``, where the
        database can (SQLite's authorizer); elsewhere the code's only statement
        on it is that INSERT."""

    @abstractmethod
    def column_names(self, connection: Any, table: str) -> Set[str]:
        """The columns of ``table`` (an earlier release's layout shows in them)."""

    def prepare(self) -> None:
        """Before the first connection of a writer (SQLite: the file's mode)."""

    def sql(self, statement: str) -> str:
        """``statement`` with ``:name`` parameters in this driver's style."""
        return statement

    def streaming_cursor(self, connection: Any) -> Any:
        """A cursor whose rows arrive as they are read, not all at once."""
        return connection.cursor()

    def is_lost(self, connection: Any) -> bool:
        """Whether ``connection`` can no longer be used (the server went away):
        the writer then opens a new one instead of retrying on a dead one."""
        return False

    def interrupt_when(self, connection: Any, interrupted: Callable[[], bool]) -> None:
        """Make ``connection``'s statements stop when ``interrupted()`` becomes true
        (a SIGTERM during a long query). Without support: they run to the end."""


class SQLiteDialect(Dialect):
    def __init__(self, path: str, read_only: bool = False) -> None:
        super().__init__(read_only)
        self.path = path

    @property
    def shown(self) -> str:
        return redact_url(self.path)  # a libpq key=value string mistaken for a path

    def writer(self) -> "SQLiteDialect":
        return SQLiteDialect(self.path)

    def append_only(self, table: str) -> List[str]:
        return [f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: a row is never {done}'); END"
                for verb, done in (("UPDATE", "updated"), ("DELETE", "deleted"))]

    def insert_only(self, connection: Any, table: str) -> None:
        """SQLite asks the authorizer about every statement as it is prepared: reads
        and INSERT into ``table`` pass, anything else (UPDATE, DELETE, DDL, PRAGMA,
        ATTACH) fails to prepare."""
        allowed = {sqlite3.SQLITE_READ, sqlite3.SQLITE_SELECT, sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_FUNCTION}

        def authorize(action: int, first: Any, second: Any, database: Any, source: Any) -> int:
            if action in allowed or (action == sqlite3.SQLITE_INSERT and first == table):
                return sqlite3.SQLITE_OK
            return sqlite3.SQLITE_DENY

        connection.set_authorizer(authorize)

    def prepare(self) -> None:
        make_private(self.path)

    def connect(self) -> sqlite3.Connection:
        if self.read_only:  # SQLite's mode=ro: this connection cannot create or change anything
            uri = f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=ro"
            return sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: with WAL, NORMAL may lose the last commits on power loss, and a
        # report answered 200 must be on disk.
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    def interrupt_when(self, connection: Any, interrupted: Callable[[], bool]) -> None:
        # SQLite calls the handler every N virtual-machine instructions; non-zero aborts the statement
        connection.set_progress_handler(lambda: int(interrupted()), PROGRESS_STEPS)

    def has_table(self, connection: Any, name: str) -> bool:
        found = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return found.fetchone() is not None

    def add_column(self, connection: Any, table: str, column: str) -> None:
        if column not in self.column_names(connection, table):
            connection.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" TEXT')

    def column_names(self, connection: Any, table: str) -> Set[str]:
        return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


def make_private(path: str) -> None:
    """Reports are private: the database file is created 0600 before SQLite
    opens it (SQLite gives its -wal and -shm files the database file's mode),
    and a store left readable by others is tightened."""
    if path == ":memory:":
        return
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        try:
            if stat.S_IMODE(os.stat(name).st_mode) & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            pass


class PostgresDialect(Dialect):
    placeholder = "%s"
    # Byte order, as SQLite compares text: the queries' ORDER BY and slug_a < slug_b
    # then give the same rows on both, whatever the database's locale.
    text_type = 'TEXT COLLATE "C"'
    id_type = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    reference_type = "BIGINT"

    def __init__(self, url: str, read_only: bool = False) -> None:
        super().__init__(read_only)
        self.url = url

    @property
    def shown(self) -> str:
        return redact_url(self.url)

    def writer(self) -> "PostgresDialect":
        return PostgresDialect(self.url)

    def append_only(self, table: str) -> List[str]:
        """A trigger function raising on UPDATE, DELETE and TRUNCATE (which row
        triggers do not see), created once: ``CREATE TRIGGER`` has no ``IF NOT
        EXISTS`` before PostgreSQL 14."""
        function = f"{table}_append_only"
        return [f"""DO $do$ BEGIN
IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{function}' AND tgrelid = '{table}'::regclass) THEN
  CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN RAISE EXCEPTION '{table} is append-only: % refused', TG_OP; END $fn$;
  CREATE TRIGGER {function} BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {function}();
  CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}();
END IF; END $do$"""]

    def connect(self) -> Any:
        import psycopg

        options = "-c default_transaction_read_only=on" if self.read_only else ""
        return psycopg.connect(self.url, options=options, connect_timeout=CONNECT_TIMEOUT)

    def has_table(self, connection: Any, name: str) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
            return bool(cursor.fetchone()[0])

    def add_column(self, connection: Any, table: str, column: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{column}" TEXT')

    def column_names(self, connection: Any, table: str) -> Set[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                           "AND table_name = %s", (table,))
            return {str(row[0]) for row in cursor.fetchall()}

    def sql(self, statement: str) -> str:
        return NAMED_PARAMETER.sub(r"%(\1)s", statement.replace("%", "%%"))

    def streaming_cursor(self, connection: Any) -> Any:
        """A server-side cursor: PostgreSQL sends the rows in batches as they are read."""
        cursor = connection.cursor(name="dropsonde_query")
        cursor.itersize = 2000
        return cursor

    def is_lost(self, connection: Any) -> bool:
        return bool(connection.closed or connection.broken)


def redact_url(url: str) -> str:
    """What errors and logs show of a store: for a ``postgresql://`` URL, only
    the user, host, port and database **as libpq parses the URL** (psycopg's
    ``conninfo_to_dict`` calls libpq's own parser), rebuilt — never the text
    given, so no spelling of a password can reach the output: a ``#`` or ``?``
    in a password is part of it for libpq (which ends the user part only at
    ``@`` or ``/``), not the end of the authority, as a regular expression of
    ours had it (outside review F2: ``hunter#SECRET1`` was shown whole). A
    password, given in any place, is shown as ``***``; other parameters as
    ``?***``. A part that is not plainly a name or a number (the URL was not
    what its writer meant: ``u:pa/ss@h`` is host ``u``, port ``pa``) is shown
    as ``?``; a URL whose user part holds an unencoded ``@`` or ``/`` (the
    rest of a password would be shown as the host) and one libpq cannot
    parse are not shown at all. Text that is
    no URL but holds ``password=`` (a libpq ``key=value`` string given where
    a SQLite path is expected) has every such value hidden."""
    if not url.startswith(POSTGRES_SCHEMES):
        return _DSN_PASSWORD_RE.sub(r"\1***", url)
    scheme, _, rest = url.partition("://")
    if rest.count("@") > 1 or ("@" in rest and "/" in rest[:rest.rfind("@")]):
        # libpq ends the user part at the first '@' or '/', so whatever follows
        # (shown as host, port or database) may be the rest of a password
        return f"{scheme}://<ambiguous: percent-encode '@' and '/' in the user part>"
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = {key: str(value) for key, value in conninfo_to_dict(url).items()}
    except Exception:  # noqa: BLE001 - no libpq, or it cannot parse the URL: show nothing of it
        return f"{scheme}://<unparseable>"
    user = _shown(parts.pop("user", ""), _NAME_RE)
    password = ":***" if parts.pop("password", None) is not None else ""
    host = _shown(parts.pop("host", ""), _HOST_RE)
    host = f"[{host}]" if ":" in host else host
    port = _shown(parts.pop("port", ""), _PORT_RE)
    dbname = _shown(parts.pop("dbname", ""), _NAME_RE)
    return (f"{scheme}://{user + password + '@' if user or password else ''}{host}{':' + port if port else ''}"
            f"{'/' + dbname if dbname else ''}{'?***' if parts else ''}")


def _shown(value: str, plain: "re.Pattern[str]") -> str:
    """``value`` if it is plainly a name, host or port, else ``?``."""
    return value if not value or plain.fullmatch(value) else "?"


_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,63}")
_HOST_RE = re.compile(r"[A-Za-z0-9_.:,-]{1,255}")
_PORT_RE = re.compile(r"[0-9,]{1,40}")
# libpq's key=value form: a value is a quoted string or runs to the next blank.
_DSN_PASSWORD_RE = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)", re.IGNORECASE)


def dialect_for(db: str, read_only: bool = False) -> Dialect:
    """The dialect of a store named by a PostgreSQL URL or a SQLite file path."""
    if db.startswith(POSTGRES_SCHEMES):
        return PostgresDialect(db, read_only)
    return SQLiteDialect(db, read_only)
