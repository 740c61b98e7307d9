"""When a scheduled submission is due, and keeping two runs from overlapping.

The packages run ``dropsonde submit --scheduled`` from a daily systemd timer
(randomized delay, persistent) or an hourly cron job; this module decides
whether that tick sends anything: only when the admin opted in and the last
successful submission is at least ``interval`` old. Sites are spread over
time by the timer's randomized delay and, after the first submission, by
when each site happened to submit.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Iterator, Optional

from dropsonde.cache_dir import CacheDir
from dropsonde.errors import BadInput
from dropsonde.wire import parse_timestamp

LOCK_FILENAME = "submit.lock"


def next_due(last_submitted_at: Optional[str], interval: int, now: datetime) -> Optional[datetime]:
    """When the next submission is due, if that is still after ``now``; None
    means submit now: due, never submitted, an unreadable record, or one dated
    after ``now`` (the clock was set back: it must not stop submissions until
    the clock catches up). The clock is a parameter so that this decision is a
    pure function tests can drive."""
    last = parse_timestamp(last_submitted_at)
    if last is None or last > now:
        return None
    due = last + timedelta(seconds=interval)
    return due if now < due else None


@contextmanager
def submission_lock(cache: CacheDir) -> Iterator[bool]:
    """An exclusive, non-blocking lock file: yields False when another run holds it.
    Opened inside the checked cache directory without following a link, so a planted
    ``submit.lock -> /etc/nologin`` is refused instead of making us create that file."""
    try:
        fd = cache.open_file(LOCK_FILENAME, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK)
    except OSError as exc:
        reason = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise BadInput(f"{cache / LOCK_FILENAME}: refusing to use the lock: {reason}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BadInput(f"{cache / LOCK_FILENAME}: refusing to use the lock: not a regular file")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
