"""A hard limit on the CPU time one block of a test may use.

Parsers of untrusted files must never hang. A regression to exponential
backtracking would otherwise hang the whole suite; with this limit the test
fails within seconds instead, naming the input. CPU time (not wall-clock
time) is measured, so a loaded CI machine does not make the tests flaky.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator


class CPUTimeExceeded(AssertionError):
    """The block used more CPU time than it was allowed."""


@contextlib.contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    """Raise CPUTimeExceeded inside the block once it has used ``seconds`` of CPU time.

    SIGPROF interrupts Python code and the regular-expression engine alike.
    """

    def expire(_signum, _frame):
        raise CPUTimeExceeded(f"still running after {seconds} s of CPU time")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
