"""The one error type for expected failures, and the exit codes they map to.

Every "bad input" path raises :class:`DropsondeError` with the file and the
value in its message; the CLI turns it into one line on stderr and an exit
status, so a user never sees a traceback for a mistake in their own files.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit statuses, in one table."""

    OK = 0
    FAILURE = 1
    USAGE = 2


class DropsondeError(Exception):
    """An expected failure: bad configuration, unreadable input, unknown plugin."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.USAGE) -> None:
        super().__init__(message)
        self.status = status
