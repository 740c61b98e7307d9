"""Memory budgets: an allocation past the budget fails inside the block, and the limit is put back."""

from __future__ import annotations

import resource

import pytest

from dropsonde.memory_budget import OverMemoryBudget, memory_budget

MiB = 1024 * 1024


def test_an_allocation_past_the_budget_fails_in_the_block_and_the_limit_is_restored():
    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(OverMemoryBudget, match="more than 64 MiB of memory"):
        with memory_budget(64 * MiB):
            bytearray(512 * MiB)
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert len(bytearray(128 * MiB)) == 128 * MiB  # the process can allocate again


def test_a_block_within_its_budget_is_left_alone():
    with memory_budget(256 * MiB):
        data = bytearray(16 * MiB)
    assert len(data) == 16 * MiB


def test_a_lower_limit_already_in_force_is_kept():
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with memory_budget(64 * MiB):
        inner = resource.getrlimit(resource.RLIMIT_AS)[0]
        with memory_budget(1024 * MiB):
            assert resource.getrlimit(resource.RLIMIT_AS)[0] <= inner
    assert resource.getrlimit(resource.RLIMIT_AS) == (soft, hard)
