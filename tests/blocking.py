"""A wall-clock limit for a block that could wait forever.

Opening a FIFO for reading waits for a writer, using no CPU time, so
``tests.cpu_limit`` never fires. ``ITIMER_REAL`` interrupts the blocked system
call instead: a regression fails the test within seconds rather than hanging
the suite. Nothing waits on it when the code under test is correct.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator


class Blocked(AssertionError):
    """The block was still running after its wall-clock limit."""


@contextlib.contextmanager
def never_blocks(seconds: float = 10.0) -> Iterator[None]:
    """Raise Blocked inside the block (main thread only) once ``seconds`` have passed."""

    def expire(_signum, _frame):
        raise Blocked(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
