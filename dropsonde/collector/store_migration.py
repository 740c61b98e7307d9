"""Bringing a store written by an earlier release up to date, once.

Stores written before the narrow tables existed hold only ``reports``: their
weeks are normalized into the narrow tables when such a store is first
opened for writing, so they can still be published. A store that has
``site_weeks`` rows, or no reports at all, needs nothing and costs two
one-row reads. Two collectors doing it at once store nothing twice (the
upsert keeps one report per site and week).

A narrow table added by a later release (``site_week_module_platforms``) is
filled, when the open creates it, from each site-week's kept raw report (the
one ``site_weeks`` points at): the weeks stored before the upgrade publish
it too. Two collectors doing it at once insert each row once (``ON CONFLICT
DO NOTHING``).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterator, List, Sequence

from dropsonde.collector.normalize import NARROW_TABLES, narrow_rows
from dropsonde.collector.report_upsert import normalize_report
from dropsonde.collector.sql_dialect import Dialect

BATCH = 500

Query = Callable[[str, Dict[str, Any]], Iterator[Dict[str, Any]]]


def migrate(dialect: Dialect, query: Query, metric_columns: Sequence[str]) -> None:
    """Fill the narrow tables from ``reports`` when they are empty and it is not."""
    if _has_rows(query, "site_weeks") or not _has_rows(query, "reports"):
        return
    connection = dialect.connect()
    try:
        cursor = connection.cursor()
        for number, row in enumerate(query("SELECT * FROM reports", {}), start=1):
            for column in metric_columns:
                if row.get(column) is not None:
                    row[column] = json.loads(row[column])
            normalize_report(dialect, cursor, row)
            if number % BATCH == 0:
                connection.commit()
        connection.commit()
    finally:
        connection.close()


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
