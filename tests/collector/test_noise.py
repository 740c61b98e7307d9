"""The mechanisms and the accounting: OpenDP's noise has the distribution it claims,
thresholds apply to noisy counts, one budget covers the whole week and OpenDP
refuses a release above its share."""

from __future__ import annotations

import math
import statistics

import opendp.prelude as dp
import pytest

from dropsonde.collector.budget import BudgetError, plan_budget
from dropsonde.collector.noise import Release, count_measurement, selection_mechanism, total_epsilon


def discrete_gaussian(scale: float, support: int):
    """P(x) proportional to exp(-x^2 / (2 scale^2)) on the integers (CKS20): what OpenDP claims to sample."""
    weights = {x: math.exp(-x * x / (2 * scale * scale)) for x in range(-support, support + 1)}
    total = sum(weights.values())
    return {x: w / total for x, w in weights.items()}


def test_published_noise_has_the_claimed_discrete_gaussian_distribution():
    """20,000 counts far above the threshold, released by the measurement the tables use:
    the noise's mean, spread and shape (a chi-square over bins) match the discrete Gaussian
    of the scale summary.json states."""
    budget = plan_budget(4.0, 1e-6)
    mechanism = selection_mechanism("modules", budget.share("modules"), 40, 5)
    true = {f"m{index}": 100_000 for index in range(20_000)}
    released = count_measurement(40, mechanism.scale, mechanism.threshold)(true)
    noise = [released[key] - true[key] for key in true]
    assert len(noise) == len(true)  # far above the threshold: every key is published
    scale = mechanism.scale
    assert abs(statistics.mean(noise)) < 4 * scale / math.sqrt(len(noise))
    assert 0.97 * scale < statistics.pstdev(noise) < 1.03 * scale
    expected = discrete_gaussian(scale, int(12 * scale))
    edges = [-math.inf] + [scale * z for z in (-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2)] + [math.inf]
    chi_square = 0.0
    for low, high in zip(edges, edges[1:]):
        p = sum(w for x, w in expected.items() if low <= x < high)
        observed = sum(1 for x in noise if low <= x < high)
        chi_square += (observed - p * len(noise)) ** 2 / (p * len(noise))
    assert chi_square < 33.7  # chi-square, 9 degrees of freedom, p = 0.0001


def test_a_count_below_the_threshold_is_withheld_on_its_noisy_value():
    """The threshold is on the noisy count: a key just above it is sometimes withheld,
    one just below sometimes published, and a single site's key (count 1) never."""
    budget = plan_budget(4.0, 1e-6)
    mechanism = selection_mechanism("platforms", budget.share("platforms"), 4, 5)
    threshold = mechanism.threshold
    measurement = count_measurement(4, mechanism.scale, threshold)
    runs = 400
    above = below = single = 0
    for _ in range(runs):
        released = measurement({"above": threshold + 2, "below": threshold - 2, "single": 1})
        above += "above" in released
        below += "below" in released
        single += "single" in released
        assert all(value >= threshold for value in released.values())
    assert 0.3 * runs < above < 0.8 * runs and 0.2 * runs < below < 0.7 * runs and single == 0


def test_the_weeks_releases_compose_within_the_stated_epsilon_and_delta():
    budget = plan_budget(4.0, 1e-6)
    assert total_epsilon(budget.shares, 1e-6) <= 4.0
    assert total_epsilon(budget.shares, 1e-6) > 3.99  # the budget is used, not wasted
    assert sum(share.delta for share in budget.shares) < 1e-6
    assert sum(share.rho for share in budget.shares) == pytest.approx(budget.rho)


def test_opendp_refuses_a_release_above_its_share():
    """The composition is OpenDP's: a modules release with 100 times less noise than
    its share allows is refused by the library, not by our code."""
    from dropsonde.collector.noise import _COUNTS, _COUNTS_METRIC, _SITES, _WEEK

    budget = plan_budget(4.0, 1e-6)
    release = Release(budget)
    release.total(1000)  # the plan's first release
    counted = dp.t.make_user_transformation(_WEEK, _SITES, _COUNTS, _COUNTS_METRIC, lambda _: {"a": 500},
                                            lambda d_in: (40 * d_in, 40 * d_in, d_in))
    fair = selection_mechanism("modules", budget.share("modules"), 40, 5)
    with pytest.raises(dp.OpenDPException):
        release.queryable(counted >> count_measurement(40, fair.scale / 100, fair.threshold))
    assert release.select("modules", {"a": 500}, 40, 5)  # the fair one still fits its share


def test_a_budget_that_cannot_be_honoured_is_refused():
    with pytest.raises(BudgetError) as raised:
        plan_budget(0.0, 1e-6)
    assert raised.value.parameter == "epsilon"
    with pytest.raises(BudgetError) as raised:
        plan_budget(1.0, 1.5)
    assert raised.value.parameter == "delta"
