"""The report as it travels and is stored: one definition for the probe that
sends it and the collector that receives it.

The envelope is the Dujour form the Ruby client sends (kept so existing
aggregation queries keep working); a stored row is the skeleton columns
followed by the metric columns. This module imports nothing else of
dropsonde's, so the collector can know the format without loading the
probe's Puppet readers.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

PRODUCT = "popularity-module"
REPORT_VERSION = "1.0.0"

#: the keys of an envelope, and the one key under its analytics object
ENVELOPE_KEYS = frozenset({"product", "version", "site_id", "self-service-analytics"})
ANALYTICS_KEY = "self-service-analytics"

#: the columns every stored row has, before the plugins' (the ``dev schema`` table)
SKELETON_COLUMNS: List[Dict[str, Any]] = [
    {"name": "message_id", "type": "STRING", "mode": "REQUIRED", "description": "Unique id of this report (UUID)"},
    {"name": "site_id", "type": "STRING", "mode": "REQUIRED", "description": "Anonymous, non-reversible id of the site"},
    {"name": "product", "type": "STRING", "mode": "REQUIRED", "description": "Product name (popularity-module)"},
    {"name": "version", "type": "STRING", "mode": "REQUIRED", "description": "Report format version"},
    {"name": "timestamp", "type": "TIMESTAMP", "mode": "REQUIRED", "description": "When the report was received"},
    {"name": "ip", "type": "STRING", "mode": "NULLABLE", "description": "Address the report came from"},
]
SKELETON = tuple(column["name"] for column in SKELETON_COLUMNS)


def envelope(site_id: str, values: Dict[str, Any], timestamp: str) -> Dict[str, Any]:
    """The report as sent: each column's value with the time it was taken."""
    snapshots = {column: {"value": value, "timestamp": timestamp} for column, value in values.items()}
    return {"product": PRODUCT, "version": REPORT_VERSION, "site_id": site_id,
            ANALYTICS_KEY: {"snapshots": snapshots}}


def parse_timestamp(value: Optional[str]) -> Optional[datetime]:
    """An ISO 8601 time (``Z`` accepted, UTC assumed when it has no offset), or
    None when unreadable: one reading for every timestamp we keep or receive."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def sortable_timestamp(moment: datetime) -> str:
    """The stored form of a time: UTC, microseconds, fixed width, so stored
    timestamps compare correctly as text (SQL ``ORDER BY``, week bounds)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
