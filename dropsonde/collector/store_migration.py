"""Bringing a store written by an earlier release up to date, once.

Stores written before the narrow tables existed hold only ``reports``: their
weeks are normalized into the narrow tables when such a store is first
opened for writing, so they can still be published — but only the reports
the collector would accept today. Each is judged as ``serve`` judges a
report (the columns it knows, their schemas, the allowlist serve starts
with); a refused one is removed, not published, and counted in a warning.
With no allowlist at hand, such a store is refused rather than published
unchecked. Two collectors doing it at once store nothing twice (the upsert
keeps one report per site and week).

Stores whose narrow tables an earlier release filled without the allowlist
of release evidence have each site-week's kept report judged the same way,
once: a refused one is removed with its narrow rows. The narrow rows of a
site-week whose raw report the operator deleted cannot be judged and stay.
``store_upgrades`` records the check: a store checked (or created so) costs
a few one-row reads per open.

Stores whose quarantine kept one row per post get one row per week and site.

A narrow table added by a later release (``site_week_module_platforms``) is
filled from each site-week's kept raw report (the one ``site_weeks`` points
at): the weeks stored before the upgrade publish it too. The fill is
recorded as owed (``store_upgrades``) before the table is created and
cleared once it is done, so an open killed between the two, or halfway
through the fill, fills it on the next open instead of leaving it empty for
good. Two collectors doing it at once insert each row once (``ON CONFLICT
DO NOTHING``, on the table's primary key).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from dropsonde.collector.allowlist import Allowlist
from dropsonde.collector.normalize import NARROW_TABLES, narrow_rows
from dropsonde.collector.quarantine import quarantine
from dropsonde.collector.report_upsert import normalize_report
from dropsonde.collector.sql_dialect import Dialect
from dropsonde.collector.store_schema import quarantine_table, upgrades_table
from dropsonde.errors import BadInput
from dropsonde.schema import json_schema_for_column, schema_validator, validation_message
from dropsonde.wire_columns import REPORT_COLUMNS

BATCH = 500
#: the name ``store_upgrades`` records once every kept report has passed the allowlist
REPORTS_CHECKED = "reports checked against the allowlist"
NO_ALLOWLIST = ("it holds reports of an earlier release, which are published only once checked against "
                "the collector's allowlist (its Forge list and release evidence), and none was given")
#: ``store_upgrades`` name of a narrow table created by an upgrade and not filled yet
FILL_OWED = "fill "
#: where an earlier release's quarantine (one row per post) waits while it is copied
QUARANTINE_BY_POST = "quarantined_reports_by_post"
log = logging.getLogger(__name__)

Query = Callable[[str, Dict[str, Any]], Iterator[Dict[str, Any]]]


def migrate(dialect: Dialect, query: Query, metric_columns: Sequence[str], allowlist: Optional[Allowlist]) -> None:
    """Fill the narrow tables from ``reports`` when they are empty and it is
    not, with the reports ``allowlist`` accepts (BadInput when there is none)."""
    if _has_rows(query, "site_weeks") or not _has_rows(query, "reports"):
        return
    if allowlist is None:
        raise BadInput(NO_ALLOWLIST)
    judge = _Judge(allowlist, metric_columns)
    connection = dialect.connect()
    try:
        cursor = connection.cursor()
        for number, row in enumerate(query("SELECT * FROM reports", {}), start=1):
            if judge.accepts(row):
                normalize_report(dialect, cursor, row)
            else:
                cursor.execute(dialect.sql("DELETE FROM reports WHERE message_id = :message_id"),
                               {"message_id": row["message_id"]})
            if number % BATCH == 0:
                connection.commit()
        _record(dialect, cursor, REPORTS_CHECKED)
        connection.commit()
    finally:
        connection.close()
    judge.report()


def refuse_unchecked(dialect: Dialect, connection: Any, allowlist: Optional[Allowlist]) -> None:
    """BadInput when the store holds reports no allowlist checked yet and none
    is given: before anything of the store is created or changed, so that a
    refused open leaves it as it was."""
    if allowlist is not None or not dialect.has_table(connection, "reports"):
        return
    cursor = connection.cursor()
    cursor.execute("SELECT 1 FROM reports LIMIT 1")
    if cursor.fetchone() is None:
        return
    if dialect.has_table(connection, "store_upgrades"):
        cursor.execute(dialect.sql("SELECT 1 FROM store_upgrades WHERE name = :name"), {"name": REPORTS_CHECKED})
        if cursor.fetchone() is not None:
            return
    raise BadInput(NO_ALLOWLIST)


def check_kept_reports(dialect: Dialect, query: Query, metric_columns: Sequence[str],
                       allowlist: Optional[Allowlist]) -> None:
    """Once per store: judge the kept report of every site-week an earlier
    release normalized (``site_weeks`` points at it) as ``serve`` judges one,
    and remove a refused one with its narrow rows; BadInput when there is
    something to judge and no allowlist. A new store is recorded checked at once."""
    if _done(query, REPORTS_CHECKED):
        return
    connection = dialect.connect()
    try:
        cursor = connection.cursor()
        if _has_rows(query, "reports"):
            if allowlist is None:
                raise BadInput(NO_ALLOWLIST)
            judge = _Judge(allowlist, metric_columns)
            kept = query("SELECT r.*, w.id AS kept_site_week, w.week AS kept_week FROM reports AS r "
                         "JOIN site_weeks AS w ON w.message_id = r.message_id", {})
            for number, row in enumerate(kept, start=1):
                if not judge.accepts(row):
                    _remove_site_week(dialect, cursor, row)
                if number % BATCH == 0:
                    connection.commit()
            judge.report()
        _record(dialect, cursor, REPORTS_CHECKED)
        connection.commit()
    finally:
        connection.close()


def _remove_site_week(dialect: Dialect, cursor: Any, row: Dict[str, Any]) -> None:
    """Unpublish a kept report: its narrow rows, its site-week and the report."""
    where = {"week": row["kept_week"], "site_week": row["kept_site_week"]}
    for table in NARROW_TABLES:
        if dialect.has_table(cursor.connection, table.name):  # one added since is filled after this check
            cursor.execute(dialect.sql(f"DELETE FROM {table.name} WHERE week = :week AND site_week = :site_week"),
                           where)
    cursor.execute(dialect.sql("DELETE FROM site_weeks WHERE id = :site_week"), where)
    cursor.execute(dialect.sql("DELETE FROM reports WHERE message_id = :message_id"),
                   {"message_id": row["message_id"]})


def _record(dialect: Dialect, cursor: Any, name: str) -> None:
    cursor.execute(dialect.sql("INSERT INTO store_upgrades (name) VALUES (:name) ON CONFLICT DO NOTHING"),
                   {"name": name})


def _done(query: Query, name: str) -> bool:
    return bool(list(query("SELECT 1 AS found FROM store_upgrades WHERE name = :name", {"name": name})))


class _Judge:
    """A stored report judged as ``serve`` judges one it receives."""

    def __init__(self, allowlist: Allowlist, metric_columns: Sequence[str]) -> None:
        self.allowlist = allowlist
        self.metric_columns = list(metric_columns)
        self.validators = {name: schema_validator(json_schema_for_column(column))
                           for name, column in REPORT_COLUMNS.items()}
        self.refused = 0
        self.first = ""

    def accepts(self, row: Dict[str, Any]) -> bool:
        """Decode ``row``'s metric columns in place; False (counted) when serve would refuse it."""
        reason = self._refusal(row)
        if reason is None:
            return True
        self.refused += 1
        self.first = self.first or f"site {str(row.get('site_id'))[:16]}...: {reason}"
        return False

    def report(self) -> None:
        """One warning for all the refused reports, naming the first."""
        if self.refused:
            log.warning("%d report(s) of an earlier release refused by the allowlist (removed, never published); "
                        "the first: %s", self.refused, self.first)

    def _refusal(self, row: Dict[str, Any]) -> Optional[str]:
        values: Dict[str, Any] = {}
        for column in self.metric_columns:
            if row.get(column) is None:
                continue
            try:
                row[column] = json.loads(row[column])
            except ValueError:
                return f"column {column}: not JSON"
            validator = self.validators.get(column)
            if validator is None:
                return f"unknown column {column!r:.60}"
            error = next(iter(validator.iter_errors(row[column])), None)
            if error is not None:
                return f"column {column}: {validation_message(error)[:200]}"
            values[column] = row[column]
        violation = self.allowlist.violation(REPORT_COLUMNS, values)
        return None if violation is None else violation.message()


def migrate_quarantine(dialect: Dialect, connection: Any, query: Query) -> None:
    """An earlier release's quarantine, one row per post, becomes one row per
    week and site (the latest). Resumable: the old table is renamed first,
    copied (an upsert: copying twice changes nothing), then dropped."""
    if "week" not in dialect.column_names(connection, "quarantined_reports"):
        cursor = connection.cursor()
        cursor.execute(f"ALTER TABLE quarantined_reports RENAME TO {QUARANTINE_BY_POST}")
        cursor.execute(quarantine_table(dialect))
        connection.commit()
    if not dialect.has_table(connection, QUARANTINE_BY_POST):
        return
    cursor = connection.cursor()
    for number, row in enumerate(query(f"SELECT * FROM {QUARANTINE_BY_POST}", {}), start=1):
        quarantine(dialect, cursor, row["message_id"], row["site_id"], row["received"], row["report"])
        if number % BATCH == 0:
            connection.commit()
    cursor.execute(f"DROP TABLE {QUARANTINE_BY_POST}")
    connection.commit()


def missing_tables(dialect: Dialect, connection: Any) -> List[str]:
    """The narrow tables this store does not have yet, before they are created
    (none for a store without ``site_weeks``: ``migrate`` fills all of them)."""
    if not dialect.has_table(connection, "site_weeks"):
        return []
    return [table.name for table in NARROW_TABLES if not dialect.has_table(connection, table.name)]


def owe_fills(dialect: Dialect, connection: Any, created: Sequence[str]) -> None:
    """Record, and commit, that the narrow tables ``created`` are to be filled,
    before the open creates them: what is recorded survives a crash, what is
    only about to happen does not."""
    cursor = connection.cursor()
    cursor.execute(upgrades_table(dialect))
    for name in created:
        _record(dialect, cursor, FILL_OWED + name)
    connection.commit()


def fill_new_tables(dialect: Dialect, query: Query, metric_columns: Sequence[str]) -> None:
    """Fill every narrow table a fill is owed to from the reports the store
    already normalized, then clear what is owed (a store whose ``site_weeks``
    was empty is filled whole by ``migrate``)."""
    owed = [row["name"][len(FILL_OWED):] for row in query("SELECT name FROM store_upgrades", {})
            if row["name"].startswith(FILL_OWED)]
    if not owed:
        return
    columns = {table.name: table.columns for table in NARROW_TABLES}
    connection = dialect.connect()
    try:
        cursor = connection.cursor()
        kept = query("SELECT r.*, w.week AS kept_week, w.id AS kept_site_week FROM reports AS r "
                     "JOIN site_weeks AS w ON w.message_id = r.message_id", {})
        for number, row in enumerate(kept, start=1):
            for column in metric_columns:
                if row.get(column) is not None:
                    row[column] = json.loads(row[column])
            values = narrow_rows(row)
            for name in owed:
                if values[name]:
                    marks = ", ".join([dialect.placeholder] * (len(columns[name]) + 2))
                    cursor.executemany(f"INSERT INTO {name} (week, site_week, {', '.join(columns[name])}) "
                                       f"VALUES ({marks}) ON CONFLICT DO NOTHING",
                                       [(row["kept_week"], row["kept_site_week"], *value) for value in values[name]])
            if number % BATCH == 0:
                connection.commit()
        for name in owed:
            cursor.execute(dialect.sql("DELETE FROM store_upgrades WHERE name = :name"), {"name": FILL_OWED + name})
        connection.commit()
    finally:
        connection.close()


def _has_rows(query: Query, table: str) -> bool:
    """Without counting them: a million-row table answers as fast as an empty one."""
    return bool(list(query(f"SELECT 1 AS found FROM {table} LIMIT 1", {})))
