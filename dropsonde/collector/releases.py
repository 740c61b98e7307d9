"""What each week's release published: the ledger of a store's releases.

OpenDP draws its noise from the operating system's CSPRNG and cannot be
seeded, so a week cannot be redrawn to the same numbers. Instead a week is
released **once** per release context (every parameter that changes what is
released, and the noise key's fingerprint): the released, post-processed
tables are recorded here before they are published, and running
``aggregate`` for that week again re-serves them — a rerun, a retry, a daily
cron job or a lost output directory cost no privacy. A week asked for with another
context is refused unless forced, and a forced release is recorded with what
it spent: the week's budget is then the sum of its releases.

The records hold only released (public) numbers and parameters, but they
decide what gets re-served, so they are private like the key (0600 in a
0700 directory beside a SQLite store, or beside the noise key of a
PostgreSQL one). They are also the trends' history: each week's published
``modules`` rows, whatever happened to the output directory since.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from dropsonde.atomic_file import write_atomic
from dropsonde.errors import DropsondeError

log = logging.getLogger(__name__)
WEEK_FILE = re.compile(r"^(\d{4}-W\d{2})\.json$")
FORMAT = 1


class ReleaseRecordError(DropsondeError):
    """A record that cannot be read or written; ``path`` names it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


def records_directory(db: str, key_path: Path) -> Path:
    """``DB.releases`` beside a SQLite store, whatever key path or output is
    given: the ledger of a store's releases goes with the store (another key
    path, another output directory or another working directory finds the
    same records). A PostgreSQL store has no file beside it: ``KEY.releases``."""
    if "://" in db:
        return Path(str(key_path) + ".releases")
    return Path(os.path.realpath(db) + ".releases")  # a symbolic link to the store finds the store's ledger


def legacy_directory(key_path: Path) -> Path:
    """Where the records were kept before the ledger moved beside the store."""
    return Path(str(key_path) + ".releases")


class ReleaseRecords:
    """One JSON file per released week, written atomically, and ``weeks.log``,
    the weeks ever released (appended to, never rewritten): a record moved
    away is then a missing record, not a week never released. Records in
    ``legacy`` directories (an earlier version's ledger) count as released."""

    def __init__(self, directory: Path, legacy: Sequence[Path] = ()) -> None:
        self.directory = Path(directory)
        self.legacy = [Path(path) for path in legacy if Path(path) != self.directory]

    def path(self, week: str) -> Path:
        for directory in [self.directory] + self.legacy:
            if (directory / f"{week}.json").exists():
                return directory / f"{week}.json"
        return self.directory / f"{week}.json"

    def logged(self, week: str) -> bool:
        """Whether ``week`` was ever recorded as released here."""
        try:
            return week in (self.directory / "weeks.log").read_text(encoding="utf-8").split()
        except FileNotFoundError:
            return False

    def load(self, week: str) -> Optional[Dict[str, Any]]:
        """The week's record, or None if it was never released. A damaged
        record is an error, not "never released": that would redraw the noise."""
        path = self.path(week)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ReleaseRecordError(path, f"not readable ({str(exc)[:80]}); move it away only if the week "
                                           "was never published") from None
        if not (isinstance(record, dict) and record.get("format") == FORMAT and record.get("week") == week
                and isinstance(record.get("tables"), dict) and isinstance(record.get("context"), str)):
            raise ReleaseRecordError(path, "not a release record this version writes")
        return record

    def save(self, record: Dict[str, Any]) -> None:
        path = self.directory / f"{record['week']}.json"
        try:
            write_atomic(path, json.dumps({"format": FORMAT, **record}, sort_keys=True).encode(), mode=0o600)
            if not self.logged(record["week"]):
                descriptor = os.open(self.directory / "weeks.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                     | os.O_NOFOLLOW, 0o600)
                with os.fdopen(descriptor, "a", encoding="utf-8") as log_file:
                    log_file.write(record["week"] + "\n")
                    log_file.flush()
                    os.fsync(log_file.fileno())
        except OSError as exc:
            raise ReleaseRecordError(path, f"cannot write it: {exc.strerror or exc}") from None

    def released_weeks(self) -> List[str]:
        weeks = set()
        for directory in [self.directory] + self.legacy:
            try:
                weeks |= {m.group(1) for m in map(WEEK_FILE.match, (p.name for p in directory.iterdir())) if m}
            except FileNotFoundError:
                continue
        try:
            weeks |= set((self.directory / "weeks.log").read_text(encoding="utf-8").split())
        except FileNotFoundError:
            pass
        return sorted(week for week in weeks if WEEK_FILE.match(f"{week}.json"))

    def module_history(self, before: str, weeks: int) -> List[Dict[str, Any]]:
        """``{"week", "slug", "sites"}`` rows of the last ``weeks`` released weeks before ``before``."""
        names = self.released_weeks()
        history = []
        for week in [name for name in names if name < before][-weeks:]:
            try:
                record = self.load(week)
            except ReleaseRecordError as exc:
                log.warning("%s; its week is left out of the trends", exc)
                continue
            modules = record["tables"].get("modules", []) if record else []
            history += [{"week": week, "slug": row["slug"], "sites": row["sites"]} for row in modules]
        return history
