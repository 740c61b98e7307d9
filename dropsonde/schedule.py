"""When a scheduled submission is due, and keeping two runs from overlapping.

The packages run ``dropsonde submit --scheduled`` from a daily systemd timer
(randomized delay, persistent) or an hourly cron job; this module decides
whether that tick sends anything: only when the admin opted in and the last
successful submission is at least ``interval`` old. Sites are spread over
time by the timer's randomized delay and, after the first submission, by
when each site happened to submit.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator, Optional

from dropsonde.forge import parse_iso

LOCK_FILENAME = "submit.lock"


def next_due(last_submitted_at: Optional[str], interval: int) -> Optional[datetime]:
    """When the next submission is due; None means now (never submitted, or an unreadable record)."""
    last = parse_iso(last_submitted_at)
    return last + timedelta(seconds=interval) if last is not None else None


@contextmanager
def submission_lock(cachepath: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock file: yields False when another run holds it."""
    Path(cachepath).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(cachepath) / LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
