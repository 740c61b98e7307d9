"""The store's tables, declared once for both databases.

``reports``: one row per site and week (its latest report; superseded ones
are deleted), in the BigQuery table layout of ``dev schema`` (skeleton
columns, then one column per metric, list- and record-valued columns stored
as JSON text). ``site_weeks`` and the ``site_week_*`` tables of
``normalize.py``: each site's latest report of each ISO week, normalized
into narrow tables that the weekly SQL queries read. ``quarantined_reports``:
reports kept apart because their source was over its weekly cap of sites
(each site's latest of the week, whole, as JSON: ``quarantine.py``); no
query reads them; ``discarded_reports``: per week, how many reports such
a source sent for sites beyond the quarantine (counted, not kept). ``release_ledger``: what each
week's release published, appended by ``aggregate`` and never changed — the
database refuses UPDATE and DELETE of its rows (``release_ledger.py``).
``store_upgrades``: the one-time upgrades of ``store_migration.py`` done to
this store, by name.
"""

from __future__ import annotations

from typing import Any, List, Sequence

from dropsonde.collector.normalize import NARROW_TABLES
from dropsonde.collector.sql_dialect import Dialect

INDEXES = (
    "CREATE INDEX IF NOT EXISTS reports_by_time ON reports (timestamp)",
    "CREATE INDEX IF NOT EXISTS reports_by_site ON reports (site_id, timestamp)",
)


def table_statements(dialect: Dialect) -> List[str]:
    """CREATE statements of every table, in ``dialect``'s types."""
    text = dialect.text_type
    statements = [
        "CREATE TABLE IF NOT EXISTS reports (message_id TEXT PRIMARY KEY, site_id TEXT NOT NULL, "
        "product TEXT NOT NULL, version TEXT NOT NULL, timestamp TEXT NOT NULL, ip TEXT)",
        f"CREATE TABLE IF NOT EXISTS site_weeks (id {dialect.id_type}, week {text} NOT NULL, "
        f"site_id {text} NOT NULL, message_id {text} NOT NULL, received {text} NOT NULL, "
        "environment_count INTEGER, UNIQUE (week, site_id))",
    ]
    statements.append(quarantine_table(dialect))
    statements.append(f"CREATE TABLE IF NOT EXISTS discarded_reports (week {text} PRIMARY KEY, "
                      "reports INTEGER NOT NULL)")
    statements.append(upgrades_table(dialect))
    for table in NARROW_TABLES:
        columns = ", ".join(f"{c} INTEGER NOT NULL" if c in table.counts else f"{c} {text} NOT NULL"
                            for c in table.columns)
        keys = ", ".join(("week", "site_week") + table.keys)
        statements.append(f"CREATE TABLE IF NOT EXISTS {table.name} (week {text} NOT NULL, "
                          f"site_week {dialect.reference_type} NOT NULL, {columns}, PRIMARY KEY ({keys}))")
    return statements


LEDGER_TABLE = "release_ledger"


def ledger_statements(dialect: Dialect) -> List[str]:
    """The release ledger and its append-only triggers. One row per release of
    a week (``number`` 1, 2, ... in order); ``released_tables`` is NULL for a week
    an earlier version's file ledger listed as released but whose record was
    lost. Text columns hold JSON."""
    text = dialect.text_type
    return [f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (week {text} NOT NULL, number INTEGER NOT NULL, "
            f"context {text} NOT NULL, noise_key {text} NOT NULL, released_at {text} NOT NULL, "
            "forced INTEGER NOT NULL, complete INTEGER NOT NULL, parameters TEXT NOT NULL, released_tables TEXT, "
            "mechanisms TEXT NOT NULL, spent TEXT NOT NULL, source TEXT NOT NULL, PRIMARY KEY (week, number))",
            *dialect.append_only(LEDGER_TABLE)]


def upgrades_table(dialect: Dialect) -> str:
    """The CREATE statement of ``store_upgrades``: the names of one-time upgrades done (or owed)."""
    return f"CREATE TABLE IF NOT EXISTS store_upgrades (name {dialect.text_type} PRIMARY KEY)"


def quarantine_table(dialect: Dialect) -> str:
    """The CREATE statement of the quarantine: one row per week and site."""
    text = dialect.text_type
    return (f"CREATE TABLE IF NOT EXISTS quarantined_reports (week {text} NOT NULL, site_id {text} NOT NULL, "
            f"message_id {text} NOT NULL, received {text} NOT NULL, report TEXT NOT NULL, PRIMARY KEY (week, site_id))")


def create_tables(dialect: Dialect, connection: Any, metric_columns: Sequence[str]) -> None:
    """Create what is missing, add a column per metric the store lacks, and commit."""
    cursor = connection.cursor()
    cursor.execute(table_statements(dialect)[0])
    for column in metric_columns:
        dialect.add_column(connection, "reports", column)
    for statement in INDEXES:
        cursor.execute(statement)
    for statement in table_statements(dialect)[1:] + ledger_statements(dialect):
        cursor.execute(statement)
    connection.commit()
