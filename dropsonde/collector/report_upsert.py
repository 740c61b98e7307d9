"""How a report is written: its raw row, and, if it is its site's newest of
the ISO week, its normalized rows in the narrow tables, replacing the older
report's (which is deleted). One function, used by the writer thread, by
bulk loading and by the migration of older stores alike.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Sequence

from dropsonde.collector.normalize import NARROW_TABLES, environment_count, iso_week, narrow_rows, week_range
from dropsonde.collector.quarantine import count_discarded, quarantine
from dropsonde.collector.sql_dialect import Dialect

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
_COLUMNS_OF = {table.name: table.columns for table in NARROW_TABLES}
#: a row carrying this key set is quarantined: kept apart, in ``quarantined_reports``, and never published
QUARANTINED = "quarantined"
#: a row carrying this key set is not kept, only counted (``quarantine.count_discarded``) in the same commit
DISCARDED = "discarded"


def write_reports(dialect: Dialect, connection: Any, columns: Sequence[str], rows: Iterable[Dict[str, Any]]) -> None:
    """Insert each row (``columns``: skeleton then metrics) and normalize it,
    in the caller's transaction; the caller commits."""
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join([dialect.placeholder] * len(columns))
    statement = f"INSERT INTO reports ({names}) VALUES ({marks})"
    cursor = connection.cursor()
    for row in rows:  # each stored before the next is normalized: a newer one may supersede it
        if row.get(DISCARDED):
            count_discarded(dialect, cursor, row["timestamp"])
            continue
        if row.get(QUARANTINED):
            report = {column: row.get(column) for column in columns}
            quarantine(dialect, cursor, row["message_id"], row["site_id"], row["timestamp"], _cell(report))
            continue
        cursor.execute(statement, tuple(_cell(row.get(column)) for column in columns))
        normalize_report(dialect, cursor, row)


def normalize_report(dialect: Dialect, cursor: Any, row: Dict[str, Any]) -> None:
    """Make ``row`` its site's report of the week in the narrow tables, if it
    is the newest, and keep only that week's newest raw report of the site."""
    week = iso_week(row["timestamp"])
    cursor.execute(dialect.sql(UPSERT_SITE_WEEK), {
        "week": week, "site_id": row["site_id"], "message_id": row["message_id"], "received": row["timestamp"],
        "environment_count": environment_count(row)})
    kept = cursor.fetchone()
    start, end = week_range(week)
    cursor.execute(dialect.sql(DELETE_SUPERSEDED), {"site_id": row["site_id"], "week": week, "start": start,
                                                    "end": end})
    if kept is None:
        return
    site_week = kept[0]
    mark = dialect.placeholder
    for name, values in narrow_rows(row).items():
        cursor.execute(f"DELETE FROM {name} WHERE week = {mark} AND site_week = {mark}", (week, site_week))
        if values:
            marks = ", ".join([mark] * (len(values[0]) + 2))
            cursor.executemany(f"INSERT INTO {name} (week, site_week, {', '.join(_COLUMNS_OF[name])}) "
                               f"VALUES ({marks})", [(week, site_week, *value) for value in values])


def _cell(value: Any) -> Any:
    """Skeleton values as they are; metric values as JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
