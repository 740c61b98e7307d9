"""Bringing a store written by an earlier release up to date, once.

Stores written before the narrow tables existed hold only ``reports``: their
weeks are normalized into the narrow tables when such a store is first
opened for writing, so they can still be published — but only the reports
the collector would accept today. Each is judged as ``serve`` judges a
report (the columns it knows, their schemas, the allowlist serve starts
with); a refused one is removed, not published, and counted in a warning.
With no allowlist at hand, such a store is refused rather than published
unchecked. A store that has ``site_weeks`` rows, or no reports at all,
needs nothing and costs two one-row reads. Two collectors doing it at once
store nothing twice (the upsert keeps one report per site and week).

Stores whose quarantine kept one row per post get one row per week and site.

A narrow table added by a later release (``site_week_module_platforms``) is
filled, when the open creates it, from each site-week's kept raw report (the
one ``site_weeks`` points at): the weeks stored before the upgrade publish
it too. Two collectors doing it at once insert each row once (``ON CONFLICT
DO NOTHING``).
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
from dropsonde.collector.store_schema import quarantine_table
from dropsonde.errors import BadInput
from dropsonde.schema import json_schema_for_column, schema_validator, validation_message
from dropsonde.wire_columns import REPORT_COLUMNS

BATCH = 500
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
        raise BadInput("it holds reports of an earlier release, which are published only once checked against "
                       "the collector's allowlist (its Forge list and release evidence), and none was given")
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
        connection.commit()
    finally:
        connection.close()
    if judge.refused:
        log.warning("%d report(s) of an earlier release refused by the allowlist (removed, never published); "
                    "the first: %s", judge.refused, judge.first)


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


def fill_new_tables(dialect: Dialect, query: Query, metric_columns: Sequence[str], created: Sequence[str]) -> None:
    """Fill the narrow tables ``created`` by this open from the reports the
    store already normalized (a store whose ``site_weeks`` is empty is filled
    whole by ``migrate``)."""
    if not created or not _has_rows(query, "site_weeks"):
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
            for name in created:
                if values[name]:
                    marks = ", ".join([dialect.placeholder] * (len(columns[name]) + 2))
                    cursor.executemany(f"INSERT INTO {name} (week, site_week, {', '.join(columns[name])}) "
                                       f"VALUES ({marks}) ON CONFLICT DO NOTHING",
                                       [(row["kept_week"], row["kept_site_week"], *value) for value in values[name]])
            if number % BATCH == 0:
                connection.commit()
        connection.commit()
    finally:
        connection.close()


def _has_rows(query: Query, table: str) -> bool:
    """Without counting them: a million-row table answers as fast as an empty one."""
    return bool(list(query(f"SELECT 1 AS found FROM {table} LIMIT 1", {})))
