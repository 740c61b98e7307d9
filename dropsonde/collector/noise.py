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

With a key (``noise_key.py``), the noise of each published number is a
fixed function of the key and the number's context (week, table, row key,
column): HMAC-SHA256 seeds a generator for that number alone, so a rerun
publishes the same numbers and averaging reruns removes nothing. A seed
stands for a key derived from it, for tests and reproducible runs only:
anyone who knows the seed can remove the noise. Without either, randomness
comes from the operating system (``secrets``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import secrets
from typing import Optional

from dropsonde.collector.options import DEFAULT_EPSILON

class GeometricNoise:
    """Adds two-sided geometric noise calibrated to ``epsilon`` per published number."""

    def __init__(self, epsilon: float = DEFAULT_EPSILON, seed: Optional[int] = None,
                 key: Optional[bytes] = None) -> None:
        if not epsilon > 0 or math.isinf(epsilon):
            raise ValueError(f"epsilon must be a positive number, got {epsilon}")
        self.epsilon = epsilon
        self.random: random.Random = random.Random(seed) if seed is not None else secrets.SystemRandom()
        if seed is not None:  # --seed overrides the key, for tests
            key = hashlib.sha256(f"dropsonde noise seed {seed}".encode()).digest()
        self.key = key

    def alpha(self, sensitivity: int) -> float:
        return math.exp(-self.epsilon / sensitivity)

    def add(self, value: int, sensitivity: int, context: Optional[str] = None) -> int:
        """``value`` plus noise for a number one site can change by at most
        ``sensitivity``; with a key and a ``context`` naming the number, the
        same noise every time that number is published."""
        alpha = self.alpha(sensitivity)
        source = self.random
        if self.key is not None and context is not None:
            digest = hmac.new(self.key, context.encode("utf-8"), hashlib.sha256).digest()
            source = random.Random(int.from_bytes(digest, "big"))
        return int(value) + self._geometric(alpha, source) - self._geometric(alpha, source)

    @staticmethod
    def _geometric(alpha: float, source: random.Random) -> int:
        """Failures before the first success with success probability 1 - alpha: P(G >= n) = alpha^n."""
        if alpha == 0.0:  # epsilon so large that exp underflows: the limit is no noise
            return 0
        uniform = 1.0 - source.random()  # in (0, 1]
        return int(math.floor(math.log(uniform) / math.log(alpha)))
