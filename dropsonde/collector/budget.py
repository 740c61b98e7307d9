"""The privacy budget of one weekly publication, and how it is split.

The privacy unit is **one site for one week**: whatever a site reported that
week (its latest report) is added to or removed from the data, and every
table published for the week — sites, modules, versions, module
platforms, pairs, triples, classes and their node sums, platforms,
environment and module buckets, dependencies, profile classes, Puppetfile
methods and their call sums; the trends are the modules table again —
together reveal at most (epsilon, delta) about it. One (epsilon, delta) for the whole week, not one per number.

The accounting is zero-concentrated DP (zCDP), done by OpenDP: each table
gets a share ``rho_i`` of one total ``rho`` (``PLAN``, below) and a share of
``delta`` for its partition selection (a row appears only when its *noisy*
count passes a threshold, which fails to hide a row backed by one site with
probability at most ``delta_i``). OpenDP's adaptive composition refuses any
release above its share, and its zCDP-to-(epsilon, delta) conversion gives
the week's total, which is what ``summary.json`` and the page state. ``rho``
is the largest total whose conversion stays within the operator's
``(epsilon, delta)``.

The split favours what module authors read (the modules table, then
versions and pairs) and gives the rest small shares; the weights are part of
the release context, so changing them is a different publication.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from dropsonde.errors import DropsondeError

#: the whole week's privacy loss per site (see README: "Differential privacy")
DEFAULT_EPSILON = 4.0
#: the chance the guarantee fails outright for a site, per week
DEFAULT_DELTA = 1e-6
#: share of delta kept for the partition thresholds (the rest pays the zCDP conversion)
THRESHOLD_DELTA_SHARE = 0.5

# Relative shares of rho. A ``NAME.sum`` entry is the noisy sum column of NAME.
PLAN: Tuple[Tuple[str, float], ...] = (
    ("sites", 0.02),
    ("modules", 0.28),
    ("module_versions", 0.14),
    ("module_platforms", 0.08),
    ("module_pairs", 0.10),
    ("module_triples", 0.04),
    ("classes", 0.08),
    ("classes.sum", 0.04),
    ("platforms", 0.04),
    ("environment_counts", 0.03),
    ("modules_per_site", 0.03),
    ("dependencies", 0.04),
    ("profile_classes", 0.04),
    ("puppetfile_methods", 0.02),
    ("puppetfile_methods.sum", 0.02),
)


class BudgetError(DropsondeError):
    """An (epsilon, delta) that no publication can honour; the caller names the option."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class Share:
    """One release's part of the week's budget."""

    name: str
    rho: float
    delta: float  # 0 for releases without partition selection (the total, the sums)


@dataclass(frozen=True)
class Budget:
    """The week's (epsilon, delta) and each release's share of it."""

    epsilon: float
    delta: float
    rho: float = 0.0
    shares: Tuple[Share, ...] = ()

    @property
    def names(self) -> List[str]:
        return [share.name for share in self.shares]

    def share(self, name: str) -> Share:
        return next(share for share in self.shares if share.name == name)

    def describe(self) -> Dict[str, Any]:
        """What ``summary.json`` states: the total, the accounting, the split."""
        return {"epsilon": self.epsilon, "delta": self.delta, "unit": "one site for one week",
                "accounting": "zCDP (OpenDP adaptive composition), converted to (epsilon, delta)",
                "rho": self.rho,
                "plan": {share.name: {"rho": share.rho, "delta": share.delta} for share in self.shares}}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()


def shared_source_guarantee(epsilon: float, delta: float) -> Dict[str, Any]:
    """The guarantee for a site behind a source (an address, an IPv6 /48) that
    reported for more sites than ``--sites-per-source``: counted there, the
    site keeps one other site of that source out of the week (``rate_limiter``),
    so adding or removing its report changes the counted sites by two — group
    privacy of two sites: (2 epsilon, (1 + e^epsilon) delta), the bound that
    holds for any (epsilon, delta) mechanism, the thresholds' deltas included
    (scaling the zCDP rho by 4 alone would leave those out)."""
    group_delta = min(1.0, (1 + math.exp(epsilon)) * delta) if epsilon < 700 else 1.0  # e^700: no bound left
    return {"group": 2, "epsilon": 2 * epsilon, "delta": group_delta,
            "applies_to": "a site behind a source (an IPv4 address or IPv6 /48) that reported for more sites "
                          "that week than --sites-per-source (per collector process that counted it)"}


def _selected(name: str) -> bool:
    """Releases with partition selection: every table with keys (not the total, not a sum)."""
    return name != "sites" and not name.endswith(".sum")


def _split(rho: float, delta: float) -> List[Share]:
    weights = sum(weight for _, weight in PLAN)
    selected = [name for name, _ in PLAN if _selected(name)]
    per_table = delta * THRESHOLD_DELTA_SHARE / len(selected)
    return [Share(name, rho * weight / weights, per_table if _selected(name) else 0.0) for name, weight in PLAN]


@functools.lru_cache(maxsize=16)  # a search over OpenDP's conversion: ~1 s
def plan_budget(epsilon: float, delta: float) -> Budget:
    """The shares for a week's total (epsilon, delta): the largest zCDP rho
    whose composition with the thresholds' deltas OpenDP converts to at most
    epsilon at delta."""
    from dropsonde.collector import noise

    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise BudgetError("epsilon", f"expected a positive number, got {epsilon}")
    if not 0 < delta < 1:
        raise BudgetError("delta", f"expected a number between 0 and 1, got {delta}")
    low, high = 0.0, 1.0
    while noise.total_epsilon(_split(high, delta), delta) < epsilon:  # a huge epsilon: tests without noise
        low, high = high, high * 2
        if high > 1e12:
            break
    for _ in range(60):
        middle = (low + high) / 2
        if noise.total_epsilon(_split(middle, delta), delta) <= epsilon:
            low = middle
        else:
            high = middle
    if low == 0.0:
        raise BudgetError("epsilon", f"{epsilon} is too small to publish anything at delta {delta}")
    return Budget(epsilon, delta, low, tuple(_split(low, delta)))
