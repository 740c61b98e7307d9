"""The error types of expected failures, and the exit statuses a script can rely on.

Two kinds of expected failure, told apart by type, never by a status passed
around: :class:`BadInput` (what the admin gave is wrong: a command-line value,
a configuration file, a data file named on the command line; fix it and run
again) and :class:`Failure` (the input was fine but the work could not be done:
a disk that is full or read-only, a port in use, a store or server that cannot
be reached, nothing to send). Each message names the file or option and the
value, and the CLI prints it as one line.

The mapping from these types (and from Click's usage errors, ``OSError`` and
anything unexpected) to an :class:`ExitStatus` lives in one place:
``dropsonde.cli.main``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit statuses, in one table (README, "Exit status")."""

    OK = 0
    #: the command could not do its work (:class:`Failure`, an ``OSError``)
    FAILURE = 1
    #: bad input: the command line (Click's usage errors) or :class:`BadInput`
    USAGE = 2
    #: a bug in dropsonde or a plugin: an exception nobody expected
    #: (sysexits.h's EX_SOFTWARE); ``--verbose`` prints its traceback
    INTERNAL = 70
    #: Ctrl-C (128 + SIGINT), as a shell reports it
    INTERRUPTED = 130


class DropsondeError(Exception):
    """Base of the expected failures; raise :class:`BadInput` or :class:`Failure`,
    never this class itself (tests/test_errors.py checks the package)."""


class BadInput(DropsondeError):
    """What the admin gave is wrong (exit 2): an option's value, a configuration
    or data file that does not parse or says something we refuse."""


class Failure(DropsondeError):
    """The input was fine but the work could not be done (exit 1): cannot write,
    cannot listen, cannot reach a server or open the store, nothing to send."""
