"""CPU-time budgets: they stop a block that runs too long, nest, and restore what was there."""

from __future__ import annotations

import signal
import threading

import pytest

from dropsonde.cpu_budget import OverBudget, cpu_budget
from tests.support.time_limits import CPUTimeExceeded, cpu_limit


def spin() -> None:
    while True:
        pass


def test_a_block_over_its_budget_is_stopped():
    with pytest.raises(OverBudget, match="more than 0.2 s of CPU time"):
        with cpu_budget(0.2):
            spin()
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_a_block_within_its_budget_is_left_alone_and_the_timer_stopped():
    with cpu_budget(5.0) as budget:
        total = sum(range(1000))
        assert 0 < budget.remaining() <= 5.0
    assert total == 499500
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_an_inner_budget_stops_its_block_and_the_outer_one_goes_on():
    with cpu_limit(5.0):
        with pytest.raises(OverBudget):
            with cpu_budget(0.1):
                spin()
        left, _ = signal.getitimer(signal.ITIMER_PROF)
        assert 0 < left <= 5.0  # the outer timer is running again
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_an_inner_budget_never_extends_the_outer_one():
    with pytest.raises(CPUTimeExceeded):
        with cpu_limit(0.2):
            with cpu_budget(30.0):
                spin()


def test_an_outer_budget_spent_inside_the_inner_block_fires_on_the_way_out():
    with pytest.raises(CPUTimeExceeded):
        with cpu_limit(0.1):
            try:
                with cpu_budget(0.1):
                    spin()
            except OverBudget:
                pass
            spin()


def test_outside_the_main_thread_a_budget_is_not_enforced_but_works():
    results = []

    def work():
        with cpu_budget(0.01) as budget:
            results.append(sum(range(100_000)))
            results.append(budget.remaining())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert results[0] == sum(range(100_000)) and results[1] >= 0


def test_an_exception_swallowed_where_the_signal_landed_is_raised_again():
    """A signal handled inside a gc callback or a __del__ has its exception printed and
    dropped: the budget raises again, so the block never runs on unbounded."""
    swallowed = []

    class Swallows:
        def __del__(self):
            try:
                spin()
            except OverBudget as exc:
                swallowed.append(exc)

    with pytest.raises(OverBudget):
        with cpu_budget(0.1):
            Swallows()  # dropped at once: __del__ spins until the budget fires, and eats it
            spin()
    assert len(swallowed) == 1
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGPROF) in (signal.SIG_DFL, signal.SIG_IGN, None) or \
        not getattr(signal.getsignal(signal.SIGPROF), "__qualname__", "").startswith("cpu_budget")
