"""Bringing a store written by an earlier release up to date, once.

Stores written before the narrow tables existed hold only ``reports``: their
weeks are normalized into the narrow tables when such a store is first
opened for writing, so they can still be published. A store that has
``site_weeks`` rows, or no reports at all, needs nothing and costs two
one-row reads. Two collectors doing it at once store nothing twice (the
upsert keeps one report per site and week).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterator, Sequence

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


def _has_rows(query: Query, table: str) -> bool:
    """Without counting them: a million-row table answers as fast as an empty one."""
    return bool(list(query(f"SELECT 1 AS found FROM {table} LIMIT 1", {})))
