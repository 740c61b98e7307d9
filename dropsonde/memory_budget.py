"""Memory budgets, for the readers whose memory can grow out of proportion to
their input faster than their CPU budget runs out.

pyhocon resolves ``a = ${b}${b}``, ``b = ${c}${c}``... by building every
string: twenty such lines over a 500 KB value asked for gigabytes (2.4 GB
before the 2 s CPU budget stopped it). Such a reader runs inside
:func:`memory_budget`, which lowers the process's address-space limit
(``RLIMIT_AS``) to what it uses now plus the budget, so an allocation past it
fails with ``MemoryError`` inside the reader, turned into
:class:`OverMemoryBudget`; the limit is put back however the block ends.

Only for pure-Python parsers: a C library may abort on a failed allocation
instead of raising. The limit is the process's, so a budget is only set where
no other thread allocates meanwhile (the probe reads its configuration in
the main thread, before anything else runs). Where the address space cannot
be measured (no ``/proc``), the block runs without one.
"""

from __future__ import annotations

import contextlib
import os
import resource
from typing import Iterator

MiB = 1024 * 1024
#: What parsing one configuration file may add to the process's address space.
#: pyhocon parses Debian's whole conf.d in under 3 MB; 1 MB of HOCON in 3 MB.
CONFIG_MEMORY_BYTES = 256 * MiB


class OverMemoryBudget(Exception):
    """The block needed more memory than its budget; ``str()`` says how much it had."""

    def __init__(self, budget: int) -> None:
        super().__init__(f"more than {budget // MiB} MiB of memory")
        self.budget = budget


def _address_space() -> int:
    """The process's address space now, in bytes (Linux's /proc)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def memory_budget(budget: int) -> Iterator[None]:
    """Run the block with at most ``budget`` more bytes of address space; an
    allocation past it raises :class:`OverMemoryBudget` in the block. A lower
    limit already in force is kept."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        limit = _address_space() + budget
    except (OSError, ValueError, IndexError):
        yield
        return
    for current in (soft, hard):
        if current != resource.RLIM_INFINITY:
            limit = min(limit, current)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    except MemoryError:
        raise OverMemoryBudget(budget) from None
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
