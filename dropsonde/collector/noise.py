"""Noise on every published number: the two-sided geometric mechanism.

k-anonymity alone does not protect a site when site ids are free to invent:
one real site and k-1 crafted ones make a row public whose sum is the real
site's exact value. So each published count and sum gets integer noise
drawn from the two-sided geometric distribution, P(x) proportional to
alpha^|x| with alpha = exp(-epsilon / sensitivity), where the sensitivity is
the most one site can change that number (1 for a count of sites, the
clipping bound for a clipped sum). That is epsilon-differential privacy for
each published number (Ghosh, Roughgarden and Sundararajan, 2009), the
discrete counterpart of the Laplace mechanism, without floating-point
outputs to round.

Randomness comes from the operating system (``secrets``) unless a seed is
given, for tests and reproducible runs only: anyone who knows the seed can
remove the noise.
"""

from __future__ import annotations

import math
import random
import secrets
from typing import Optional

from dropsonde.collector.settings import DEFAULT_EPSILON



class GeometricNoise:
    """Adds two-sided geometric noise calibrated to ``epsilon`` per published number."""

    def __init__(self, epsilon: float = DEFAULT_EPSILON, seed: Optional[int] = None) -> None:
        if not epsilon > 0 or math.isinf(epsilon):
            raise ValueError(f"epsilon must be a positive number, got {epsilon}")
        self.epsilon = epsilon
        self.random: random.Random = random.Random(seed) if seed is not None else secrets.SystemRandom()

    def alpha(self, sensitivity: int) -> float:
        return math.exp(-self.epsilon / sensitivity)

    def add(self, value: int, sensitivity: int) -> int:
        """``value`` plus noise for a number one site can change by at most ``sensitivity``."""
        alpha = self.alpha(sensitivity)
        return int(value) + self._geometric(alpha) - self._geometric(alpha)

    def _geometric(self, alpha: float) -> int:
        """Failures before the first success with success probability 1 - alpha: P(G >= n) = alpha^n."""
        if alpha == 0.0:  # epsilon so large that exp underflows: the limit is no noise
            return 0
        uniform = 1.0 - self.random.random()  # in (0, 1]
        return int(math.floor(math.log(uniform) / math.log(alpha)))

    def standard_deviation(self, sensitivity: int) -> float:
        """Of the noise added to one number (the difference of two geometric variables)."""
        alpha = self.alpha(sensitivity)
        return math.sqrt(2 * alpha) / (1 - alpha)
