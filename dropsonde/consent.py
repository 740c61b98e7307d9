"""Which report columns the admin agreed to send on a schedule.

Syncthing asks again when its usage report grows; so does dropsonde. The
agreement is the list of column names kept in the cache directory
(``consent.json``, mode 0600, written atomically). A scheduled submission
sends only agreed columns and says, once per run, which new ones wait;
``dropsonde consent`` shows those with their descriptions and records the
agreement. A manual ``submit`` sends what ``preview`` shows: the admin has
just looked at it.

The opt-in itself stays ``dropsonde { enabled: true }`` in Puppet Server's
conf.d (what the puppetlabs-dropsonde module and Puppet Server's own settings
use). A site enabled before agreements were recorded has no file: its first
scheduled submission records the columns of that version as agreed (enabling
was the agreement to what it sent then), so only columns added later wait.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Dict, FrozenSet, Iterable, List, Optional

from dropsonde.errors import Failure
from dropsonde.json_input import load_json
from dropsonde.metrics.base import MetricPlugin

if TYPE_CHECKING:
    from dropsonde.cache_dir import CacheDir

CONSENT_FILENAME = "consent.json"
MAX_CONSENT_BYTES = 1024 * 1024  # a list of column names


@dataclass(frozen=True)
class Consent:
    """The columns agreed to, when, and how (shown by ``dropsonde consent``)."""

    columns: FrozenSet[str]
    agreed_at: str
    how: str


def report_columns(plugins: Iterable[MetricPlugin]) -> Dict[str, str]:
    """{column: description} of the enabled plugins, in report order: what a
    scheduled submission could send."""
    from dropsonde.report import report_columns

    plugins = list(plugins)
    columns = report_columns(plugins).columns
    own = {column["name"] for plugin in plugins for column in plugin.schema()}
    return {column["name"]: str(column.get("description", "")) for column in columns if column["name"] in own}


def read_consent(cache: "CacheDir") -> Optional[Consent]:
    """The recorded agreement, or None when there is none yet. A damaged file is
    an error naming it: nothing is sent on a guess."""
    path = cache / CONSENT_FILENAME
    try:
        record = load_json(cache.read_bytes(CONSENT_FILENAME, MAX_CONSENT_BYTES), MAX_CONSENT_BYTES)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise Failure(f"{path}: not a readable consent record ({type(exc).__name__}); "
                      "run `dropsonde consent` to record it again") from None
    columns = record.get("columns") if isinstance(record, dict) else None
    if not isinstance(columns, list) or not all(isinstance(column, str) for column in columns):
        raise Failure(f"{path}: not a consent record (no list of columns); "
                      "run `dropsonde consent` to record it again")
    return Consent(frozenset(columns), str(record.get("agreed_at", "")), str(record.get("how", "")))


def record_consent(cache: "CacheDir", columns: Iterable[str], now: datetime, how: str) -> Consent:
    """Record agreement to ``columns`` (with any agreed before: agreement is never taken back silently)."""
    previous = read_consent(cache)
    agreed = frozenset(columns) | (previous.columns if previous else frozenset())
    consent = Consent(agreed, now.isoformat(timespec="seconds"), how)
    body = {"columns": sorted(agreed), "agreed_at": consent.agreed_at, "how": how}
    cache.write(CONSENT_FILENAME, (json.dumps(body, indent=2) + "\n").encode("utf-8"), mode=0o600)
    return consent


def awaiting(consent: Optional[Consent], columns: Iterable[str]) -> List[str]:
    """The columns not yet agreed to, in the order given."""
    agreed = consent.columns if consent else frozenset()
    return [column for column in columns if column not in agreed]
