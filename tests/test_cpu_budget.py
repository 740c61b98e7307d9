"""CPU-time budgets: they stop a block that runs too long, nest, and restore what was there."""

from __future__ import annotations

import signal
import threading

import pytest

from dropsonde.cpu_budget import OverBudget, RunBudget, cpu_budget
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


# ---- end to end: what is over budget is set aside with one warning, and the run goes on ----

def test_a_run_budget_adds_up_the_cpu_time_of_every_block_charged_to_it():
    """A budget per file let the total grow with the number of files; a run budget
    counts them all and is spent once their sum reaches it."""
    now = [0.0]
    budget = RunBudget(2.0, clock=lambda: now[0])
    for _ in range(3):
        assert not budget.exhausted
        with budget.charge():
            now[0] += 0.75
    assert budget.exhausted and budget.spent == 2.25


from tests.support.puppet_tree import make_module, write  # noqa: E402


def test_a_preview_sets_aside_each_input_over_its_budget_with_one_warning_and_goes_on(tree):
    tree.forge(["puppetlabs-apache"])
    production = tree.environment("production")
    make_module(production / "modules", "apache", "puppetlabs-apache", manifests={"init.pp": "class apache { }"})
    huge = "class profile::huge {\n" + "".join(f"include apache::c{i}\n" for i in range(10_000)) + "}\n"
    make_module(production / "modules", "profile", "acme-profile", manifests={
        "init.pp": "class profile { include apache }", "huge.pp": huge})
    write(production / "Puppetfile", "mod =begin\n\n" + "=end\n\n" * 6_000)  # tree-sitter: minutes without a budget
    result = tree.run("preview", "--format", "json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    warnings = result.stderr.splitlines()
    manifest = [line for line in warnings if "huge.pp" in line]
    puppetfile = [line for line in warnings if "Puppetfile" in line]
    assert len(manifest) == 1 and "set aside" in manifest[0] and "MANIFEST_OUTPUT_BYTES" in manifest[0]
    assert len(puppetfile) == 1 and "PUPPETFILE_CPU_SECONDS" in puppetfile[0]
    values = {name: column["value"] for name, column in result.json()["self-service-analytics"]["snapshots"].items()}
    assert values["profile_classes"] == [{"name": "apache", "count": 1}]  # the rest of the site is read
    assert values["puppetfile_ruby_methods"] == []
