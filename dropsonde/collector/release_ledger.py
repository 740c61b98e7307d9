"""The release ledger: which weeks a store released, under which release
context and noise key, and the released tables a rerun re-serves — kept in
the store itself, in the ``release_ledger`` table.

OpenDP draws its noise from the operating system's CSPRNG and cannot be
seeded, so a week cannot be redrawn to the same numbers. Instead a week is
released **once** per release context (every parameter that changes what is
released, and the noise key's fingerprint): the released, post-processed
tables are appended here before they are published, and running
``aggregate`` for that week again re-serves them — a rerun, a retry, a daily
cron job or a lost output directory cost no privacy. A week asked for with
another context is refused unless forced, and a forced release is appended
with what it spent: the week's budget is then the sum of its releases.

Why in the store: earlier versions kept these records as files beside the
store (or beside the noise key of a PostgreSQL store), so a copy of the store
without them, a deleted directory or a fresh key path released a week again
with fresh noise, and averaging two releases undoes the noise. Rows of the
store go wherever the store goes. They are only ever appended: ``aggregate``
appends through a connection that may only INSERT into this table (SQLite's
authorizer; with PostgreSQL the only statement it sends on it), and the
database's own triggers refuse UPDATE and DELETE of a row (and TRUNCATE), so
neither a bug nor a careless command rewrites the history. Whoever owns the
database can still drop the triggers or the table: the ledger protects
against accidents, copies and lost files, not against the store's owner.

The rows are also the trends' history: each week's published ``modules``
rows, whatever happened to the output directory since.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Type

from dropsonde.collector.sql_dialect import Dialect, PostgresDialect, SQLiteDialect
from dropsonde.collector.storage import Store, scrubbed
from dropsonde.collector.store_schema import LEDGER_TABLE, ledger_statements
from dropsonde.errors import DropsondeError

log = logging.getLogger(__name__)
COLUMNS = ("week", "number", "context", "noise_key", "released_at", "forced", "complete", "parameters",
           "released_tables", "mechanisms", "spent", "source")
INSERT = (f"INSERT INTO {LEDGER_TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})")
# An earlier version's file ledger: DIR/YYYY-Www.json (format 1) and DIR/weeks.log.
FILE_RECORD = re.compile(r"^(\d{4}-W\d{2})\.json$")
FILE_FORMAT = 1


class LedgerError(DropsondeError):
    """The ledger cannot be read or appended to: ``subject`` names the store or
    the earlier version's file concerned, ``problem`` says why."""

    def __init__(self, subject: str, problem: str) -> None:
        super().__init__(f"{subject}: {problem}")
        self.subject = subject
        self.problem = problem


@dataclass(frozen=True)
class LedgerEntry:
    """One release of a week. ``tables`` is None for a week an earlier version's
    file ledger listed as released but whose record was lost: released, with
    nothing to re-serve. ``spent``: every release of the week so far, this one
    included ({"epsilon", "delta"} each)."""

    week: str
    context: str
    noise_key: str
    parameters: Dict[str, Any]
    tables: Optional[Dict[str, List[Dict[str, Any]]]]
    mechanisms: Dict[str, Any]
    spent: List[Dict[str, float]]
    complete: bool = True
    forced: bool = False
    source: str = "aggregate"
    number: int = 0
    released_at: str = field(default="", compare=False)


def file_ledgers(db: str, key_path: Path) -> List[Path]:
    """Where earlier versions kept the ledger: ``DB.releases`` beside a SQLite
    store (its real path too, for a symbolic link) and ``KEY.releases`` beside
    the noise key."""
    places = [] if "://" in db else [Path(db + ".releases"), Path(os.path.realpath(db) + ".releases")]
    places.append(Path(str(key_path) + ".releases"))
    return list(dict.fromkeys(places))


def open_ledger(store: Store, earlier: Sequence[Path] = ()) -> "ReleaseLedger":
    """The store's ledger: its table created if the store predates it (in one
    transaction, triggers included), and the file ledgers in ``earlier``
    imported, so that no week an earlier version released is forgotten."""
    ledger = ReleaseLedger(store)
    if not ledger.exists():
        ledger.create()
    for directory in earlier:
        ledger.import_directory(directory)
    return ledger


class ReleaseLedger:
    """Reads go through the store's own (read-only, for ``aggregate``)
    connections; appends through a connection of their own, confined to
    INSERT into the ledger, one short transaction each."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writer: Dialect = store.dialect.writer()

    def exists(self) -> bool:
        connection = self.store.connect()
        try:
            return bool(self.store.dialect.has_table(connection, LEDGER_TABLE))
        finally:
            connection.close()

    def create(self) -> None:
        _, failure = _driver_errors(self.writer)
        connection = self._connect()
        try:
            if isinstance(self.writer, SQLiteDialect):
                connection.execute("BEGIN IMMEDIATE")  # DDL too: the table and its triggers or nothing
            cursor = connection.cursor()
            for statement in ledger_statements(self.writer):
                cursor.execute(statement)
            connection.commit()
        except failure as exc:
            raise LedgerError(self.store.dialect.shown, "the store predates the release ledger, which cannot be "
                                                        f"created in it: {self._problem(exc)}") from None
        finally:
            connection.close()

    def latest(self, week: str) -> Optional[LedgerEntry]:
        """The week's last release, or None if the store never released it."""
        rows = self._rows(f"SELECT * FROM {LEDGER_TABLE} WHERE week = :week ORDER BY number DESC LIMIT 1",
                          {"week": week})
        return next(rows, None)

    def released_weeks(self) -> List[str]:
        return [row["week"] for row in self.store.query(f"SELECT DISTINCT week FROM {LEDGER_TABLE} ORDER BY week", {})]

    def module_history(self, before: str, weeks: int) -> List[Dict[str, Any]]:
        """``{"week", "slug", "sites"}`` rows of the last ``weeks`` released weeks
        before ``before``, each from its last release."""
        history: List[Dict[str, Any]] = []
        seen: Set[str] = set()
        for entry in self._rows(f"SELECT * FROM {LEDGER_TABLE} WHERE week < :before ORDER BY week DESC, number DESC",
                                {"before": before}):
            if entry.week in seen:
                continue
            if len(seen) == weeks:
                break
            seen.add(entry.week)
            if entry.tables is None:
                log.warning("week %s: its release record was lost before the ledger moved into the store; "
                            "it is left out of the trends", entry.week)
                continue
            history += [{"week": entry.week, "slug": row["slug"], "sites": row["sites"]}
                        for row in entry.tables.get("modules", [])]
        return sorted(history, key=lambda row: (row["week"], row["slug"]))

    def append(self, entry: LedgerEntry, after: Optional[LedgerEntry], now: Optional[datetime] = None) -> LedgerEntry:
        """Append ``entry`` as the release that follows ``after`` (the week's last
        release when this run looked, None for its first). Another run that
        appended a release of the week since takes that number first: this one is
        then refused (nothing was published yet, so its draw cost nothing)."""
        number = (after.number if after else 0) + 1
        released_at = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
        values = {"week": entry.week, "number": number, "context": entry.context, "noise_key": entry.noise_key,
                  "released_at": released_at, "forced": int(entry.forced), "complete": int(entry.complete),
                  "parameters": json.dumps(entry.parameters, sort_keys=True),
                  "released_tables": None if entry.tables is None else json.dumps(entry.tables),
                  "mechanisms": json.dumps(entry.mechanisms, sort_keys=True), "spent": json.dumps(entry.spent),
                  "source": entry.source}
        integrity, failure = _driver_errors(self.writer)
        connection = self._connect()
        try:
            self.writer.insert_only(connection, LEDGER_TABLE)
            connection.cursor().execute(self.writer.sql(INSERT), values)
            connection.commit()
        except integrity:
            raise LedgerError(self.store.dialect.shown, f"week {entry.week} was released by another run at the same "
                                                        "time; run again to re-serve its release") from None
        except failure as exc:
            raise LedgerError(self.store.dialect.shown,
                              f"cannot append to the release ledger: {self._problem(exc)}") from None
        finally:
            connection.close()
        return replace(entry, number=number, released_at=released_at)

    def import_directory(self, directory: Path) -> None:
        """Append the records of an earlier version's file ledger that the table
        does not hold yet (a release of the same week and context; for a week
        whose record was lost, any release of it). The files are left as they
        were: a store restored from a backup older than the import finds them again."""
        for week, record, source in read_file_ledger(directory):
            entry = _imported(week, record, source)
            latest = self.latest(week)
            if latest is not None and (record is None or entry.context in self._contexts(week)):
                continue
            self.append(entry, latest, _modified(source))
            log.warning("week %s: imported into the store's release ledger from %s", week, source)

    def _contexts(self, week: str) -> Set[str]:
        return {row["context"] for row in self.store.query(f"SELECT context FROM {LEDGER_TABLE} WHERE week = :week",
                                                           {"week": week})}

    def _connect(self) -> Any:
        _, failure = _driver_errors(self.writer)
        try:
            return self.writer.connect()
        except failure as exc:
            raise LedgerError(self.store.dialect.shown, f"cannot open the store to append to its release ledger: "
                                                        f"{self._problem(exc)}") from None

    def _problem(self, error: Exception) -> str:
        """The driver's first line, without the password a PostgreSQL URL may hold."""
        text = str(error).strip()
        line = text.splitlines()[0][:200] if text else type(error).__name__
        return scrubbed(line, self.writer.url) if isinstance(self.writer, PostgresDialect) else line

    def _rows(self, statement: str, parameters: Dict[str, Any]) -> Iterator[LedgerEntry]:
        for row in self.store.query(statement, parameters):
            try:
                yield LedgerEntry(
                    week=row["week"], context=row["context"], noise_key=row["noise_key"],
                    parameters=json.loads(row["parameters"]),
                    tables=None if row["released_tables"] is None else json.loads(row["released_tables"]),
                    mechanisms=json.loads(row["mechanisms"]), spent=json.loads(row["spent"]),
                    complete=bool(row["complete"]), forced=bool(row["forced"]), source=row["source"],
                    number=int(row["number"]), released_at=row["released_at"])
            except (ValueError, TypeError) as exc:
                raise LedgerError(self.store.dialect.shown, f"release {row['number']} of week {row['week']} in the "
                                  f"release ledger is not readable ({str(exc)[:80]})") from None


def _driver_errors(dialect: Dialect) -> Tuple[Type[Exception], Type[Exception]]:
    """(integrity error, any error) of ``dialect``'s driver."""
    if isinstance(dialect, SQLiteDialect):
        return sqlite3.IntegrityError, sqlite3.Error
    import psycopg

    return psycopg.IntegrityError, psycopg.Error


def read_file_ledger(directory: Path) -> List[Tuple[str, Optional[Dict[str, Any]], Path]]:
    """(week, record, file) of every week an earlier version's ledger in
    ``directory`` shows released, by week; the record is None for a week only
    ``weeks.log`` lists (its record was moved away or lost). A damaged record
    is an error, not "never released": that would redraw the week's noise."""
    try:
        names = sorted(path.name for path in directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise LedgerError(str(directory), f"cannot read this release ledger of an earlier version: "
                                          f"{exc.strerror or exc}") from None
    weeks = {match.group(1) for match in map(FILE_RECORD.match, names) if match}
    logged = directory / "weeks.log"
    try:
        weeks |= {week for week in logged.read_text(encoding="utf-8").split() if FILE_RECORD.match(f"{week}.json")}
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise LedgerError(str(logged), f"not readable ({str(exc)[:80]})") from None
    found: List[Tuple[str, Optional[Dict[str, Any]], Path]] = []
    for week in sorted(weeks):
        path = directory / f"{week}.json"
        found.append((week, _file_record(path, week), path) if path.exists() else (week, None, logged))
    return found


def _file_record(path: Path, week: str) -> Dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LedgerError(str(path), f"not readable ({str(exc)[:80]}); move it away only if the week was never "
                                     "published") from None
    if not (isinstance(record, dict) and record.get("format") == FILE_FORMAT and record.get("week") == week
            and isinstance(record.get("tables"), dict) and isinstance(record.get("context"), str)
            and isinstance(record.get("spent", []), list)):
        raise LedgerError(str(path), "not a release record an earlier version wrote")
    return record


def _imported(week: str, record: Optional[Dict[str, Any]], source: Path) -> LedgerEntry:
    if record is None:
        return LedgerEntry(week, context="", noise_key="", parameters={}, tables=None, mechanisms={}, spent=[],
                           source=f"imported from {source} (the week's record was missing)")
    spent = list(record.get("spent", []))
    complete = bool(record.get("complete", True))
    return LedgerEntry(week, context=record["context"], noise_key=str(record.get("noise_key", "")),
                       parameters=dict(record.get("parameters", {})), tables=record["tables"],
                       mechanisms=dict(record.get("mechanisms", {})), spent=spent, complete=complete,
                       forced=len(spent) > 1 or not complete, source=f"imported from {source}")


def _modified(path: Path) -> datetime:
    """When the earlier version wrote ``path`` (its release time, as near as the files tell)."""
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
