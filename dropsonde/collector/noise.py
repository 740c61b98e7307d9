"""The noise and the accounting, both from OpenDP (https://opendp.org).

Why OpenDP: its mechanisms run in a Rust core whose privacy maps come with
proofs; it samples exactly (integer discrete Gaussian from a CSPRNG, no
floating-point tails to probe) and it composes: every release of a week goes
through one *adaptive composition* that refuses any release above its share
of the budget (``budget.py``). The hand-written geometric noise this replaces
spent epsilon per published number and thresholded on true counts.

The mechanisms:

* a table with keys (modules, versions, pairs, ...) is released by
  ``make_gaussian_threshold``: discrete Gaussian noise on every count, and
  only the keys whose *noisy* count reaches a threshold derived from the
  table's delta share (never the true count) are published. One site adds 1
  to at most ``rows_per_site`` counts (the query bounds it), the L0/L-inf
  bound OpenDP's privacy map takes;
* a sum column (nodes, calls) by ``make_gaussian`` on the vector of the
  published keys' clipped sums (L2 sensitivity sqrt(rows) x clip);
* the number of sites by ``make_gaussian`` on one count.

OpenDP asks for two opt-ins (``enable_features``): ``contrib``, for
constructors whose proofs are written but not yet through OpenDP's formal
review (the thresholded Gaussian among them), and ``honest-but-curious``,
because the step from the store to the counts is ours: a user-defined
transformation whose stability (at most ``rows_per_site`` rows per site, each
count moved by at most 1, each sum by at most the clip) the SQL queries
enforce and OpenDP takes on trust. See README, "Differential privacy".

OpenDP's noise comes from the operating system's CSPRNG and cannot be
seeded: a release cannot be redrawn identically, so a week is released once
and re-served from the store's release ledger (``release_ledger.py``), never redrawn.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence

import opendp.prelude as dp

from dropsonde.collector.budget import Budget, Share

dp.enable_features("contrib", "honest-but-curious")

_APPROX_ZCDP = dp.approximate(dp.zero_concentrated_divergence())
_COUNTS = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=int))
_COUNTS_METRIC = dp.l02inf_distance(dp.absolute_distance(T=int))
_SUMS = dp.vector_domain(dp.atom_domain(T=int))
MAX_THRESHOLD = 2**31 - 1


class WeekData:
    """The private input of a week's composition: the counts are computed from
    it by the queries; OpenDP only passes it through to them."""


_WEEK = dp.user_domain("dropsonde.WeekData", lambda value: isinstance(value, WeekData))
_SITES = dp.user_distance("sites added or removed")


def _composition(shares: Sequence[Share]) -> Any:
    return dp.c.make_adaptive_composition(_WEEK, _SITES, _APPROX_ZCDP, 1,
                                          [(share.rho, share.delta) for share in shares])


def total_epsilon(shares: Sequence[Share], delta: float) -> float:
    """The week's epsilon at ``delta`` for these shares, as OpenDP converts their composition."""
    converted: Any = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(_composition(shares)), delta)
    try:
        return float(converted.map(1)[0])
    except dp.OpenDPException:  # a rho so large that the conversion overflows: no bound at all
        return math.inf


def _scale_within(rho: float, sensitivity_squared: float, fits: Callable[[float], bool]) -> float:
    """The smallest Gaussian scale whose privacy map OpenDP says fits ``rho``
    (the closed form, nudged up past floating-point rounding)."""
    scale = math.sqrt(sensitivity_squared / (2 * rho))
    while not fits(scale):
        scale *= 1 + 1e-9
    return scale


@dataclass(frozen=True)
class Mechanism:
    """How one release was noised: for ``summary.json`` and the page."""

    name: str
    scale: float  # standard deviation of the discrete Gaussian noise
    threshold: int  # published only if the noisy count is at least this (0: every key)
    rows_per_site: int
    clip: int = 1

    def describe(self) -> Dict[str, Any]:
        return {"noise_sd": round(self.scale, 3), "threshold": self.threshold,
                "rows_per_site": self.rows_per_site, "clip": self.clip}


def count_measurement(rows_per_site: int, scale: float, threshold: int) -> Any:
    """Counts of keys -> the keys whose noisy count reaches ``threshold``, with their noisy counts."""
    return dp.m.make_gaussian_threshold(_COUNTS, _COUNTS_METRIC, scale=scale, threshold=threshold)


@functools.lru_cache(maxsize=256)  # calibration is the slow part of a release; pure
def selection_mechanism(name: str, share: Share, rows_per_site: int, minimum: int) -> Mechanism:
    """The scale and threshold that spend at most ``share``: one site changes
    at most ``rows_per_site`` counts by at most 1 each."""
    distance = (rows_per_site, rows_per_site, 1)

    def fits(scale: float) -> bool:
        return bool(count_measurement(rows_per_site, scale, MAX_THRESHOLD).map(distance)[0] <= share.rho)

    scale = _scale_within(share.rho, rows_per_site, fits)
    low, high = 1, MAX_THRESHOLD
    while low < high:  # the least threshold whose delta fits the share
        middle = (low + high) // 2
        if count_measurement(rows_per_site, scale, middle).map(distance)[1] <= share.delta:
            high = middle
        else:
            low = middle + 1
    return Mechanism(name, scale, max(low, minimum), rows_per_site)


def sum_measurement(scale: float) -> Any:
    return dp.m.make_gaussian(_SUMS, dp.l2_distance(T=float), scale=scale)


@functools.lru_cache(maxsize=256)  # calibration is the slow part of a release; pure
def sum_mechanism(name: str, share: Share, rows_per_site: int, clip: int) -> Mechanism:
    sensitivity = math.sqrt(rows_per_site) * clip
    scale = _scale_within(share.rho, sensitivity ** 2,
                          lambda s: bool(sum_measurement(s).map(sensitivity) <= share.rho))
    return Mechanism(name, scale, 0, rows_per_site, clip)


def total_measurement(scale: float) -> Any:
    return dp.m.make_gaussian(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)


@functools.lru_cache(maxsize=256)  # calibration is the slow part of a release; pure
def total_mechanism(share: Share) -> Mechanism:
    scale = _scale_within(share.rho, 1, lambda s: bool(total_measurement(s).map(1) <= share.rho))
    return Mechanism(share.name, scale, 0, 1)


def row_key(values: Sequence[Any]) -> str:
    """A row's key columns as the one string OpenDP's map of counts is keyed by."""
    return json.dumps(list(values), separators=(",", ":"))


class Release:
    """One week's releases, in the plan's order, through one OpenDP adaptive
    composition: a release above its share is refused by OpenDP itself."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.queryable = _composition(budget.shares)(WeekData())
        self.mechanisms: List[Mechanism] = []

    def _user(self, output_domain: Any, output_metric: Any, values: Callable[[], Any],
              stability: Callable[[int], Any]) -> Any:
        return dp.t.make_user_transformation(_WEEK, _SITES, output_domain, output_metric,
                                             lambda _week: values(), stability)

    def total(self, value: int) -> int:
        """The number of sites, noised."""
        mechanism = total_mechanism(self.budget.share("sites"))
        counted = self._user(dp.atom_domain(T=int), dp.absolute_distance(T=int), lambda: int(value),
                             lambda d_in: d_in)
        measurement = dp.c.make_approximate(counted >> total_measurement(mechanism.scale))
        self.mechanisms.append(mechanism)
        return int(self.queryable(measurement))

    def select(self, name: str, counts: Dict[str, int], rows_per_site: int, minimum: int) -> Dict[str, int]:
        """The keys whose noisy count reaches the threshold, with their noisy counts.
        ``counts`` must come from a query that keeps at most ``rows_per_site``
        rows per site (each adding 1 to one key)."""
        mechanism = selection_mechanism(name, self.budget.share(name), rows_per_site, minimum)
        counted = self._user(_COUNTS, _COUNTS_METRIC, lambda: counts,
                             lambda d_in: (d_in * rows_per_site, d_in * rows_per_site, d_in))
        measurement = counted >> count_measurement(rows_per_site, mechanism.scale, mechanism.threshold)
        self.mechanisms.append(mechanism)
        released = self.queryable(measurement)
        return {key: int(value) for key, value in released.items() if value >= mechanism.threshold}

    def sums(self, name: str, keys: Sequence[str], sums: Dict[str, int], rows_per_site: int,
             clip: int) -> Dict[str, int]:
        """Noisy sums of the (already published) ``keys``: one site adds at most
        ``clip`` to each of at most ``rows_per_site`` of them."""
        mechanism = sum_mechanism(f"{name}.sum", self.budget.share(f"{name}.sum"), rows_per_site, clip)
        vector = [int(sums.get(key, 0)) for key in keys]
        summed = self._user(_SUMS, dp.l2_distance(T=float), lambda: vector,
                            lambda d_in: float(d_in) * math.sqrt(rows_per_site) * clip)
        measurement = dp.c.make_approximate(summed >> sum_measurement(mechanism.scale))
        self.mechanisms.append(mechanism)
        noisy = self.queryable(measurement)
        return {key: int(value) for key, value in zip(keys, noisy)}

    def spent(self) -> Dict[str, Any]:
        return {mechanism.name: mechanism.describe() for mechanism in self.mechanisms}
