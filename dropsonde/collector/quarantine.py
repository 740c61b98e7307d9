"""Reports kept apart: those a source sent for more sites in a week than
``--sites-per-source`` lets it count (``rate_limiter.SiteVerdict``). No query
reads them, so they are never published; they are kept so the operator can
see whose reports a shared source (a NAT, a proxy) kept out.

Bounded like reports: one row per week and site, its latest report (a
newer one replaces it, a late older one is dropped), and only for the weeks
an operator acts on — the current ISO week and the last complete one, the
week ``aggregate`` publishes by default. Reports themselves are never pruned
(a past week can be published again from its narrow rows), but quarantined
ones are never published at all, so they are deleted once their week is
older than that: one client posting for ever cannot grow the store.

Reports beyond the quarantine are not kept, only counted per week in
``discarded_reports`` (pruned like the quarantine): the count is written
in the same group commit as stored reports, so a discarded report is
answered after a durable commit exactly as a kept one is — answered
without it, it came back three times faster and told whoever shares the
source which site ids it had reported for (outside review F1).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Dict

from dropsonde.collector.normalize import iso_week
from dropsonde.collector.sql_dialect import Dialect

#: weeks of quarantined reports kept: the current ISO week and the last complete one
QUARANTINE_WEEKS = 2
#: a writer prunes at most this often (and a store being opened, always)
PRUNE_INTERVAL = timedelta(hours=1)

UPSERT_QUARANTINED = (
    "INSERT INTO quarantined_reports (week, site_id, message_id, received, report) VALUES (:week, :site_id, "
    ":message_id, :received, :report) ON CONFLICT (week, site_id) DO UPDATE SET message_id = excluded.message_id, "
    "received = excluded.received, report = excluded.report WHERE excluded.received > quarantined_reports.received "
    "OR (excluded.received = quarantined_reports.received AND excluded.message_id > quarantined_reports.message_id)"
)
PRUNE = "DELETE FROM quarantined_reports WHERE week < :oldest"
COUNT_DISCARDED = ("INSERT INTO discarded_reports (week, reports) VALUES (:week, 1) "
                   "ON CONFLICT (week) DO UPDATE SET reports = discarded_reports.reports + 1")
PRUNE_DISCARDED = "DELETE FROM discarded_reports WHERE week < :oldest"


def quarantine(dialect: Dialect, cursor: Any, message_id: str, site_id: str, received: str, report: str) -> None:
    """Keep ``report`` (JSON text) as ``site_id``'s quarantined report of its
    week unless a newer one is kept already."""
    cursor.execute(dialect.sql(UPSERT_QUARANTINED), {"week": iso_week(received), "site_id": site_id,
                                                     "message_id": message_id, "received": received,
                                                     "report": report})


def count_discarded(dialect: Dialect, cursor: Any, received: str) -> None:
    """Count a report not kept at all in its week's row: a real write, so the
    commit that carries it is as durable, and as slow, as one storing a report."""
    cursor.execute(dialect.sql(COUNT_DISCARDED), {"week": iso_week(received)})


def oldest_kept_week(now: datetime) -> str:
    """The oldest ISO week whose quarantined reports are kept at ``now``."""
    return iso_week((now - timedelta(weeks=QUARANTINE_WEEKS - 1)).isoformat())


def prune(dialect: Dialect, cursor: Any, now: datetime) -> None:
    """Delete the quarantined reports of weeks older than those kept at ``now``."""
    parameters: Dict[str, Any] = {"oldest": oldest_kept_week(now)}
    cursor.execute(dialect.sql(PRUNE), parameters)
    cursor.execute(dialect.sql(PRUNE_DISCARDED), parameters)
