"""Hard time limits for one block of a test, so that a regression fails within
seconds, naming the input, instead of hanging the whole suite.

Two clocks, one mechanism (an interval timer whose signal raises inside the block):

- ``cpu_limit``: CPU time, the probe's own budgets (:mod:`dropsonde.cpu_budget`),
  so that the probe's budgets nest inside a test's limit. Parsers of untrusted
  files must never hang; a regression to exponential backtracking is caught, and
  a loaded CI machine does not make the tests flaky, since waiting uses no CPU time.
- ``never_blocks``: wall-clock time (``ITIMER_REAL``). Opening a FIFO for reading
  waits for a writer using no CPU time, so ``cpu_limit`` never fires; SIGALRM
  interrupts the blocked system call instead. Nothing waits on it when the code
  under test is correct.

Both work in the main thread only (signal handlers run there).
"""

from __future__ import annotations

import contextlib
import signal
from typing import Callable, Iterator

from dropsonde.cpu_budget import Budget, cpu_budget


class CPUTimeExceeded(AssertionError):
    """The block used more CPU time than it was allowed."""


class Blocked(AssertionError):
    """The block was still running after its wall-clock limit."""


@contextlib.contextmanager
def _interval_limit(timer: int, signum: int, seconds: float, failure: Callable[[], AssertionError]) -> Iterator[None]:
    """Raise ``failure()`` inside the block once ``timer`` has counted ``seconds``;
    the timer is stopped and the previous handler restored however the block ends."""

    def expire(_signum, _frame):
        raise failure()

    previous = signal.signal(signum, expire)
    signal.setitimer(timer, seconds)
    try:
        yield
    finally:
        signal.setitimer(timer, 0)
        signal.signal(signum, previous)


def cpu_limit(seconds: float) -> contextlib.AbstractContextManager[Budget]:
    """Raise CPUTimeExceeded inside the block once it has used ``seconds`` of CPU time."""
    return cpu_budget(seconds, lambda: CPUTimeExceeded(f"still running after {seconds} s of CPU time"))


def never_blocks(seconds: float = 10.0) -> contextlib.AbstractContextManager[None]:
    """Raise Blocked inside the block once ``seconds`` of wall-clock time have passed."""
    return _interval_limit(
        signal.ITIMER_REAL,
        signal.SIGALRM,
        seconds,
        lambda: Blocked(f"still blocked after {seconds} s"),
    )
