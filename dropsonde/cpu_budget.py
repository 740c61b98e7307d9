"""CPU-time budgets: the one mechanism that stops a reader of untrusted input
which runs too long, whatever the reason.

Each reader's algorithm is meant to be linear, but a budget holds even where
that promise breaks (a backtracking regular expression, a library's parser,
a case nobody thought of): the reader runs inside :func:`cpu_budget`, and once
it has used its seconds of CPU time :class:`OverBudget` is raised inside it.
The caller sets that input aside (its classes are not public) with one warning
naming it and the budget, and the run goes on.

CPU time, not wall-clock time: a loaded machine or a process stopped for a while
does not make a file "too costly", so the verdict on a file is the same at
every run (the manifest cache may keep it). The clock is the process's profiling
interval timer (``ITIMER_PROF``), whose ``SIGPROF`` interrupts Python code and
the regular-expression engine alike; C code that never returns to Python (a
tree-sitter parse) needs its own limit, given as :meth:`Budget.remaining`.

Budgets nest: an inner one never extends an outer one, and when the outer one
runs out first, its own handler runs (the test suite's ``cpu_limit`` is built
on this module). Signals reach the main thread only: elsewhere a budget is
not enforced, and the readers' own bounds are what holds.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Callable, Iterator, Optional

# What the probe's readers may spend, per file or answer. Real inputs take a small
# fraction of these (README, "Budgets"): the largest manifest of Debian's modules
# (292 KB) is read in 0.04 s, the largest Puppetfile of the r10k trees in milliseconds.
#: One manifest (lexing and reading its definitions).
MANIFEST_CPU_SECONDS = 1.0
#: One Puppetfile, all its tree-sitter parses and the walk of the tree together.
PUPPETFILE_CPU_SECONDS = 1.0
#: One configuration file: puppet.conf, environment.conf, puppetdb.conf,
#: telemetry.yaml, one conf.d file of Puppet Server (HOCON).
CONFIG_CPU_SECONDS = 2.0
#: Everything done with one PuppetDB answer once it has arrived.
ANSWER_CPU_SECONDS = 5.0
# What one run may spend on all the files of a kind it has not parsed before (the
# caches keep each content's result, so a warm run spends nothing): a budget per
# file alone let the total grow with the number of files (30 environments with
# distinct hostile Puppetfiles, each just under its budget: 25.9 s).
#: All Puppetfiles parsed in one run (a cold run over 40 environments: about 0.4 s).
PUPPETFILES_RUN_CPU_SECONDS = 5.0
#: All manifests parsed in one run (Debian's 1,711 module manifests, cold: 0.5 s).
MANIFESTS_RUN_CPU_SECONDS = 60.0
#: All environments' environment.conf files and modulepaths in one run (r10k copies the
#: control repository's into every branch: bench/r10k.py's 160 take 0.004 s).
ENVIRONMENT_CONFS_RUN_CPU_SECONDS = 5.0
#: All of Puppet Server's conf.d files together (Debian's 7 files: 0.17 s, pyhocon's import included;
#: 18 files each just under CONFIG_CPU_SECONDS took 33 s before: re-check V2).
CONFD_RUN_CPU_SECONDS = 5.0


# How soon an expired budget raises again if its exception was swallowed.
RETRY_SECONDS = 0.01


class OverBudget(Exception):
    """The block used more CPU time than its budget; ``str()`` says how much it had."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"more than {seconds:g} s of CPU time")
        self.seconds = seconds


class Budget:
    """A running budget: how much of it is left, for C code that takes its own limit."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.process_time) -> None:
        self.seconds = seconds
        self._clock = clock
        self.deadline = clock() + seconds

    def remaining(self) -> float:
        """CPU seconds left (0 when spent; never more than the budget, which
        ``clock() + seconds - clock()`` can be by a rounding error)."""
        return min(self.seconds, max(0.0, self.deadline - self._clock()))


class RunBudget:
    """CPU time a run may spend on one kind of reader, all files together: once
    spent, the files not yet read are set aside (the caller says how many, once).
    A file started before it ran out may finish within its own budget, so a run
    spends at most this plus one file's budget."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.process_time) -> None:
        self.seconds = seconds
        self._clock = clock
        self.spent = 0.0
        self.set_aside: list[str] = []  # what was not read for want of budget, as named by the caller

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.seconds

    @contextlib.contextmanager
    def charge(self) -> Iterator[None]:
        """Count the block's CPU time against the budget."""
        start = self._clock()
        try:
            yield
        finally:
            self.spent += self._clock() - start


@contextlib.contextmanager
def cpu_budget(seconds: float, exceeded: Optional[Callable[[], BaseException]] = None) -> Iterator[Budget]:
    """Run the block with at most ``seconds`` of CPU time; then raise ``exceeded()``
    (by default :class:`OverBudget`) inside it. The timer is stopped, and an outer
    budget's timer and handler restored, however the block ends."""
    budget = Budget(seconds)
    if threading.current_thread() is not threading.main_thread():
        yield budget
        return
    failure = exceeded or (lambda: OverBudget(seconds))
    outer_handler = signal.getsignal(signal.SIGPROF)
    outer_left, _interval = signal.getitimer(signal.ITIMER_PROF)
    outer_deadline = time.process_time() + outer_left if outer_left > 0 else None
    outer_first = outer_deadline is not None and outer_deadline < budget.deadline
    active = [True]

    def expire(signum: int, frame: object) -> None:
        # A signal that arrives once the block is over (while it is being cleaned up)
        # is ignored: raising there would skip the cleanup and leave this handler in place.
        if not active[0]:
            return
        # Again soon, in case this exception is swallowed (raised in a gc callback,
        # Python only prints it): the block must not run on without a budget.
        signal.setitimer(signal.ITIMER_PROF, RETRY_SECONDS)
        if outer_first and callable(outer_handler):
            outer_handler(signum, frame)  # type: ignore[arg-type]
        raise failure()

    signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, min(seconds, outer_left) if outer_first else seconds)
    try:
        try:
            yield budget
        finally:
            active[0] = False
    finally:  # a separate clause: it runs even if the signal lands in the one above
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, outer_handler)
        if outer_deadline is not None:
            # what the outer budget has left; spent already, it fires at once
            signal.setitimer(signal.ITIMER_PROF, max(outer_deadline - time.process_time(), 1e-6))
